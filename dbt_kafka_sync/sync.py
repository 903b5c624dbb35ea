"""One sync of one model: read -> diff -> messages -> publish -> commit delivered rows."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dbt_kafka_sync.diff import (
    CHANGES,
    EVENT,
    SEQ,
    ChangeCounts,
    DiffInput,
    check_duplicate_keys,
    compute_changes,
    null_key_rows,
)
from dbt_kafka_sync.messages import (
    MessageColumns,
    message_columns,
    require_columns,
    required_columns,
)
from dbt_kafka_sync.producer import Deliveries, FailedRow
from dbt_kafka_sync.snapshot import (
    SnapshotView,
    SyncIdentity,
    SyncOutcome,
    commit,
    events_list,
    snapshot_view,
)
from dbt_kafka_sync.sql import arrow_batches
from dbt_kafka_sync.state import SyncRecord, fingerprint, load_sync, sync_id

if TYPE_CHECKING:
    import duckdb

    from dbt_kafka_sync.config import SyncConfig
    from dbt_kafka_sync.manifest import SyncedModel
    from dbt_kafka_sync.producer import Publisher
    from dbt_kafka_sync.warehouse.duckdb import DuckDBWarehouse

log = logging.getLogger(__name__)

BATCH_ROWS = 50_000  # rows per Arrow record batch: memory stays flat as tables grow
SAMPLE_MESSAGES = 3


@dataclass(frozen=True)
class SyncContext:
    """What every sync of a run shares."""

    connection: duckdb.DuckDBPyConnection
    warehouse: DuckDBWarehouse
    publisher: Publisher | None  # None for a dry run (`plan`)
    target: str
    run_id: str
    full_refresh: bool = False


@dataclass
class SyncResult:
    """The outcome of one sync, as printed in the run summary."""

    model: str
    sync: str
    topic: str
    counts: ChangeCounts = field(default_factory=ChangeCounts)
    published: int = 0
    delivered: int = 0
    failed: int = 0
    rejected: int = 0
    failures: list[FailedRow] = field(default_factory=list)
    rejected_examples: list[str] = field(default_factory=list)
    samples: list[tuple[str, str | None, str | None]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when every message was delivered and no row was rejected."""
        return self.error is None and self.failed == 0 and self.rejected == 0


def describe_columns(connection: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    """Return column name -> DuckDB type for a relation."""
    rows = connection.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    return {str(row[0]): str(row[1]) for row in rows}


def diff_input(model: str, sync: SyncConfig, relation: str, types: dict[str, str]) -> DiffInput:
    """Decide which columns the snapshot keeps and which ones count as a change."""
    compare = sync.compare_columns or [
        c for c in required_columns(sync, types) if c not in sync.primary_key
    ]
    require_columns(model, types, compare, "compare_columns")
    kept = set(required_columns(sync, types)) | set(compare) | set(sync.primary_key)
    return DiffInput(
        relation=relation,
        primary_key=list(sync.primary_key),
        columns={c: types[c] for c in types if c in kept},
        compare_columns=compare or list(sync.primary_key),
    )


def message_fingerprint(sync: SyncConfig) -> str:
    """Fingerprint of what shapes a sync's messages, to notice when it changes."""
    shaping = {
        "topic": sync.topic,
        "key_column": sync.key_column,
        "message": sync.message.model_dump() if sync.message else None,
        "on_remove": sync.on_remove,
    }
    return fingerprint(shaping)


@dataclass(frozen=True)
class _Plan:
    """A sync after the diff: what to publish and how to commit it."""

    diff: DiffInput
    record: SyncRecord | None
    view: SnapshotView | None
    events: list[str]
    query: str


def sync_model(context: SyncContext, model: SyncedModel, sync: SyncConfig) -> SyncResult:
    """Run one sync: publish its changes (or, without a publisher, only count them)."""
    result = SyncResult(model.name, sync.name, sync.topic)
    plan = _diff(context, model, sync, result)
    if context.publisher is None:
        result.samples = _samples(context.connection, plan.query)
        result.published = _count(context.connection, plan.events)
        return result
    deliveries = _publish(context, model, sync, plan, result)
    _commit(context, model, sync, plan, deliveries, result)
    return result


def _diff(context: SyncContext, model: SyncedModel, sync: SyncConfig, result: SyncResult) -> _Plan:
    """Validate the model against the config, then fill the temp table of changes."""
    connection = context.connection
    relation = context.warehouse.relation(connection, model)
    diff = diff_input(model.name, sync, relation, describe_columns(connection, relation))
    messages = message_columns(model.name, sync, diff.columns)
    check_duplicate_keys(connection, model.name, diff)
    result.rejected, result.rejected_examples = null_key_rows(connection, diff)

    record = load_sync(connection, sync_id(context.target, model.unique_id, sync.name))
    view = snapshot_view(model.name, diff, record, _duckdb_version()) if record else None
    result.notes = _config_change_notes(sync, record, context) + (view.notes if view else [])
    result.counts = compute_changes(
        connection, diff, view.sql if view else None, context.full_refresh
    )
    skip_initial = record is None and sync.initial_sync == "skip" and not context.full_refresh
    if skip_initial:
        result.notes.append("initial_sync: skip - the current rows are recorded, none is sent")
    events: list[str] = [] if skip_initial else list(sync.events)
    return _Plan(diff, record, view, events, _messages_query(messages, sync, events))


def _publish(
    context: SyncContext, model: SyncedModel, sync: SyncConfig, plan: _Plan, result: SyncResult
) -> Deliveries:
    assert context.publisher is not None
    to_publish = _count(context.connection, plan.events)
    if to_publish:
        context.publisher.partition_counts([sync.topic])
        log.info("%s: publishing %d messages to %s", model.name, to_publish, sync.topic)
    batches = arrow_batches(context.connection, plan.query, BATCH_ROWS)
    deliveries = context.publisher.publish(sync.topic, batches, sync.event_header)
    result.published = deliveries.produced
    result.delivered = len(deliveries.delivered)
    result.failed = len(deliveries.failed)
    result.failures = list(deliveries.failed.values())
    return deliveries


def _commit(
    context: SyncContext,
    model: SyncedModel,
    sync: SyncConfig,
    plan: _Plan,
    deliveries: Deliveries,
    result: SyncResult,
) -> None:
    import pyarrow as pa

    identity = sync_id(context.target, model.unique_id, sync.name)
    rejected = [
        FailedRow(None, "rejected", f"primary key is NULL: {example}")
        for example in result.rejected_examples
    ]
    outcome = SyncOutcome(
        run_id=context.run_id,
        sync_id=identity,
        model=model.name,
        sync_name=sync.name,
        topic=sync.topic,
        counts=result.counts,
        published=result.published,
        delivered=result.delivered,
        failed=result.failed,
        rejected=result.rejected,
        failed_rows=result.failures + rejected,
        status="success" if result.ok else "partial",
    )
    # A new message shape counts as adopted only once every row went out without error,
    # so that after failures the next run still warns that the config changed.
    fingerprint = message_fingerprint(sync)
    if plan.record is not None and not result.ok:
        fingerprint = plan.record.fingerprint
    sync_record = SyncIdentity(
        sync_id=identity,
        target=context.target,
        model_unique_id=model.unique_id,
        sync_name=sync.name,
        topic=sync.topic,
        fingerprint=fingerprint,
        duckdb_version=_duckdb_version(),
    )
    unpublished = [e for e in ("added", "changed", "removed") if e not in plan.events]
    delivered = pa.array(deliveries.delivered, type=pa.int64())
    commit(
        context.connection,
        plan.diff,
        plan.view,
        plan.record,
        delivered,
        unpublished,
        sync_record,
        outcome,
    )


def _messages_query(messages: MessageColumns, sync: SyncConfig, events: list[str]) -> str:
    value = messages.value
    if sync.on_remove == "tombstone":
        value = f"CASE WHEN {EVENT} = 'removed' THEN NULL ELSE {value} END"
    # A removed row's message is rebuilt from its last known values; they were valid when
    # sent, and a value the snapshot never held is sent as null rather than failing forever.
    row_error = f"CASE WHEN {EVENT} = 'removed' THEN NULL ELSE {messages.row_error} END"
    return (
        f"SELECT {SEQ} AS seq, {EVENT} AS event, {messages.key} AS key, {value} AS value,"
        f" {messages.row_key} AS row_key, {row_error} AS row_error"
        f" FROM {CHANGES} WHERE {EVENT} IN ({events_list(events)}) ORDER BY {SEQ}"
    )


def _count(connection: duckdb.DuckDBPyConnection, events: list[str]) -> int:
    [(count,)] = connection.execute(
        f"SELECT count(*) FROM {CHANGES} WHERE {EVENT} IN ({events_list(events)})"
    ).fetchall()
    return int(count)


def _samples(
    connection: duckdb.DuckDBPyConnection, query: str
) -> list[tuple[str, str | None, str | None]]:
    rows = connection.execute(
        f"SELECT event, key, value FROM ({query}) LIMIT {SAMPLE_MESSAGES}"
    ).fetchall()
    return [(str(event), key, value) for event, key, value in rows]


def _config_change_notes(
    sync: SyncConfig, record: SyncRecord | None, context: SyncContext
) -> list[str]:
    if record is None or record.fingerprint == message_fingerprint(sync):
        return []
    if context.full_refresh:
        return ["the message config changed; --full-refresh resends every row in the new shape"]
    return [
        "the message config (topic, key, message or on_remove) changed since the last run:"
        " rows already published are not resent; only rows that change from now on are sent"
        " in the new shape. Use --full-refresh to resend every row."
    ]


def _duckdb_version() -> str:
    import duckdb

    return str(duckdb.__version__)
