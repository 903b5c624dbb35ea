"""The debugger's record of a sync's messages, taken as the batches go to the producer.

Each batch is copied in bulk into a table of the run's session (through a cursor of its
own: the session is busy streaming the batches), so memory stays flat and DuckDB spills
a large log as it spills a large diff. Once the sync is flushed, the outcome of each
message is joined on, and the state copies the result in its commit's transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Iterator
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from dbt_kafka_sync.messages import batch as message_batch
from dbt_kafka_sync.sql import quote_literal

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

LOG = "dks_sent_log"  # the messages as sent, a table of the session's own database
OUTCOMES = "dks_sent_outcomes"  # seq -> outcome and reason, for the messages not delivered
SENT = "dks_sent"  # the log with outcomes, in state.debugger.LOG_COLUMNS order
_BATCH = "dks_sent_batch"

_LOG_COLUMNS = """seq BIGINT, event VARCHAR, message_key VARCHAR, row_key VARCHAR,
    topic VARCHAR, message_partition INTEGER, size BIGINT, message_value VARCHAR,
    sent_at TIMESTAMPTZ"""


class MessageRecorder:
    """Copies the messages of one sync's batches into the session, as they pass."""

    def __init__(self, connection: duckdb.DuckDBPyConnection, record_values: bool) -> None:
        self.connection = connection
        self.record_values = record_values
        self.recorded = 0

    def record(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """Yield the batches unchanged, each recorded before it is sent."""
        with self.connection.cursor() as cursor:
            cursor.execute(f"CREATE OR REPLACE TABLE {LOG} ({_LOG_COLUMNS})")
            for batch in batches:
                self._add(cursor, batch)
                yield batch

    def _add(self, cursor: duckdb.DuckDBPyConnection, batch: pa.RecordBatch) -> None:
        import pyarrow as pa

        value = message_batch.VALUE if self.record_values else "NULL"
        cursor.register(_BATCH, pa.Table.from_batches([batch]))
        try:
            cursor.execute(
                f"INSERT INTO {LOG} SELECT {message_batch.SEQ}, {message_batch.EVENT},"
                f" {message_batch.KEY}, {message_batch.ROW_KEY}, {message_batch.TOPIC},"
                f" {message_batch.PARTITION}, coalesce(strlen({message_batch.VALUE}), 0),"
                f" {value}, $1 FROM {_BATCH}",
                [datetime.now(timezone.utc)],
            )
        finally:
            cursor.unregister(_BATCH)
        self.recorded += batch.num_rows

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
        self.connection.register(_BATCH, outcomes)
        try:
            self.connection.execute(
                f"CREATE OR REPLACE TEMP TABLE {OUTCOMES} AS SELECT * FROM {_BATCH}"
            )
        finally:
            self.connection.unregister(_BATCH)
        otherwise = "'failed'" if unconfirmed else "'delivered'"
        reason = quote_literal(unconfirmed) if unconfirmed else "NULL"
        self.connection.execute(
            f"""CREATE OR REPLACE TEMP VIEW {SENT} AS
            SELECT l.seq, l.event, l.message_key, l.row_key, l.topic, l.message_partition,
                   NULL::BIGINT AS message_offset, l.size,
                   coalesce(o.outcome, {otherwise}) AS outcome,
                   coalesce(o.reason, {reason}) AS reason, l.message_value, l.sent_at
            FROM {LOG} l LEFT JOIN {OUTCOMES} o ON o.seq = l.seq"""
        )
        return SENT
