"""One sync of one model: read -> diff -> messages -> publish -> commit delivered rows."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from dbt_kafka_sync.delivery import Deliveries, FailedRow, trace_failures
from dbt_kafka_sync.diff import (
    CHANGES,
    EVENT,
    PREVIOUS,
    ChangeCounts,
    DiffInput,
    compute_changes,
    null_key_rows,
)
from dbt_kafka_sync.messages import (
    ChangeTable,
    message_columns,
    require_columns,
    required_columns,
    select_messages,
)
from dbt_kafka_sync.producer import Routing
from dbt_kafka_sync.progress import Progress
from dbt_kafka_sync.snapshot import (
    MAX_RECORDED_ROWS,
    SnapshotView,
    SyncIdentity,
    SyncOutcome,
    commit,
    snapshot_view,
)
from dbt_kafka_sync.sql import arrow_batches, events_list
from dbt_kafka_sync.state import SyncRecord, fingerprint, load_sync, sync_id
from dbt_kafka_sync.template_sql import template_sql

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from dbt_kafka_sync.config import SyncConfig
    from dbt_kafka_sync.manifest import SyncedModel
    from dbt_kafka_sync.producer import Publisher
    from dbt_kafka_sync.templating import MessageTemplate, TemplateLoader
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
    templates: TemplateLoader
    started_at: str = ""
    full_refresh: bool = False

    def template_context(self, model: SyncedModel) -> dict[str, Any]:
        """What every message of a template sync sees besides its row."""
        return {"model": model.name, "run": {"id": self.run_id, "started_at": self.started_at}}


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


def diff_input(
    model: str,
    sync: SyncConfig,
    relation: str,
    types: dict[str, str],
    template: MessageTemplate | None,
) -> DiffInput:
    """Decide which columns the snapshot keeps and which ones count as a change."""
    required = required_columns(sync, types, template)
    compare = sync.compare_columns or [c for c in required if c not in sync.primary_key]
    require_columns(model, types, compare, "compare_columns")
    kept = set(required) | set(compare) | set(sync.primary_key)
    return DiffInput(
        relation=relation,
        primary_key=list(sync.primary_key),
        columns={c: types[c] for c in types if c in kept},
        compare_columns=compare or list(sync.primary_key),
    )


def message_fingerprint(sync: SyncConfig, template: MessageTemplate | None) -> str:
    """Fingerprint of what shapes a sync's messages, to notice when it changes."""
    shaping = sync.model_dump(
        include={
            "topic",
            "topic_column",
            "key_column",
            "partition_column",
            "headers",
            "message",
            "on_remove",
            "event_header",
        }
    )
    shaping["template_source"] = template.source if template else None  # a file's content
    return fingerprint(shaping)


@dataclass(frozen=True)
class _Plan:
    """A sync after the diff: what to publish and how to commit it."""

    diff: DiffInput
    record: SyncRecord | None
    view: SnapshotView | None
    events: list[str]
    query: str
    template: MessageTemplate | None
    renderer: MessageTemplate | None  # the template when Liquid renders it, not DuckDB


def sync_model(context: SyncContext, model: SyncedModel, sync: SyncConfig) -> SyncResult:
    """Run one sync: publish its changes (or, without a publisher, only count them)."""
    result = SyncResult(model.name, sync.name, sync.destination)
    plan = _diff(context, model, sync, result)
    if context.publisher is None:
        result.samples = _samples(context, model, sync, plan)
        result.published = _count(context.connection, plan.events)
        return result
    deliveries = _publish(context, model, sync, plan, result)
    _commit(context, model, sync, plan, deliveries, result)
    return result


def _diff(context: SyncContext, model: SyncedModel, sync: SyncConfig, result: SyncResult) -> _Plan:
    """Validate the model against the config, then fill the temp table of changes."""
    connection = context.connection
    template = context.templates.for_sync(model.name, sync.message)
    relation = context.warehouse.relation(connection, model)
    types = describe_columns(connection, relation)
    diff = diff_input(model.name, sync, relation, types, template)
    messages = message_columns(model.name, sync, diff.columns, template)
    built = template_sql(template, diff.columns) if template is not None else None
    if built is not None:
        log.debug("%s (%s): DuckDB builds the template's messages", model.name, sync.name)
        messages = replace(messages, value=built, template=None)
    result.rejected, result.rejected_examples = null_key_rows(connection, diff)

    record = load_sync(connection, sync_id(context.target, model.unique_id, sync.name))
    view = snapshot_view(model.name, diff, record, _duckdb_version()) if record else None
    result.notes = _config_change_notes(sync, template, record, context)
    result.notes += view.notes if view else []
    with_previous = template is not None and template.reads_previous()
    result.counts = compute_changes(
        connection,
        diff,
        view.sql if view else None,
        context.full_refresh,
        with_previous,
        model=model.name,
    )
    skip_initial = record is None and sync.initial_sync == "skip" and not context.full_refresh
    if skip_initial:
        result.notes.append("initial_sync: skip - the current rows are recorded, none is sent")
    events: list[str] = [] if skip_initial else list(sync.events)
    changes = ChangeTable(CHANGES, diff.seq, EVENT, PREVIOUS if with_previous else None)
    query = select_messages(messages, sync, events, list(diff.columns), changes)
    return _Plan(diff, record, view, events, query, template, messages.template)


def _publish(
    context: SyncContext, model: SyncedModel, sync: SyncConfig, plan: _Plan, result: SyncResult
) -> Deliveries:
    assert context.publisher is not None
    to_publish = _count(context.connection, plan.events)
    partitions: dict[str, int] = {}
    if to_publish:
        partitions = context.publisher.partition_counts(_topics(context, sync, plan))
        log.info("%s: publishing %d messages to %s", model.name, to_publish, sync.destination)
    routing = Routing(partitions, list(sync.headers), sync.event_header)
    with _messages(context, model, sync, plan) as batches:
        progress = Progress(f"{model.name} -> {sync.destination}", to_publish)
        deliveries = context.publisher.publish(batches, routing, progress)
    _trace_failures(context, model, sync, plan, deliveries)
    result.published = deliveries.produced
    result.delivered = deliveries.delivered
    result.failed = len(deliveries.failed)
    result.failures = _failed_rows(context, plan, deliveries.failed)
    return deliveries


def _trace_failures(
    context: SyncContext, model: SyncedModel, sync: SyncConfig, plan: _Plan, deliveries: Deliveries
) -> None:
    """Find the rows of the messages that failed, by building the messages again."""
    if not deliveries.failed_messages:
        trace_failures(deliveries, [])
        return
    failed = len(deliveries.failed_messages)
    log.info("%s: %d messages failed; finding their rows", model.name, failed)
    with _messages(context, model, sync, plan) as batches:
        trace_failures(deliveries, batches)


def _failed_rows(context: SyncContext, plan: _Plan, failed: dict[int, str]) -> list[FailedRow]:
    """Name the first failed rows (as many as the history keeps) by primary key and event."""
    if not failed:
        return []
    seqs = sorted(failed)[:MAX_RECORDED_ROWS]
    rows = context.connection.execute(
        f"SELECT seq, row_key, event FROM ({plan.query}) WHERE seq IN ({', '.join(map(str, seqs))})"
        " ORDER BY seq"
    ).fetchall()
    return [FailedRow(row_key, event, failed[seq]) for seq, row_key, event in rows]


def _commit(
    context: SyncContext,
    model: SyncedModel,
    sync: SyncConfig,
    plan: _Plan,
    deliveries: Deliveries,
    result: SyncResult,
) -> None:
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
        topic=sync.destination,
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
    fingerprint = message_fingerprint(sync, plan.template)
    if plan.record is not None and not result.ok:
        fingerprint = plan.record.fingerprint
    sync_record = SyncIdentity(
        sync_id=identity,
        target=context.target,
        model_unique_id=model.unique_id,
        sync_name=sync.name,
        topic=sync.destination,
        fingerprint=fingerprint,
        duckdb_version=_duckdb_version(),
    )
    commit(
        context.connection,
        plan.diff,
        plan.view,
        plan.record,
        deliveries.failed_array(),
        sync_record,
        outcome,
    )


def _topics(context: SyncContext, sync: SyncConfig, plan: _Plan) -> list[str]:
    """Every topic the sync's messages go to; all must exist before anything is sent."""
    if sync.topic:
        return [sync.topic]
    rows = context.connection.execute(
        f"SELECT DISTINCT topic FROM ({plan.query}) WHERE topic IS NOT NULL"
    ).fetchall()
    return [str(topic) for (topic,) in rows]


@contextmanager
def _messages(
    context: SyncContext, model: SyncedModel, sync: SyncConfig, plan: _Plan, query: str = ""
) -> Iterator[Iterator[pa.RecordBatch]]:
    """Stream the messages of the plan's query (or of `query`, built on it).

    A template sync renders its values on the way. The result is closed at the end:
    DuckDB refuses other statements while one is open.
    """
    reader = arrow_batches(context.connection, query or plan.query, BATCH_ROWS)
    try:
        if plan.renderer is None:
            yield iter(reader)
        else:
            tombstone = sync.on_remove == "tombstone"
            rendering = context.template_context(model)
            yield plan.renderer.render_batches(reader, rendering, tombstone)
    finally:
        reader.close()


def _count(connection: duckdb.DuckDBPyConnection, events: list[str]) -> int:
    [(count,)] = connection.execute(
        f"SELECT count(*) FROM {CHANGES} WHERE {EVENT} IN ({events_list(events)})"
    ).fetchall()
    return int(count)


def _samples(
    context: SyncContext, model: SyncedModel, sync: SyncConfig, plan: _Plan
) -> list[tuple[str, str | None, str | None]]:
    """A few messages as they would be sent (or why they could not be)."""
    query = f"SELECT * FROM ({plan.query}) LIMIT {SAMPLE_MESSAGES}"
    samples = []
    with _messages(context, model, sync, plan, query) as batches:
        for batch in batches:
            for row in batch.select(["event", "key", "value", "row_error"]).to_pylist():
                shown = row["value"] if row["row_error"] is None else f"<{row['row_error']}>"
                samples.append((str(row["event"]), row["key"], shown))
    return samples


def _config_change_notes(
    sync: SyncConfig,
    template: MessageTemplate | None,
    record: SyncRecord | None,
    context: SyncContext,
) -> list[str]:
    if record is None or record.fingerprint == message_fingerprint(sync, template):
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
