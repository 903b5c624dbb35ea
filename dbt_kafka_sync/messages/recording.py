"""The debugger's record of a sync's messages, for its commit to copy into the state.

Messages DuckDB builds (every mode but a template Liquid renders) cost the send nothing:
the same query builds them again when the commit copies the log. Rendered values exist
only on the way to the producer, so each of those batches is copied in bulk into a table
of the run's session (through a cursor of its own: the session is busy streaming the
batches); memory stays flat and DuckDB spills a large log as it spills a large diff. A
template DuckDB builds but for a few rows, which Liquid renders, is rebuilt too: only those
rows' values (NULL in the query) are kept as they are sent, and patched in. Once the sync
is flushed, the outcome of each message is joined on.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from dbt_kafka_sync.messages import batch as message_batch
from dbt_kafka_sync.sql import quote_literal, registered

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

LOG = "dks_sent_log"  # rendered messages as sent, a table of the session's own database
OUTCOMES = "dks_sent_outcomes"  # seq -> outcome and reason, for the messages not delivered
RENDERED = "dks_sent_rendered"  # seq -> size and value of the few messages Liquid rendered
SENT = "dks_sent"  # the log with outcomes, in state.debugger.LOG_COLUMNS order
_BATCH = "dks_sent_batch"

_LOG_COLUMNS = """seq BIGINT, event VARCHAR, message_key VARCHAR, row_key VARCHAR,
    topic VARCHAR, message_partition BIGINT, size BIGINT, message_value VARCHAR,
    sent_at TIMESTAMPTZ"""


class MessageRecorder:
    """Where the messages of one sync are, as sent: rebuilt by their query, or copied."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, record_values: bool) -> None:
        self.connection = connection
        self.record_values = record_values
        self.source = ""  # a relation of the session with the columns of _LOG_COLUMNS
        self.rebuilt = False  # the source is a query built again, not a copy of what was sent
        self.undelivered: pa.Table | None = None  # seq, outcome, reason; set by finish()
        # A template DuckDB builds but for a few rows: the rebuilt query has NULL for the
        # values of those rows, which Liquid renders; their values as sent, collected on the
        # way (seq, size, message_value), patch the log.
        self.patches = False
        self.rendered: pa.Table | None = None

    def rebuild(self, query: str, sent_at: datetime) -> None:
        """The messages of a query (message_batch columns) DuckDB builds the same way again."""
        value = message_batch.VALUE if self.record_values else "NULL::VARCHAR"
        self.rebuilt = True
        self.source = (
            f"(SELECT {message_batch.SEQ} AS seq, {message_batch.EVENT} AS event,"
            f" {message_batch.KEY} AS message_key, {message_batch.ROW_KEY} AS row_key,"
            f" {message_batch.TOPIC} AS topic, {message_batch.PARTITION} AS message_partition,"
            f" coalesce(strlen({message_batch.VALUE}), 0) AS size, {value} AS message_value,"
            f" {quote_literal(sent_at.isoformat())}::TIMESTAMPTZ AS sent_at FROM ({query}))"
        )

    def patch_rendered(self) -> None:
        """Collect, as they are sent, the values of the rows Liquid renders (see patches)."""
        assert self.rebuilt
        self.patches = True
        self.rendered = _rendered_table([])

    def collect(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """Yield the batches unchanged, keeping the rendered rows' values (a non-NULL row)."""
        import pyarrow.compute as pc

        for batch in batches:
            flagged = pc.is_valid(batch.column(message_batch.TEMPLATE_ROW))
            if pc.any(flagged).as_py():
                # Kept before the batch is sent: a send stopped early has it all the same.
                parts = [self.rendered] if self.rendered is not None else []
                self.rendered = _rendered_table([*parts, self._rendered(batch.filter(flagged))])
            yield batch

    def _rendered(self, batch: pa.RecordBatch) -> pa.Table:
        import pyarrow as pa
        import pyarrow.compute as pc

        value = batch.column(message_batch.VALUE)
        size = pc.fill_null(pc.cast(pc.binary_length(value), pa.int64()), 0)
        if not self.record_values:
            value = pa.nulls(batch.num_rows, pa.string())
        seq = pc.cast(batch.column(message_batch.SEQ), pa.int64())
        return pa.table({"seq": seq, "size": size, "message_value": value.cast(pa.string())})

    def as_delivered(self) -> str:
        """The rebuilt messages as if every one was delivered (LOG_COLUMNS of state.debugger).

        A commit staged while the messages are sent writes these, then patches the
        rendered ones (`rendered`) and marks the undelivered ones; they read nothing but
        the query's tables.
        """
        assert self.rebuilt
        return (
            "(SELECT seq, event, message_key, row_key, topic, message_partition,"
            " NULL::BIGINT AS message_offset, size, 'delivered' AS outcome,"
            f" NULL::VARCHAR AS reason, message_value, sent_at FROM {self.source})"
        )

    def record(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """Yield the batches unchanged, each copied into the session before it is sent."""
        self.source = LOG
        with self.connection.cursor() as cursor:
            cursor.execute(f"CREATE OR REPLACE TABLE {LOG} ({_LOG_COLUMNS})")
            for batch in batches:
                self._add(cursor, batch)
                yield batch

    def _add(self, cursor: duckdb.DuckDBPyConnection, batch: pa.RecordBatch) -> None:
        import pyarrow as pa

        value = message_batch.VALUE if self.record_values else "NULL"
        with registered(cursor, _BATCH, pa.Table.from_batches([batch])) as sent:
            cursor.execute(
                f"INSERT INTO {LOG} SELECT {message_batch.SEQ}, {message_batch.EVENT},"
                f" {message_batch.KEY}, {message_batch.ROW_KEY}, {message_batch.TOPIC},"
                f" {message_batch.PARTITION}, coalesce(strlen({message_batch.VALUE}), 0),"
                f" {value}, $1 FROM {sent}",
                [datetime.now(timezone.utc)],
            )

    def finish(
        self, failed: dict[int, str], refused: Collection[int], unconfirmed: str | None
    ) -> str:
        """Join each message's outcome on; return the relation holding the result.

        Args:
            failed: seq -> reason for every message that did not reach Kafka.
            refused: the seqs of those never handed to the producer.
            unconfirmed: when set, every other message counts as failed for this reason
                (an aborted transaction: none of it is visible).
        """
        import pyarrow as pa

        seqs = list(failed)
        outcomes = pa.table(
            {
                "seq": pa.array(seqs, pa.int64()),
                "outcome": pa.array(
                    ["refused" if s in refused else "failed" for s in seqs], pa.string()
                ),
                "reason": pa.array([failed[s] for s in seqs], pa.string()),
            }
        )
        self.undelivered = outcomes
        self._keep(OUTCOMES, outcomes)
        otherwise = "'failed'" if unconfirmed else "'delivered'"
        reason = quote_literal(unconfirmed) if unconfirmed else "NULL"
        size, value, patch = "l.size", "l.message_value", ""
        if self.patches and self.rendered is not None:
            self._keep(RENDERED, self.rendered)
            size = "CASE WHEN r.seq IS NULL THEN l.size ELSE r.size END"
            value = "CASE WHEN r.seq IS NULL THEN l.message_value ELSE r.message_value END"
            patch = f" LEFT JOIN {RENDERED} r ON r.seq = l.seq"
        self.connection.execute(
            f"""CREATE OR REPLACE TEMP VIEW {SENT} AS
            SELECT l.seq, l.event, l.message_key, l.row_key, l.topic, l.message_partition,
                   NULL::BIGINT AS message_offset, {size} AS size,
                   coalesce(o.outcome, {otherwise}) AS outcome,
                   coalesce(o.reason, {reason}) AS reason, {value} AS message_value, l.sent_at
            FROM {self.source} l LEFT JOIN {OUTCOMES} o ON o.seq = l.seq{patch}"""
        )
        return SENT

    def _keep(self, name: str, table: pa.Table) -> None:
        """Copy an Arrow table into a temporary table of the session."""
        with registered(self.connection, _BATCH, table) as rows:
            self.connection.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {rows}")


def _rendered_table(parts: list[pa.Table]) -> pa.Table:
    """The rendered rows' seq, size and message_value, from the parts collected."""
    import pyarrow as pa

    schema = pa.schema([("seq", pa.int64()), ("size", pa.int64()), ("message_value", pa.string())])
    if not parts:
        return schema.empty_table()
    return pa.concat_tables([p.cast(schema) for p in parts])
