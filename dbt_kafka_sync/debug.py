"""`dbt-kafka-sync debug`: show the resolved connection and check each step, like `dbt debug`."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from dbt_kafka_sync.config.kafka import KafkaTarget
from dbt_kafka_sync.dbt.manifest import SyncedModel, load_manifest, synced_models
from dbt_kafka_sync.dbt.profiles import dbt_output, find_profiles_file, kafka_target, load_profiles
from dbt_kafka_sync.dbt.project import load_dbt_project
from dbt_kafka_sync.dbt.selection import Selection, select_models
from dbt_kafka_sync.errors import MASK, SyncError
from dbt_kafka_sync.kafka.security import describe, security_settings
from dbt_kafka_sync.sources import open_source
from dbt_kafka_sync.state.location import StateLocation, open_store

TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Check:
    """One step of the debug report."""

    name: str
    ok: bool
    detail: str


def masked_profile(target: KafkaTarget) -> dict[str, Any]:
    """Return the resolved profile output, with every secret replaced by a mask."""
    masked: dict[str, Any] = _mask(target.model_dump(exclude_none=True, by_alias=True))
    return masked


def _mask(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return MASK
    if isinstance(value, dict):
        return {key: _mask(item) for key, item in value.items()}
    return value


def run_checks(
    project_dir: Path,
    profiles_dir: Path | None,
    target: str | None,
    selection: Selection,
    dbt_target: str | None = None,
) -> Iterator[Check | dict[str, Any]]:
    """Yield the masked profile, then each check in order; stop where later ones cannot run."""
    project_dir = project_dir.resolve()
    try:
        profiles_path = find_profiles_file(profiles_dir, project_dir)
        name, kafka = kafka_target(load_profiles(profiles_path), target, profiles_path)
    except SyncError as exc:
        yield Check("kafka_sync profile", False, exc.render())
        return
    yield Check("kafka_sync profile", True, f"output '{name}' of {profiles_path}")
    yield masked_profile(kafka)
    models = _models(project_dir, selection)
    if isinstance(models, Check):
        yield models
        models = []
    yield _warehouse(project_dir, profiles_path, dbt_target)
    yield _state(kafka, project_dir, profiles_path, dbt_target)
    connection = _connect(kafka, project_dir)
    yield connection
    if connection.ok:
        yield from _topic_checks(kafka, project_dir, models)


def _models(project_dir: Path, selection: Selection) -> list[SyncedModel] | Check:
    try:
        project = load_dbt_project(project_dir)
        manifest = load_manifest(project.manifest_path)
        return select_models(synced_models(manifest), selection, project)
    except SyncError as exc:
        return Check("dbt manifest", False, exc.render())


def _warehouse(project_dir: Path, profiles_path: Path, dbt_target: str | None) -> Check:
    """Connect to the warehouse of the dbt profile's output, as a run would."""
    try:
        output = _dbt_output(project_dir, profiles_path, dbt_target)
        source = open_source(output, project_dir)
        try:
            source.open()
        finally:
            source.close()
    except SyncError as exc:
        return Check("warehouse", False, exc.render())
    return Check("warehouse", True, f"dbt output of type '{output.get('type')}': reachable")


def _dbt_output(project_dir: Path, profiles_path: Path, dbt_target: str | None) -> dict[str, Any]:
    """The dbt profile's output the models were built with (the project names the profile)."""
    project = load_dbt_project(project_dir)
    profiles = load_profiles(profiles_path)
    output: dict[str, Any] = dbt_output(profiles, project.profile, dbt_target, profiles_path)
    return output


def _state(
    kafka: KafkaTarget, project_dir: Path, profiles_path: Path, dbt_target: str | None
) -> Check:
    """Where the state is, and whether it exists yet; nothing is created."""
    path = Path(kafka.state_path)
    location = StateLocation(kafka.state, path if path.is_absolute() else project_dir / path)
    source = None
    try:
        if location.in_warehouse:
            output = _dbt_output(project_dir, profiles_path, dbt_target)
            source = open_source(output, project_dir)
        with open_store(location, read_only=True, source=source) as store:
            return Check("state", True, store.describe())
    except SyncError as exc:
        return Check("state", False, exc.render())
    finally:
        if source is not None:
            source.close()


def _connect(kafka: KafkaTarget, project_dir: Path) -> Check:
    from dbt_kafka_sync.kafka.producer import Publisher

    try:
        metadata = Publisher(kafka, project_dir).metadata()
    except SyncError as exc:
        return Check("connection", False, exc.render())
    brokers = len(metadata.brokers)
    return Check("connection", True, f"{describe(kafka)}: authenticated, {brokers} broker(s)")


def _topic_checks(
    kafka: KafkaTarget, project_dir: Path, models: list[SyncedModel]
) -> Iterator[Check]:
    from confluent_kafka import KafkaException, TopicCollection
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.admin._acl import AclOperation  # not re-exported for type checkers

    from dbt_kafka_sync.kafka.producer import client_log

    settings = {
        **security_settings(kafka, project_dir),
        "bootstrap.servers": kafka.bootstrap_servers,
        "client.id": kafka.client_id,
        "logger": client_log(),
    }
    admin = AdminClient(settings)
    for model in models:
        for sync in model.syncs:
            label = f"topic of {model.name}" + ("" if sync.name == "default" else f" [{sync.name}]")
            if sync.topic is None:
                yield Check(label, True, f"from column {sync.topic_column}: checked at run time")
                continue
            future = admin.describe_topics(
                TopicCollection([sync.topic]), include_authorized_operations=True
            )[sync.topic]
            try:
                description = future.result(TIMEOUT_S)
            except KafkaException as exc:
                yield Check(label, False, f"'{sync.topic}': {exc.args[0].str()}")
                continue
            except TimeoutError:
                yield Check(label, False, f"'{sync.topic}': no answer within {TIMEOUT_S:.0f} s")
                continue
            operations = description.authorized_operations or []
            writable = AclOperation.WRITE in operations or AclOperation.ALL in operations
            partitions = len(description.partitions)
            yield Check(
                label,
                writable,
                f"'{sync.topic}', {partitions} partition(s), "
                + ("writable" if writable else "NOT writable by this principal (ACLs)"),
            )
