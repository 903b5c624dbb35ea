"""A whole run: load and validate everything first, then sync each model in turn."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from dbt_kafka_sync.errors import SyncError
from dbt_kafka_sync.manifest import SyncedModel, load_manifest, select_models, synced_models
from dbt_kafka_sync.profiles import (
    KafkaTarget,
    dbt_output,
    find_profiles_file,
    kafka_target,
    load_dbt_project,
    load_profiles,
)
from dbt_kafka_sync.sync import SyncResult, sync_model
from dbt_kafka_sync.warehouse.duckdb import DuckDBWarehouse

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunOptions:
    """What the user asked for on the command line."""

    project_dir: Path = Path(".")
    profiles_dir: Path | None = None
    target: str | None = None
    dbt_target: str | None = None
    select: tuple[str, ...] = ()


@dataclass(frozen=True)
class RunContext:
    """Everything a run needs, loaded and validated before anything is published."""

    models: list[SyncedModel]
    kafka: KafkaTarget
    warehouse: DuckDBWarehouse


@dataclass
class RunReport:
    """The results of every sync of a run."""

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
    kafka = kafka_target(profiles, options.target, profiles_path)
    output = dbt_output(profiles, project.profile, options.dbt_target, profiles_path)
    return RunContext(models=models, kafka=kafka, warehouse=DuckDBWarehouse(output, project_dir))


def run(context: RunContext) -> RunReport:
    """Sync every model; a failing model is reported and the others go on."""
    import duckdb

    from dbt_kafka_sync.producer import Publisher

    report = RunReport()
    if not context.models:
        log.warning("no model has a kafka_sync block in its meta; nothing to do")
        return report
    publisher = Publisher(context.kafka)
    publisher.partition_counts([])  # an unreachable cluster fails the run once, up front
    connection = duckdb.connect()
    try:
        for model in context.models:
            for sync in model.syncs:
                try:
                    result = sync_model(connection, context.warehouse, publisher, model, sync)
                except SyncError as exc:
                    result = SyncResult(model.name, sync.name, sync.topic, error=exc.render())
                report.results.append(result)
    finally:
        connection.close()
    return report
