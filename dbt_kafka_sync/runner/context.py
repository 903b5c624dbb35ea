"""What a run is asked to do and what it loads first: options, the validated context, the report."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from dbt_kafka_sync.config.kafka import KafkaTarget
from dbt_kafka_sync.dbt.manifest import SyncedModel, load_manifest, synced_models
from dbt_kafka_sync.dbt.profiles import dbt_output, find_profiles_file, kafka_target, load_profiles
from dbt_kafka_sync.dbt.project import load_dbt_project
from dbt_kafka_sync.dbt.run_results import NotBuilt, models_not_built
from dbt_kafka_sync.dbt.selection import Selection, select_models
from dbt_kafka_sync.job import JobContext
from dbt_kafka_sync.kafka.transactions import SyncTransaction
from dbt_kafka_sync.messages.rendering import default_workers
from dbt_kafka_sync.messages.templating import TemplateLoader
from dbt_kafka_sync.sources import open_source
from dbt_kafka_sync.sources.base import Source
from dbt_kafka_sync.state.base import StateStore
from dbt_kafka_sync.state.history import SyncOutcome
from dbt_kafka_sync.state.location import StateLocation

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
    selection: Selection = field(default_factory=Selection)
    state_path: Path | None = None
    ignore_run_results: bool = False


@dataclass(frozen=True)
class RunContext:
    """Everything a run needs, loaded and validated before anything is published."""

    models: list[SyncedModel]
    not_built: dict[str, NotBuilt]  # by unique_id: left out, dbt did not build them
    target_name: str
    kafka: KafkaTarget
    source: Source
    state: StateLocation
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
        transactions = None
        if publisher is not None:
            transactions = partial(SyncTransaction, self.kafka, self.project_dir)
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
            delivery=self.kafka.delivery,
            transactions=transactions,
            debugger=self.kafka.debugger if publisher is not None else None,
            render_workers=self.kafka.render_workers or default_workers(),
            render_workers_from_rows=self.kafka.render_workers_from_rows,
        )


@dataclass
class RunReport:
    """The results of every sync of a run."""

    run_id: str
    results: list[SyncOutcome] = field(default_factory=list)
    command: str = "run"
    target: str | None = None  # the kafka_sync output, once the profiles are read
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    # Each (model, sync)'s status in the target's previous run: what a recovery is measured by.
    previous: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every sync delivered every message (a plan: when each could be planned)."""
        if self.command == "plan":
            return all(result.error is None for result in self.results)
        return all(result.ok for result in self.results)


def load_context(options: RunOptions) -> RunContext:
    """Read dbt_project.yml, profiles.yml and the manifest; validate every sync config."""
    project_dir = options.project_dir.resolve()
    project = load_dbt_project(project_dir)
    manifest = load_manifest(project.manifest_path)
    models = select_models(synced_models(manifest), options.selection, project)
    profiles_path = find_profiles_file(options.profiles_dir, project_dir)
    profiles = load_profiles(profiles_path)
    target_name, kafka = kafka_target(profiles, options.target, profiles_path)
    output = dbt_output(profiles, project.profile, options.dbt_target, profiles_path)
    not_built = (
        {} if options.ignore_run_results else models_not_built(project.manifest_path, manifest)
    )
    return RunContext(
        models=models,
        not_built=not_built,
        target_name=target_name,
        kafka=kafka,
        source=open_source(output, project_dir),
        state=state_location(options, kafka, project_dir),
        project_dir=project_dir,
    )


def state_location(options: RunOptions, kafka: KafkaTarget, project_dir: Path) -> StateLocation:
    """Where the state is: --state-path, else the profile's state_path, in the project."""
    path = _absolute(options.state_path or Path(kafka.state_path), project_dir)
    return StateLocation(kafka.state, path, kafka.memory_limit)


def _absolute(path: Path, project_dir: Path) -> Path:
    return path if path.is_absolute() else project_dir / path


def new_run_id() -> str:
    """A sortable, readable run id: UTC time plus a random suffix."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)
