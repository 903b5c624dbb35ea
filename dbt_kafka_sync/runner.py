"""A whole run: load and validate everything first, then sync each model in turn."""

from __future__ import annotations

import logging
import secrets
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from dbt_kafka_sync.diff import ChangeCounts
from dbt_kafka_sync.errors import SyncError, WarehouseError
from dbt_kafka_sync.manifest import SyncedModel, load_manifest, select_models, synced_models
from dbt_kafka_sync.profiles import (
    DEFAULT_MEMORY_LIMIT,
    KafkaTarget,
    dbt_output,
    find_profiles_file,
    kafka_target,
    load_dbt_project,
    load_profiles,
)
from dbt_kafka_sync.snapshot import SyncOutcome, record_outcome
from dbt_kafka_sync.state import begin_run, finish_run, open_state, sync_id
from dbt_kafka_sync.sync import SyncContext, SyncResult, sync_model
from dbt_kafka_sync.templating import TemplateLoader
from dbt_kafka_sync.warehouse.duckdb import DuckDBWarehouse

if TYPE_CHECKING:
    import duckdb

    from dbt_kafka_sync.config import SyncConfig
    from dbt_kafka_sync.producer import Publisher

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """What the user asked for on the command line."""

    project_dir: Path = Path(".")
    profiles_dir: Path | None = None
    target: str | None = None
    dbt_target: str | None = None
    select: tuple[str, ...] = ()
    state_path: Path | None = None


@dataclass(frozen=True)
class RunContext:
    """Everything a run needs, loaded and validated before anything is published."""

    models: list[SyncedModel]
    target_name: str
    kafka: KafkaTarget
    warehouse: DuckDBWarehouse
    state_path: Path
    project_dir: Path

    def sync_context(
        self,
        connection: duckdb.DuckDBPyConnection,
        publisher: Publisher | None,
        run_id: str,
        full_refresh: bool,
    ) -> SyncContext:
        """What every sync of this run shares."""
        started = datetime.now(timezone.utc)
        return SyncContext(
            connection=connection,
            warehouse=self.warehouse,
            publisher=publisher,
            target=self.target_name,
            run_id=run_id,
            templates=TemplateLoader(self.project_dir, started),
            started_at=started.isoformat().replace("+00:00", "Z"),
            full_refresh=full_refresh,
        )


@dataclass
class RunReport:
    """The results of every sync of a run."""

    run_id: str
    results: list[SyncResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every sync delivered every message."""
        return all(result.ok for result in self.results)


def load_context(options: RunOptions) -> RunContext:
    """Read dbt_project.yml, profiles.yml and the manifest; validate every sync config."""
    project_dir = options.project_dir.resolve()
    project = load_dbt_project(project_dir)
    models = select_models(synced_models(load_manifest(project.manifest_path)), options.select)
    profiles_path = find_profiles_file(options.profiles_dir, project_dir)
    profiles = load_profiles(profiles_path)
    target_name, kafka = kafka_target(profiles, options.target, profiles_path)
    output = dbt_output(profiles, project.profile, options.dbt_target, profiles_path)
    return RunContext(
        models=models,
        target_name=target_name,
        kafka=kafka,
        warehouse=DuckDBWarehouse(output, project_dir),
        state_path=_absolute(options.state_path or Path(kafka.state_path), project_dir),
        project_dir=project_dir,
    )


def _absolute(path: Path, project_dir: Path) -> Path:
    return path if path.is_absolute() else project_dir / path


def new_run_id() -> str:
    """A sortable, readable run id: UTC time plus a random suffix."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


@contextmanager
def state_connection(
    path: Path, read_only: bool, memory_limit: str = DEFAULT_MEMORY_LIMIT
) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection with the state store attached.

    Its memory is capped: a large diff spills to a temporary folder (under $TMPDIR),
    removed at the end, instead of growing with the table.
    """
    import duckdb

    with tempfile.TemporaryDirectory(prefix="dbt-kafka-sync-") as spill:
        connection = duckdb.connect()
        # Instants rendered as text (keys, headers, row keys) must not depend on the machine.
        connection.execute("SET TimeZone = 'UTC'")
        connection.execute("SET memory_limit = ?", [memory_limit])
        connection.execute("SET temp_directory = ?", [spill])
        try:
            open_state(connection, path, read_only)
            yield connection
        finally:
            connection.close()


def run(context: RunContext, full_refresh: bool = False) -> RunReport:
    """Publish every sync's changes; a failing sync is reported and the others go on."""
    from dbt_kafka_sync.producer import Publisher

    report = RunReport(new_run_id())
    if not context.models:
        log.warning("no model has a kafka_sync block in its meta; nothing to do")
        return report
    # Connect and authenticate first: a broker that cannot be reached changes nothing.
    publisher = Publisher(context.kafka, context.project_dir)
    publisher.metadata()
    with state_connection(context.state_path, False, context.kafka.memory_limit) as connection:
        begin_run(connection, report.run_id, "run", context.target_name)
        try:
            sync_context = context.sync_context(connection, publisher, report.run_id, full_refresh)
            _sync_all(sync_context, context.models, report)
        except BaseException as exc:
            message = exc.render() if isinstance(exc, SyncError) else type(exc).__name__
            try:
                finish_run(connection, report.run_id, "error", message)
            except Exception:  # the original error matters more; `runs` shows it as running
                log.debug("could not record the run's end", exc_info=True)
            raise
        finish_run(connection, report.run_id, "success" if report.ok else "failed", None)
    return report


def plan(context: RunContext, full_refresh: bool = False) -> RunReport:
    """Count what a run would publish, with sample messages; publish and write nothing."""
    report = RunReport("plan")
    with state_connection(context.state_path, True, context.kafka.memory_limit) as connection:
        sync_context = context.sync_context(connection, None, "plan", full_refresh)
        _sync_all(sync_context, context.models, report)
    return report


def _sync_all(context: SyncContext, models: list[SyncedModel], report: RunReport) -> None:
    import duckdb

    for model in models:
        for sync in model.syncs:
            try:
                result = sync_model(context, model, sync)
            except (SyncError, duckdb.Error) as exc:
                if isinstance(exc, duckdb.Error):  # e.g. a view over a dropped table
                    exc = WarehouseError(f"DuckDB failed: {exc}", model=model.name)
                result = SyncResult(model.name, sync.name, sync.destination, error=exc.render())
                if context.publisher is not None:
                    _record_failed_sync(context, model, sync, result.error or "")
            for note in result.notes:
                log.warning("%s [%s]: %s", model.name, sync.name, note)
            report.results.append(result)


def _record_failed_sync(
    context: SyncContext, model: SyncedModel, sync: SyncConfig, error: str
) -> None:
    outcome = SyncOutcome(
        run_id=context.run_id,
        sync_id=sync_id(context.target, model.unique_id, sync.name),
        model=model.name,
        sync_name=sync.name,
        topic=sync.destination,
        counts=ChangeCounts(),
        published=0,
        delivered=0,
        status="error",
        error=error,
    )
    record_outcome(context.connection, outcome)


def state_path_of(options: RunOptions) -> Path:
    """The state file, without reading the manifest (history works before `dbt parse`)."""
    return _target_and_state(options)[1]


def reset(options: RunOptions, model: str) -> list[str]:
    """Forget the snapshots of a model's syncs for the chosen Kafka target."""
    from dbt_kafka_sync.state import forget_syncs

    target_name, state_path = _target_and_state(options)
    with state_connection(state_path, read_only=False) as connection:
        return forget_syncs(connection, model, target_name)


def _target_and_state(options: RunOptions) -> tuple[str, Path]:
    project_dir = options.project_dir.resolve()
    profiles_path = find_profiles_file(options.profiles_dir, project_dir)
    target_name, kafka = kafka_target(load_profiles(profiles_path), options.target, profiles_path)
    return target_name, _absolute(options.state_path or Path(kafka.state_path), project_dir)
