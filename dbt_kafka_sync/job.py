"""One sync of one model, as one object: prepare (read + diff) -> publish -> commit."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from dbt_kafka_sync import faults
from dbt_kafka_sync.changes.diff import CHANGES, EVENT, PREVIOUS
from dbt_kafka_sync.changes.input import DiffInput
from dbt_kafka_sync.config.kafka import DEFAULT_RENDER_WORKERS_FROM_ROWS
from dbt_kafka_sync.errors import KafkaError, StateError
from dbt_kafka_sync.kafka.delivery import Deliveries, trace_failures
from dbt_kafka_sync.kafka.markers import Marker
from dbt_kafka_sync.kafka.producer import Routing
from dbt_kafka_sync.kafka.progress import Progress
from dbt_kafka_sync.kafka.transactions import TransactionOutcomeUnknown
from dbt_kafka_sync.messages import batch as message_batch
from dbt_kafka_sync.messages.columns import (
    ChangeTable,
    MessageColumns,
    message_columns,
    require_columns,
    required_columns,
    select_messages,
)
from dbt_kafka_sync.messages.recording import MessageRecorder
from dbt_kafka_sync.messages.rendering import RenderPool
from dbt_kafka_sync.messages.template_compiler import compile_template
from dbt_kafka_sync.sql import arrow_batches, events_list
from dbt_kafka_sync.state.base import ChangeRequest, FoundChanges
from dbt_kafka_sync.state.history import MAX_RECORDED_ROWS, FailedRow, Sample, SyncOutcome
from dbt_kafka_sync.state.message_log import SentLog, StageTiming, Throughput
from dbt_kafka_sync.state.prepared import PreparedCommit
from dbt_kafka_sync.state.staging import StagedLog
from dbt_kafka_sync.state.store import (
    SyncIdentity,
    SyncRecord,
    fingerprint,
    prepared_table,
    sync_id,
)

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from dbt_kafka_sync.config.kafka import DebuggerConfig
    from dbt_kafka_sync.config.sync import SyncConfig
    from dbt_kafka_sync.dbt.manifest import SyncedModel
    from dbt_kafka_sync.kafka.producer import Publisher
    from dbt_kafka_sync.kafka.transactions import SyncTransaction
    from dbt_kafka_sync.messages.templating import MessageTemplate, TemplateLoader
    from dbt_kafka_sync.sources.base import Source
    from dbt_kafka_sync.state.base import StateStore
    from dbt_kafka_sync.state.staging import StagedCommit

log = logging.getLogger("dbt_kafka_sync.sync")

BATCH_ROWS = 50_000  # rows per Arrow record batch: memory stays flat as tables grow
SAMPLE_MESSAGES = 3


@dataclass(frozen=True)
class JobContext:
    """What every sync of a run shares."""

    connection: duckdb.DuckDBPyConnection
    source: Source
    store: StateStore
    publisher: Publisher | None  # None for a dry run (`plan`)
    target: str
    run_id: str
    templates: TemplateLoader
    started_at: str = ""
    full_refresh: bool = False
    delivery: str = "at_least_once"  # the profile output's; a sync may override it
    # Opens a sync's transactional producer (exactly-once); None for a dry run.
    transactions: Callable[[str], SyncTransaction] | None = None
    # What the debugger records of each sync's messages; None records nothing (`plan`).
    debugger: DebuggerConfig | None = None
    # Processes rendering Liquid templates, for syncs with at least that many messages.
    render_workers: int = 1
    render_workers_from_rows: int = DEFAULT_RENDER_WORKERS_FROM_ROWS

    def template_context(self, model: SyncedModel) -> dict[str, Any]:
        """What every message of a template sync sees besides its row."""
        return {"model": model.name, "run": {"id": self.run_id, "started_at": self.started_at}}


def diff_input(
    model: str,
    sync: SyncConfig,
    types: dict[str, str],
    template: MessageTemplate | None,
) -> DiffInput:
    """Decide which columns the snapshot keeps and which ones count as a change.

    The relation is left empty: the source fills it once it knows which columns to read.
    """
    required = required_columns(sync, types, template)
    compare = sync.compare_columns or [c for c in required if c not in sync.primary_key]
    require_columns(model, types, compare, "compare_columns")
    kept = set(required) | set(compare) | set(sync.primary_key)
    return DiffInput(
        relation="",
        primary_key=list(sync.primary_key),
        columns={c: types[c] for c in types if c in kept},
        compare_columns=compare or list(sync.primary_key),
    )


@contextmanager
def _writing_state() -> Iterator[None]:
    """A state write that fails (a full disk) is the state's error, not the model's."""
    import duckdb

    try:
        yield
    except (OSError, duckdb.Error) as exc:
        raise StateError(
            f"could not write the state: {exc}; nothing of this sync was committed, so its"
            " changes are found and sent again by the next run",
            hint="free space where the state is kept, then run again",
        ) from None


def _abort_quietly(transaction: SyncTransaction) -> None:
    """Abort after an error; the error matters more than a failure to abort."""
    try:
        transaction.abort()
    except Exception:  # an unaborted transaction times out, or the next run's fences it
        log.debug("could not abort the transaction", exc_info=True)


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
    if shaping["message"] is not None:  # whoever builds them, the messages are the same
        shaping["message"].pop("compile", None)
    return fingerprint(shaping)


@dataclass(frozen=True)
class _Plan:
    """A sync checked against its model's columns: what to compare, how to build messages."""

    request: ChangeRequest
    messages: MessageColumns
    template: MessageTemplate | None


@dataclass(frozen=True)
class PreparedSync:
    """A sync after the diff: what to publish and how to commit it."""

    request: ChangeRequest
    found: FoundChanges
    events: list[str]
    query: str
    template: MessageTemplate | None
    renderer: MessageTemplate | None  # the template when Liquid renders it, not DuckDB
    # Liquid renders only the few rows DuckDB cannot write exactly: never worth processes.
    renders_few_rows: bool = False


class SyncJob:
    """One sync of one model: its changes are published, then the delivered ones committed."""

    def __init__(self, context: JobContext, model: SyncedModel, sync: SyncConfig) -> None:
        self.context = context
        self.model = model
        self.sync = sync
        self.sync_id = sync_id(context.target, model.unique_id, sync.name)
        self.outcome = SyncOutcome(
            model.name, sync.name, sync.destination, unique_id=model.unique_id
        )
        self._recorded = False  # the outcome is in the history (a prepared commit)
        self._timings: list[StageTiming] = []  # the debugger's, stage by stage
        self._recorder: MessageRecorder | None = None

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The run's DuckDB session."""
        return self.context.connection

    @property
    def exactly_once(self) -> bool:
        """The sync's changes go out in Kafka transactions."""
        return (self.sync.delivery or self.context.delivery) == "exactly_once"

    def run(self) -> SyncOutcome:
        """Publish the sync's changes and commit what was delivered.

        A commit an earlier exactly-once run left prepared is settled first, whatever
        the sync's delivery is now.
        """
        store = self.context.store
        pending = store.pending_commit(self.sync_id)
        if not (self.exactly_once or pending):
            prepared = self.prepare()
            store.check_lock()  # a run that lost its lock must not publish
            self._publish_then_commit(prepared)
            return self.outcome
        assert self.context.transactions is not None
        transaction = self.context.transactions(self.sync_id)
        try:
            if pending is not None:
                self._settle(pending, transaction)
            prepared = self.prepare()
            store.check_lock()
            if self.exactly_once and self._count(prepared.events):
                self._publish_in_transaction(prepared, transaction)
            else:  # nothing to send: nothing for a transaction to make atomic
                self._publish_then_commit(prepared)
        finally:
            transaction.close()
        return self.outcome

    def plan(self) -> SyncOutcome:
        """Count what a run would publish, with sample messages; publish and write nothing."""
        prepared = self.prepare()
        self.outcome.samples = self._samples(prepared)
        self.outcome.published = self._count(prepared.events)
        return self.outcome

    def failed(self, error: str) -> SyncOutcome:
        """The outcome of a sync that failed before its commit, kept in the run history.

        Nothing of it is committed, so none of its counts hold: only the error. A sync
        whose commit was prepared has its line in the history already.
        """
        self.outcome = SyncOutcome(
            self.model.name, self.sync.name, self.sync.destination, unique_id=self.model.unique_id
        )
        self.outcome.error = error
        self._record_unsynced()
        return self.outcome

    def skipped(self, reason: str) -> SyncOutcome:
        """The outcome of a sync left out on purpose: its state stays as it was."""
        self.outcome = SyncOutcome(
            self.model.name, self.sync.name, self.sync.destination, unique_id=self.model.unique_id
        )
        self.outcome.skipped = reason
        self._record_unsynced()
        return self.outcome

    def _record_unsynced(self) -> None:
        if self.context.publisher is None or self._recorded:  # `plan` writes nothing
            return
        try:
            with _writing_state():
                self.context.store.record_outcome(self.context.run_id, self.sync_id, self.outcome)
        except StateError as exc:  # e.g. the disk is full: the sync's outcome says more
            log.warning("%s: the run history misses this sync: %s", self.model.name, exc)

    def change_request(self) -> ChangeRequest:
        """What the store is asked to compare (the model's columns read, no row)."""
        return self._plan().request

    def _plan(self) -> _Plan:
        """Check the whole config against the model's columns, before any row is read."""
        model, sync = self.model, self.sync
        template = self.context.templates.for_sync(model.name, sync.message)
        columns = self.context.source.columns(self.connection, model)
        types = {column.name: column.duckdb_type for column in columns}
        diff = diff_input(model.name, sync, types, template)
        messages = message_columns(model.name, sync, diff.columns, template)
        if template is not None:
            messages = self._compiled(messages, template, diff.columns)
        read = [column for column in columns if column.name in diff.columns]
        with_previous = template is not None and template.reads_previous()
        full_refresh = self.context.full_refresh
        skip_initial = sync.initial_sync == "skip" and not full_refresh
        request = ChangeRequest(
            model, self.sync_id, diff, read, full_refresh, with_previous, skip_initial
        )
        return _Plan(request, messages, template)

    def _compiled(
        self, messages: MessageColumns, template: MessageTemplate, types: dict[str, str]
    ) -> MessageColumns:
        """Let DuckDB build the template's messages where it writes exactly what Liquid does."""
        model, sync = self.model, self.sync
        if sync.message is not None and not sync.message.compile:
            reason: str | None = "message.compile is false"
        else:
            context = self.context.template_context(model)
            compiled = compile_template(template, types, context)
            reason = compiled.reason
        if reason is not None:
            log.debug("%s (%s): Liquid renders the template: %s", model.name, sync.name, reason)
            self.outcome.template_builder = f"Liquid: {reason}"
            return messages
        log.debug("%s (%s): DuckDB builds the template's messages", model.name, sync.name)
        self.outcome.template_builder = "DuckDB"
        return compiled.messages(messages)

    def prepare(self) -> PreparedSync:
        """Validate the model against the config, then fill the temp table of changes."""
        started = time.monotonic()
        sync, outcome = self.sync, self.outcome
        plan = self._plan()
        request, messages, template = plan.request, plan.messages, plan.template
        diff, with_previous = request.diff, request.with_previous
        found = self.context.store.find_changes(request)
        outcome.rejected, outcome.rejected_examples = found.rejected, found.rejected_examples
        outcome.notes = self._config_change_notes(template, found.record) + found.notes
        outcome.counts = found.counts
        record = found.record
        skip_initial = record is None and request.skip_initial
        if skip_initial:
            outcome.nothing_sent = (
                "initial_sync: skip - the current rows are recorded, none is sent"
            )
            outcome.notes.append(outcome.nothing_sent)
        events: list[str] = [] if skip_initial else list(sync.events)
        changes = ChangeTable(CHANGES, found.diff.seq, EVENT, PREVIOUS if with_previous else None)
        query = select_messages(messages, sync, events, list(diff.columns), changes)
        self._stage("read+diff", time.monotonic() - started)
        few_rows = messages.template_rows is not None
        return PreparedSync(request, found, events, query, template, messages.template, few_rows)

    def publish(
        self,
        prepared: PreparedSync,
        publisher: Publisher,
        recorder: MessageRecorder | None = None,
    ) -> Deliveries:
        """Send the prepared messages; find the rows of those that failed.

        `recorder` records them for the debugger (by default, a new one when it is on).
        """
        self._recorder = recorder or self._new_recorder(prepared)
        name, destination = self.model.name, self.sync.destination
        to_publish = self._count(prepared.events)
        partitions: dict[str, int] = {}
        if to_publish:
            partitions = publisher.partition_counts(self._topics(prepared))
            log.info("%s: publishing %d messages to %s", name, to_publish, destination)
        routing = Routing(partitions, list(self.sync.headers), self.sync.event_header)
        started = time.monotonic()
        with (
            self._messages(prepared, rows=to_publish) as batches,
            Progress(f"{name} -> {destination}", to_publish) as progress,
        ):
            deliveries = publisher.publish(self._recording(prepared, batches), routing, progress)
        clock = deliveries.clock
        self._stage("render+send", clock.sent - started)
        self._stage("flush", clock.flushed - clock.sent)
        traced = time.monotonic()
        self._trace_failures(prepared, deliveries)
        if deliveries.failed_messages:
            self._stage("trace failures", time.monotonic() - traced)
        self.outcome.published = deliveries.produced
        self.outcome.delivered = deliveries.delivered
        self.outcome.failed = len(deliveries.failed)
        self.outcome.failures = self._failed_rows(prepared, deliveries.failed)
        self._keep_log(deliveries)
        return deliveries

    def _new_recorder(self, prepared: PreparedSync) -> MessageRecorder | None:
        """What records the messages when the debugger is on: built again by DuckDB, or copied."""
        debugger = self.context.debugger
        if debugger is None or not debugger.enabled:
            return None
        recorder = MessageRecorder(self.connection, debugger.record_values)
        if prepared.renderer is None or prepared.renders_few_rows:
            recorder.rebuild(prepared.query, datetime.now(timezone.utc))
        if prepared.renders_few_rows:
            recorder.patch_rendered()  # the few rows Liquid renders: NULL in the query
        return recorder

    def _recording(
        self, prepared: PreparedSync, batches: Iterator[pa.RecordBatch]
    ) -> Iterator[pa.RecordBatch]:
        """The batches to send; rendered values are recorded on the way when the debugger is on."""
        if self._recorder is None:
            return batches
        if self._recorder.patches:
            return self._recorder.collect(batches)
        if self._recorder.rebuilt:
            return batches
        return self._recorder.record(batches)

    def _stage(self, stage: str, seconds: float) -> None:
        self._timings.append(
            StageTiming(self.sync_id, self.model.name, self.sync.name, stage, seconds)
        )

    def _keep_log(self, deliveries: Deliveries, unconfirmed: str | None = None) -> None:
        """The debugger's records of the sync, for its commit to write (if it records)."""
        if self._recorder is None:
            return
        refused = deliveries.refused.keys()
        rows = self._recorder.finish(deliveries.failed, refused, unconfirmed)
        rates = [Throughput(self.sync_id, s, n) for s, n in deliveries.clock.per_second()]
        self.outcome.log = SentLog(
            rows,
            self._timings,
            rates,
            undelivered=self._recorder.undelivered,
            rendered=self._recorder.rendered,
        )

    def _commit_begins(self) -> None:
        if self.outcome.log is not None:
            self.outcome.log.commit_started = time.monotonic()

    def commit(
        self,
        prepared: PreparedSync,
        deliveries: Deliveries,
        staged: StagedCommit[Any] | None = None,
    ) -> None:
        """Advance the snapshot for every delivered change and record the outcome.

        `staged` is the commit begun while the messages were sent, which this completes.
        """
        failed = deliveries.failed_array()
        identity = self._committed_identity(prepared)
        self._commit_begins()
        with _writing_state():
            self.context.store.commit(
                prepared.found, failed, identity, self.context.run_id, self.outcome, staged
            )

    def _publish_then_commit(self, prepared: PreparedSync) -> None:
        """At least once: send, flush, then commit what was delivered.

        The commit is begun as the messages go out (see state/staging.py) and completed,
        in the same transaction, once the producer is flushed.
        """
        recorder = self._new_recorder(prepared)
        staged = self._stage_commit(prepared, recorder)
        try:
            deliveries = self.publish(prepared, self._publisher(), recorder)
            faults.reached(faults.AFTER_FLUSH)
            self.commit(prepared, deliveries, staged)
        finally:
            if staged is not None:
                staged.close()

    def _stage_commit(
        self, prepared: PreparedSync, recorder: MessageRecorder | None
    ) -> StagedCommit[Any] | None:
        """Begin the commit while the messages are sent, with their log when DuckDB builds it.

        Messages Liquid renders are logged as they are sent, into a table the staged
        transaction, begun before, would not see: their commit is done after the flush.
        A template DuckDB builds but for a few rows is staged: the commit patches the
        values of those rows in (SentLog.rendered).
        """
        if recorder is not None and not recorder.rebuilt:
            return None
        log = None
        if recorder is not None:
            log = StagedLog(recorder.as_delivered(), (self.model.name, self.sync.name))
        with _writing_state():
            return self.context.store.stage_commit(
                prepared.found, self.sync_id, self.context.run_id, log
            )

    def _committed_identity(self, prepared: PreparedSync) -> SyncIdentity:
        # A new message shape counts as adopted only once every row went out without error,
        # so that after failures the next run still warns that the config changed.
        shape = message_fingerprint(self.sync, prepared.template)
        record = prepared.found.record
        if record is not None and not self.outcome.ok:
            shape = record.fingerprint
        return self.identity(shape, self.context.store.hash_version)

    def _publisher(self) -> Publisher:
        assert self.context.publisher is not None  # a dry run never publishes
        return self.context.publisher

    def _publish_in_transaction(self, prepared: PreparedSync, transaction: SyncTransaction) -> None:
        """Exactly-once: send in a transaction, prepare the commit, commit Kafka, then the state.

        See kafka/transactions.py for the protocol and what a crash at each step leaves.
        """
        store = self.context.store
        marker = transaction.next_marker()
        transaction.begin()
        try:
            deliveries = self.publish(prepared, transaction.publisher)
        except BaseException:
            _abort_quietly(transaction)
            raise
        faults.reached(faults.AFTER_FLUSH)
        if deliveries.failed_messages or deliveries.too_many_failed:
            transaction.abort()
            self._aborted(deliveries)
            return
        commit = self._prepared_commit(prepared, marker)
        try:
            transaction.check_time_left()
            self._commit_begins()
            with _writing_state():
                store.prepare_commit(deliveries.failed_array(), commit, self.outcome)
        except BaseException:
            _abort_quietly(transaction)
            raise
        self._recorded = True
        faults.reached(faults.BEFORE_KAFKA_COMMIT)
        try:
            transaction.commit(marker, marker.value(self.context.run_id, self.sync_id))
        except TransactionOutcomeUnknown:
            raise  # the prepared commit stays: the next run settles it from the marker
        except KafkaError as exc:  # aborted: nothing of it is visible
            store.discard_commit(commit, exc.render())
            raise
        faults.reached(faults.AFTER_KAFKA_COMMIT)
        with _writing_state():
            store.complete_commit(commit)

    def _prepared_commit(self, prepared: PreparedSync, marker: Marker) -> PreparedCommit:
        found = prepared.found
        view = found.pending  # the stored snapshot as the diff saw it, when there is one
        return PreparedCommit(
            sync_id=self.sync_id,
            run_id=self.context.run_id,
            marker=marker.to_json(),
            identity=self._committed_identity(prepared),
            diff=found.diff,
            view_sql=view.sql if view is not None else None,
            view_rewrite=bool(view is not None and view.rewrite),
            table=prepared_table(self.sync_id),
        )

    def _aborted(self, deliveries: Deliveries) -> None:
        """The transaction was aborted after delivery failures: no row of it counts as sent."""
        failed = len(deliveries.failed) - len(deliveries.refused)
        self.outcome.delivered = 0
        self.outcome.failed = deliveries.produced + len(deliveries.refused)
        self.outcome.error = (
            f"{failed} message(s) failed, so the sync's transaction was aborted: none of its"
            f" {deliveries.produced} messages is visible to read_committed consumers, and the"
            " next run sends them again"
        )
        self._keep_log(deliveries, unconfirmed="the sync's transaction was aborted")
        self.context.store.record_outcome(self.context.run_id, self.sync_id, self.outcome)
        self._recorded = True

    def _settle(self, pending: PreparedCommit, transaction: SyncTransaction) -> None:
        """Complete or discard the commit an interrupted run prepared, as its marker says."""
        store = self.context.store
        if transaction.holds(Marker.from_json(pending.marker)):
            store.complete_commit(pending)
            note = (
                f"run {pending.run_id} was interrupted after its Kafka transaction committed:"
                " its state commit is completed now, so nothing of it is sent again"
            )
        else:
            reason = (
                f"run {pending.run_id} was interrupted before its Kafka transaction committed:"
                " nothing of it reached read_committed consumers; its changes are sent now"
            )
            store.discard_commit(pending, reason)
            note = reason
        log.warning("%s [%s]: %s", self.model.name, self.sync.name, note)

    def identity(self, shape: str, hash_version: str) -> SyncIdentity:
        """The sync's record as a commit writes it, with this message shape and row hash."""
        return SyncIdentity(
            sync_id=self.sync_id,
            target=self.context.target,
            model_unique_id=self.model.unique_id,
            sync_name=self.sync.name,
            topic=self.sync.destination,
            fingerprint=shape,
            hash_version=hash_version,
        )

    def _trace_failures(self, prepared: PreparedSync, deliveries: Deliveries) -> None:
        """Find the rows of the messages that failed, by building the messages again."""
        if not deliveries.failed_messages:
            trace_failures(deliveries, [])
            return
        failed = len(deliveries.failed_messages)
        log.info("%s: %d messages failed; finding their rows", self.model.name, failed)
        with self._messages(prepared, rows=self._count(prepared.events)) as batches:
            trace_failures(deliveries, batches)

    def _failed_rows(self, prepared: PreparedSync, failed: dict[int, str]) -> list[FailedRow]:
        """Name the first failed rows (as many as the history keeps) by primary key and event."""
        if not failed:
            return []
        seqs = sorted(failed)[:MAX_RECORDED_ROWS]
        rows = self.connection.execute(
            f"SELECT {message_batch.SEQ}, {message_batch.ROW_KEY}, {message_batch.EVENT}"
            f" FROM ({prepared.query}) WHERE {message_batch.SEQ} IN ({', '.join(map(str, seqs))})"
            f" ORDER BY {message_batch.SEQ}"
        ).fetchall()
        return [FailedRow(row_key, event, failed[seq]) for seq, row_key, event in rows]

    def _topics(self, prepared: PreparedSync) -> list[str]:
        """Every topic the sync's messages go to; all must exist before anything is sent."""
        if self.sync.topic:
            return [self.sync.topic]
        topic = message_batch.TOPIC
        rows = self.connection.execute(
            f"SELECT DISTINCT {topic} FROM ({prepared.query}) WHERE {topic} IS NOT NULL"
        ).fetchall()
        return [str(value) for (value,) in rows]

    @contextmanager
    def _messages(
        self, prepared: PreparedSync, query: str = "", rows: int = 0
    ) -> Iterator[Iterator[pa.RecordBatch]]:
        """Stream the messages of the prepared query (or of `query`, built on it).

        A template sync renders its values on the way: in rendering processes when it
        has `rows` messages, at least render_workers_from_rows, and there are several
        processes; the batches are the same either way. The result is closed at the end:
        DuckDB refuses other statements while one is open.
        """
        reader = arrow_batches(self.connection, query or prepared.query, BATCH_ROWS)
        try:
            renderer, context = prepared.renderer, self.context
            if renderer is None:
                yield iter(reader)
                return
            tombstone = self.sync.on_remove == "tombstone"
            rendering = context.template_context(self.model)
            parallel = (
                context.render_workers > 1
                and rows >= context.render_workers_from_rows
                and not prepared.renders_few_rows
            )
            if not parallel or renderer.spec() is None:
                yield renderer.render_batches(reader, rendering, tombstone)
                return
            workers = context.render_workers
            log.info("%s: rendering %d messages in %d processes", self.model.name, rows, workers)
            with RenderPool(renderer, rendering, tombstone, workers, self.model.name) as pool:
                yield pool.render_batches(reader)
                log.debug("%s: rows rendered by process id: %s", self.model.name, pool.rendered_by)
        finally:
            reader.close()

    def _count(self, events: list[str]) -> int:
        [(count,)] = self.connection.execute(
            f"SELECT count(*) FROM {CHANGES} WHERE {EVENT} IN ({events_list(events)})"
        ).fetchall()
        return int(count)

    def _samples(self, prepared: PreparedSync) -> list[Sample]:
        """A few messages as they would be sent (or why they could not be)."""
        query = f"SELECT * FROM ({prepared.query}) LIMIT {SAMPLE_MESSAGES}"
        samples = []
        columns = [message_batch.EVENT, message_batch.KEY, message_batch.VALUE]
        with self._messages(prepared, query) as batches:
            for batch in batches:
                for row in batch.select([*columns, message_batch.ROW_ERROR]).to_pylist():
                    error = row[message_batch.ROW_ERROR]
                    shown = row[message_batch.VALUE] if error is None else f"<{error}>"
                    samples.append(
                        Sample(str(row[message_batch.EVENT]), row[message_batch.KEY], shown)
                    )
        return samples

    def _config_change_notes(
        self, template: MessageTemplate | None, record: SyncRecord | None
    ) -> list[str]:
        if record is None or record.fingerprint == message_fingerprint(self.sync, template):
            return []
        if self.context.full_refresh:
            return ["the message config changed; --full-refresh resends every row in the new shape"]
        return [
            "the message config (topic, key, message or on_remove) changed since the last run:"
            " rows already published are not resent; only rows that change from now on are sent"
            " in the new shape. Use --full-refresh to resend every row."
        ]
