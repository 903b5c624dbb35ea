"""A whole run: load and validate everything first, then sync each model in turn."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from dbt_kafka_sync.config.kafka import DEFAULT_MEMORY_LIMIT, KafkaTarget
from dbt_kafka_sync.dbt.manifest import SyncedModel, load_manifest, select_models, synced_models
from dbt_kafka_sync.dbt.profiles import dbt_output, find_profiles_file, kafka_target, load_profiles
from dbt_kafka_sync.dbt.project import load_dbt_project
from dbt_kafka_sync.errors import SyncError, WarehouseError
from dbt_kafka_sync.job import JobContext, SyncJob
from dbt_kafka_sync.messages.templating import TemplateLoader
from dbt_kafka_sync.session import duckdb_session
from dbt_kafka_sync.sources import open_source
from dbt_kafka_sync.sources.base import Source
from dbt_kafka_sync.state.base import StateStore
from dbt_kafka_sync.state.history import RunDetails, RunSummary, SyncOutcome
from dbt_kafka_sync.state.local import LocalStore
from dbt_kafka_sync.state.local_file import open_state

if TYPE_CHECKING:
    from dbt_kafka_sync.kafka.producer import Publisher

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
    source: Source
    state_path: Path
    project_dir: Path

    def job_context(
        self,
        store: StateStore,
        publisher: Publisher | None,
        run_id: str,
        full_refresh: bool,
    ) -> JobContext:
        """What every sync of this run shares."""
        started = datetime.now(timezone.utc)
        return JobContext(
            connection=store.session,
            source=self.source,
            store=store,
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
    results: list[SyncOutcome] = field(default_factory=list)

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
        source=open_source(output, project_dir),
        state_path=_absolute(options.state_path or Path(kafka.state_path), project_dir),
        project_dir=project_dir,
    )


def _absolute(path: Path, project_dir: Path) -> Path:
    return path if path.is_absolute() else project_dir / path


def new_run_id() -> str:
    """A sortable, readable run id: UTC time plus a random suffix."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


@contextmanager
def open_store(
    path: Path,
    read_only: bool,
    source: Source | None = None,
    memory_limit: str = DEFAULT_MEMORY_LIMIT,
) -> Iterator[StateStore]:
    """The run's DuckDB session with the state store attached."""
    with duckdb_session(memory_limit) as connection:
        attached = open_state(connection, path, read_only)
        yield LocalStore(connection, source, attached)


def run(context: RunContext, full_refresh: bool = False) -> RunReport:
    """Publish every sync's changes; a failing sync is reported and the others go on."""
    from dbt_kafka_sync.kafka.producer import Publisher

    report = RunReport(new_run_id())
    if not context.models:
        log.warning("no model has a kafka_sync block in its meta; nothing to do")
        return report
    # Connect and authenticate first: a broker that cannot be reached changes nothing.
    publisher = Publisher(context.kafka, context.project_dir)
    publisher.metadata()
    context.source.open()
    with (
        closing(context.source),
        open_store(context.state_path, False, context.source, context.kafka.memory_limit) as store,
    ):
        store.begin_run(report.run_id, "run", context.target_name)
        try:
            jobs = context.job_context(store, publisher, report.run_id, full_refresh)
            _sync_all(jobs, context.models, report)
        except BaseException as exc:
            message = exc.render() if isinstance(exc, SyncError) else type(exc).__name__
            try:
                store.finish_run(report.run_id, "error", message)
            except Exception:  # the original error matters more; `runs` shows it as running
                log.debug("could not record the run's end", exc_info=True)
            raise
        status = "success" if report.ok else "failed"
        store.finish_run(report.run_id, status, None)
    return report


def plan(context: RunContext, full_refresh: bool = False) -> RunReport:
    """Count what a run would publish, with sample messages; publish and write nothing."""
    report = RunReport("plan")
    with (
        closing(context.source),
        open_store(context.state_path, True, context.source, context.kafka.memory_limit) as store,
    ):
        context.source.open()
        jobs = context.job_context(store, None, "plan", full_refresh)
        _sync_all(jobs, context.models, report)
    return report


def _sync_all(context: JobContext, models: list[SyncedModel], report: RunReport) -> None:
    import duckdb

    for model in models:
        for sync in model.syncs:
            job = SyncJob(context, model, sync)
            try:
                outcome = job.plan() if context.publisher is None else job.run()
            except (SyncError, duckdb.Error) as exc:
                if isinstance(exc, duckdb.Error):  # e.g. a view over a dropped table
                    exc = WarehouseError(f"DuckDB failed: {exc}", model=model.name)
                outcome = job.failed(exc.render())
            for note in outcome.notes:
                log.warning("%s [%s]: %s", model.name, sync.name, note)
            report.results.append(outcome)


def state_path_of(options: RunOptions) -> Path:
    """The state file, without reading the manifest (history works before `dbt parse`)."""
    return _target_and_state(options)[1]


def reset(options: RunOptions, model: str) -> list[str]:
    """Forget the snapshots of a model's syncs for the chosen Kafka target."""
    target_name, state_path = _target_and_state(options)
    with open_store(state_path, read_only=False) as store:
        return store.forget_syncs(model, target_name)


def _target_and_state(options: RunOptions) -> tuple[str, Path]:
    project_dir = options.project_dir.resolve()
    profiles_path = find_profiles_file(options.profiles_dir, project_dir)
    target_name, kafka = kafka_target(load_profiles(profiles_path), options.target, profiles_path)
    return target_name, _absolute(options.state_path or Path(kafka.state_path), project_dir)


def recent_runs(options: RunOptions, limit: int) -> list[RunSummary]:
    """The latest runs of the state store, newest first."""
    with open_store(state_path_of(options), read_only=True) as store:
        return store.recent_runs(limit)


def run_details(options: RunOptions, run_id: str, max_rows: int) -> RunDetails | None:
    """One run of the state store with its syncs and failed rows; None for an unknown run."""
    with open_store(state_path_of(options), read_only=True) as store:
        return store.run_details(run_id, max_rows)
