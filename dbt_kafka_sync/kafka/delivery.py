"""Which rows reached Kafka, with no work per delivered message.

The producer reports only the messages that failed (`delivery.report.only.error`). Once
flush() has returned, every message handed to the producer was either delivered or
reported, so the delivered rows are the sent ones minus the failed ones. A failure report
names the message's topic, key and value; tracing it back to its row means building the
messages again and matching them, which costs a second pass only when something failed.

Messages alike in topic, key and value cannot be told apart by a report: when one of them
fails, all of them count as failed and are sent again by the next run. A report that
matches no message fails every row of the sync. Either way a row may be sent twice, but
is never counted as delivered when it was not.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dbt_kafka_sync.errors import describe_kafka_error
from dbt_kafka_sync.kafka.send_rate import SendClock
from dbt_kafka_sync.messages import batch as message_batch

if TYPE_CHECKING:
    import pyarrow as pa

UNTRACED = (
    "a delivery failure could not be traced to its row, so no row of this sync counts as delivered"
)
MAX_TRACED = 100_000  # failed messages kept to trace; beyond, every row of the sync fails
TOO_MANY = (
    f"more than {MAX_TRACED:,} messages of this sync failed, so no row of it counts as delivered"
)
Identity = tuple[str, bytes | None, bytes | None]  # topic, key, value


@dataclass(frozen=True)
class FailedMessage:
    """A message the producer accepted and then could not deliver."""

    topic: str
    key: bytes | None
    value: bytes | None
    reason: str


@dataclass
class Deliveries:
    """What happened to the messages of one sync.

    Attributes:
        produced: messages handed to the producer.
        refused: seq -> why the row was not sent at all (row errors, produce() refusals).
        failed_messages: the failure reports of messages handed to the producer (the
            first MAX_TRACED of them).
        too_many_failed: more than MAX_TRACED messages failed.
        failed: seq -> reason, for every row that did not reach Kafka, once traced.
        clock: when the messages were handed to the producer, and when the flush ended.
    """

    produced: int = 0
    refused: dict[int, str] = field(default_factory=dict)
    failed_messages: list[FailedMessage] = field(default_factory=list)
    too_many_failed: bool = False
    failed: dict[int, str] = field(default_factory=dict)
    clock: SendClock = field(default_factory=SendClock)

    @property
    def delivered(self) -> int:
        """Rows whose message reached Kafka (once trace_failures has filled `failed`)."""
        return self.produced - (len(self.failed) - len(self.refused))

    def failed_array(self) -> pa.Array:
        """The sequence numbers of the rows that did not reach Kafka, for the commit."""
        import pyarrow as pa

        # From a buffer: pa.array() of a Python list would import pandas when installed.
        seqs = array("q", sorted(self.failed))
        return pa.Array.from_buffers(pa.int64(), len(seqs), [None, pa.py_buffer(seqs)])


class FailureReports:
    """The producer's delivery callback: keeps the reports of failed messages."""

    def __init__(self) -> None:
        self.messages: list[FailedMessage] = []
        self.too_many = False

    def on_delivery(self, error: Any, message: Any) -> None:
        """Called by the producer for each failed message (and nothing else)."""
        if error is None:
            return
        if len(self.messages) >= MAX_TRACED:  # e.g. the cluster went away: memory stays flat
            self.too_many = True
            return
        reason = describe_kafka_error(error)
        self.messages.append(FailedMessage(message.topic(), message.key(), message.value(), reason))

    def take(self) -> tuple[list[FailedMessage], bool]:
        """The reports so far and whether some were dropped; none are left for the next sync."""
        taken = (self.messages, self.too_many)
        self.messages, self.too_many = [], False
        return taken


def trace_failures(deliveries: Deliveries, batches: Iterable[pa.RecordBatch]) -> None:
    """Fill `deliveries.failed`: the refused rows and the rows of the failed messages.

    Args:
        deliveries: the outcome of publishing.
        batches: the same messages again (seq, topic, key and value columns).
    """
    deliveries.failed = dict(deliveries.refused)
    if not deliveries.failed_messages:
        return
    reasons: dict[Identity, str] = {
        (m.topic, m.key, m.value): m.reason for m in deliveries.failed_messages
    }
    traced: set[Identity] = set()
    every_seq = array("q")
    for batch in batches:
        for seq, identity in _identities(batch):
            every_seq.append(seq)
            if identity in reasons and seq not in deliveries.refused:
                deliveries.failed[seq] = reasons[identity]
                traced.add(identity)
    if deliveries.too_many_failed or len(traced) < len(reasons):
        reason = TOO_MANY if deliveries.too_many_failed else UNTRACED
        deliveries.failed = dict.fromkeys(every_seq, reason) | deliveries.refused


def as_bytes(column: pa.Array) -> list[bytes | None]:
    """A key or value column as the bytes the producer sends, and failure reports carry."""
    import pyarrow as pa

    if column.null_count == len(column):
        return [None] * len(column)
    values: list[bytes | None] = column.cast(pa.binary()).to_pylist()
    return values


def _identities(batch: pa.RecordBatch) -> Iterable[tuple[int, Identity]]:
    topics = batch.column(message_batch.TOPIC).to_pylist()
    keys, values = (
        as_bytes(batch.column(message_batch.KEY)),
        as_bytes(batch.column(message_batch.VALUE)),
    )
    seqs = batch.column(message_batch.SEQ).to_pylist()
    return zip(seqs, zip(topics, keys, values, strict=True), strict=True)
