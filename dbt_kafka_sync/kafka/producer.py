"""Publishing to Kafka with confluent-kafka: producer settings, topic checks, sending.

The producer reports only the messages that failed; delivery.py tells from those which
rows are safely in Kafka.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dbt_kafka_sync import faults
from dbt_kafka_sync.config.kafka import GUARANTEE, unsafe_producer_settings
from dbt_kafka_sync.config.sync import EVENT_HEADER
from dbt_kafka_sync.errors import KafkaError, ProfileError, describe_kafka_error, quote_list
from dbt_kafka_sync.kafka.delivery import Deliveries, FailureReports, as_bytes
from dbt_kafka_sync.kafka.security import describe, security_settings
from dbt_kafka_sync.messages import batch as message_batch

if TYPE_CHECKING:
    from pathlib import Path

    import pyarrow as pa

    from dbt_kafka_sync.config.kafka import KafkaTarget

log = logging.getLogger(__name__)

# Safe defaults: nothing is lost or duplicated by retries, and batches are large enough
# to be fast. Users override any of them under `producer:` in the profile.
DEFAULT_PRODUCER_SETTINGS: dict[str, str | int | float | bool] = {
    "acks": "all",
    "enable.idempotence": True,
    "linger.ms": 20,
    "batch.size": 1_000_000,
    "compression.type": "lz4",
    "message.timeout.ms": 120_000,
    "queue.buffering.max.messages": 500_000,
    # The Java client's partitioner: the same key lands on the same partition from both.
    "partitioner": "murmur2_random",
}
CONNECT_TIMEOUT_S = 15.0  # an unreachable cluster fails within this; bad credentials at once
POLL_EVERY = 1_000  # serve delivery reports every N messages, keeping the queue moving

Headers = list[tuple[str, str | bytes | None]]
_EVENT_HEADERS: dict[str, Headers] = {
    event: [(EVENT_HEADER, event.encode())] for event in ("added", "changed", "removed")
}


@dataclass(frozen=True)
class Routing:
    """What a sync's messages carry besides key and value, and where they may go.

    Attributes:
        partitions: topic -> partition count, for every topic the batch may name.
        header_names: the configured headers, in the order of the batch's header columns.
        event_header: add the event header to every message.
    """

    partitions: dict[str, int]
    header_names: list[str]
    event_header: bool

    def headers(self, event: str, values: list[str | None]) -> Headers | None:
        """Headers of one message: the configured ones that are not NULL, then the event."""
        if not self.header_names:
            return _EVENT_HEADERS[event] if self.event_header else None
        headers: Headers = [
            (name, value.encode())
            for name, value in zip(self.header_names, values, strict=True)
            if value is not None
        ]
        if self.event_header:
            headers += _EVENT_HEADERS[event]
        return headers or None

    def event_headers(self) -> dict[str, Headers | None]:
        """Event -> headers, when no header is configured: the same list for every message."""
        return {
            event: headers if self.event_header else None
            for event, headers in _EVENT_HEADERS.items()
        }


class _ClientLog:
    """librdkafka's own log, kept at debug level.

    The client retries transient problems by itself and logs each try; what it cannot
    recover from surfaces as an error of the run, so its log is only for --log-level debug.
    """

    _log = logging.getLogger("dbt_kafka_sync.librdkafka")

    def log(self, _level: int, message: str, *args: object) -> None:
        self._log.debug(message, *args)


def _error_name(error: Any) -> str:
    return str(error.name()) if hasattr(error, "name") else ""


def client_log() -> Any:
    """The logger handed to Kafka clients (librdkafka's own log, at debug level)."""
    return _ClientLog()


def producer_settings(target: KafkaTarget, base_dir: Path) -> dict[str, Any]:
    """Build the librdkafka configuration for a profile output."""
    settings: dict[str, Any] = dict(DEFAULT_PRODUCER_SETTINGS)
    unsafe = unsafe_producer_settings(target.producer)
    if unsafe:  # the profile allowed them (allow_unsafe_producer_settings)
        log.warning(
            "allow_unsafe_producer_settings: %s. The guarantee that %s does not hold for this run",
            "; ".join(unsafe),
            GUARANTEE,
        )
    settings.update(target.producer)
    settings.update(security_settings(target, base_dir))
    settings["bootstrap.servers"] = target.bootstrap_servers
    settings["client.id"] = target.client_id
    return settings


# Client errors that retrying cannot fix: stop waiting and say what to check.
_HINTS = {
    "_AUTHENTICATION": "check the credentials in the auth block (user, password, mechanism,"
    " or the AWS identity) and that the broker allows this mechanism on that listener",
    "_SSL": "check the tls block: the CA (ca_file / ca_pem) must have signed the broker's"
    " certificate, and the certificate must name the host in bootstrap_servers"
    " (verify_hostname); with mTLS, the client certificate and key",
    "_RESOLVE": "check the host names in bootstrap_servers",
}
_TRANSPORT_HINT = (
    "check bootstrap_servers (and --target), that the brokers are up and reachable from this"
    " machine, and that the port speaks the protocol the profile implies (PLAINTEXT, SSL,"
    " SASL_PLAINTEXT or SASL_SSL)"
)


class Publisher:
    """One producer for a whole run."""

    def __init__(
        self, target: KafkaTarget, base_dir: Path, transactional: dict[str, Any] | None = None
    ) -> None:
        """Create the producer; `transactional` adds the settings of a transactional one."""
        from confluent_kafka import KafkaException, Producer

        self.target = target
        self._kafka_exception = KafkaException  # kept: importing per message is costly
        self._errors: list[Any] = []
        settings = producer_settings(target, base_dir) | (transactional or {})
        self._transactional = transactional is not None
        settings["error_cb"] = self._errors.append
        # Only failed messages are reported: nothing to do per delivered message.
        self._failures = FailureReports()
        settings["on_delivery"] = self._failures.on_delivery
        settings["delivery.report.only.error"] = True
        settings["logger"] = client_log()
        try:
            self._producer = Producer(settings)
        except KafkaException as exc:
            token_error = getattr(settings.get("oauth_cb"), "error", None)
            if token_error:  # the token callback failed: its reason, not librdkafka's timeout
                raise KafkaError(
                    f"cannot connect to Kafka at {describe(target)}: {token_error}",
                    hint=_HINTS["_AUTHENTICATION"],
                ) from None
            raise ProfileError(
                f"the Kafka client refused its settings: {describe_kafka_error(exc.args[0])}",
                hint="check the `producer:` settings of the kafka_sync profile against"
                " librdkafka's CONFIGURATION.md",
            ) from None

    @property
    def client(self) -> Any:
        """The confluent-kafka producer itself (its transactions are driven from outside)."""
        return self._producer

    def metadata(self) -> Any:
        """Fetch cluster metadata: connects and authenticates, failing fast when it cannot.

        Raises:
            KafkaError: naming the brokers, protocol and mechanism, the client's reason and
                what to check; within CONNECT_TIMEOUT_S at most.
        """
        from confluent_kafka import KafkaException

        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while True:
            try:
                return self._producer.list_topics(timeout=1.0)
            except KafkaException as exc:
                failure: Any = exc.args[0] if exc.args else exc
            self._producer.poll(0)  # serve error_cb: it tells why the connection failed
            unrecoverable = self._unrecoverable_error()
            if unrecoverable is not None or time.monotonic() >= deadline:
                raise self._connection_error(unrecoverable or self._last_error(failure))

    def _unrecoverable_error(self) -> Any | None:
        for error in self._errors:
            if _error_name(error) in _HINTS:
                return error
        return None

    def _last_error(self, failure: Any) -> Any:
        # "1/1 brokers are down" says less than the connection error that came before it.
        telling = [e for e in self._errors if _error_name(e) != "_ALL_BROKERS_DOWN"]
        return telling[-1] if telling else failure

    def _connection_error(self, error: Any) -> KafkaError:
        return KafkaError(
            f"cannot connect to Kafka at {describe(self.target)}: {describe_kafka_error(error)}",
            hint=_HINTS.get(_error_name(error), _TRANSPORT_HINT),
        )

    def partition_counts(self, topics: Iterable[str]) -> dict[str, int]:
        """Check that every topic exists (topics are never auto-created); return partitions."""
        metadata = self.metadata()
        wanted = sorted(set(topics))
        missing = [topic for topic in wanted if topic not in metadata.topics]
        if missing:
            raise KafkaError(
                f"topic(s) {quote_list(missing)} do not exist on {self.target.bootstrap_servers}",
                hint="create them first; dbt-kafka-sync never creates topics",
            )
        for topic in wanted:
            found = metadata.topics[topic]
            if found.error is not None or not found.partitions:
                raise KafkaError(
                    f"topic '{topic}' is not available: {describe_kafka_error(found.error)}",
                    hint="check the topic's partitions and leaders (kafka-topics --describe)",
                )
        return {topic: len(metadata.topics[topic].partitions) for topic in wanted}

    def publish(
        self,
        batches: Iterable[pa.RecordBatch],
        routing: Routing,
        progress: Callable[[int], None] | None = None,
    ) -> Deliveries:
        """Send every message of the batches and wait until each is delivered or failed.

        Each batch has the columns of message_batch.MESSAGE_COLUMNS, then one per header of the
        routing. Rows with a row_error, a NULL topic or a partition out of range are not
        sent and are reported as refused. `progress` gets the count sent after each batch.
        The failed messages are returned untraced: see delivery.trace_failures.
        """
        deliveries = Deliveries()
        clock = deliveries.clock
        place = _Placement(routing.partitions)
        try:
            for batch in batches:
                clock.start()
                columns = _MessageBatch.of(batch, routing)
                if columns.is_plain():
                    self._send_plain(columns, routing, place, deliveries)
                else:
                    self._send_checked(columns, routing, place, deliveries)
                clock.tick(deliveries.produced)
                if progress is not None:
                    progress(deliveries.produced)
        except Exception:
            # The sync failed (nothing of it is committed): let its messages settle, so
            # that their reports do not reach the next sync.
            self._wait_for_deliveries()
            self._failures.take()
            raise
        faults.reached(faults.AFTER_PUBLISH)
        clock.sent = time.monotonic()
        self._wait_for_deliveries()
        clock.flushed = time.monotonic()
        deliveries.failed_messages, deliveries.too_many_failed = self._failures.take()
        return deliveries

    def _send_plain(
        self, batch: _MessageBatch, routing: Routing, place: _Placement, deliveries: Deliveries
    ) -> None:
        """The common case, kept lean: one topic, no row errors, no partition or headers."""
        [topic] = routing.partitions
        produce, poll = self._producer.produce, self._producer.poll
        headers_of = routing.event_headers()
        next_partition, partitions = place.next_partition[topic], place.partitions[topic]
        tick, produced = deliveries.clock.tick, deliveries.produced
        count = 0
        for seq, event, key, value in zip(
            batch.seqs, batch.events, batch.keys, batch.values, strict=True
        ):
            partition = -1
            if key is None:  # round-robin, from a random start
                partition = next_partition
                next_partition = (next_partition + 1) % partitions
            try:
                produce(topic, value, key, partition, headers=headers_of[event])
            except (BufferError, self._kafka_exception):
                # Try again, waiting for room in a full queue, or learn why it was refused.
                problem = self._produce(topic, key, value, partition, headers_of[event])
                if problem:
                    deliveries.refused[seq] = problem
                    continue
            count += 1
            if count % POLL_EVERY == 0:
                poll(0)
                tick(produced + count)
        place.next_partition[topic] = next_partition
        deliveries.produced += count

    def _send_checked(
        self, batch: _MessageBatch, routing: Routing, place: _Placement, deliveries: Deliveries
    ) -> None:
        """Any batch: row errors, topic and partition columns, headers."""
        nulls = [None] * len(batch.seqs)
        rows = zip(
            batch.seqs,
            batch.events,
            batch.keys,
            batch.values,
            batch.errors or nulls,
            batch.topics or [next(iter(routing.partitions), None)] * len(nulls),
            batch.partitions or nulls,
            batch.header_values or [()] * len(nulls),
            strict=True,
        )
        for count, row in enumerate(rows, 1):
            seq, event, key, value, row_error, topic, partition, header_values = row
            problem = row_error or place.check(topic, partition)
            if not problem:
                headers = routing.headers(event, header_values)
                partition = place.choose(topic, key, partition)
                problem = self._produce(topic, key, value, partition, headers)
            if problem:
                deliveries.refused[seq] = problem
                continue
            deliveries.produced += 1
            if count % POLL_EVERY == 0:
                self._producer.poll(0)
                deliveries.clock.tick(deliveries.produced)

    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int,
        headers: Headers | None,
    ) -> str:
        """Queue one message; return why the client refused it, or '' once queued."""
        while True:
            try:
                self._producer.produce(topic, value, key, partition, headers=headers)
                return ""
            except BufferError:
                # The local queue is full: serve delivery reports until there is room.
                self._producer.poll(0.5)
            except self._kafka_exception as exc:  # e.g. larger than message.max.bytes
                return describe_kafka_error(exc.args[0] if exc.args else exc)

    def _wait_for_deliveries(self) -> None:
        # flush() returns once every message is delivered or has failed by message.timeout.ms;
        # short waits keep Ctrl-C responsive. In a transaction, one failure dooms the rest:
        # they would wait out message.timeout.ms, and aborting drops them at once.
        while self._producer.flush(1.0) > 0:
            if self._transactional and self._failures.messages:
                return


@dataclass(frozen=True)
class _MessageBatch:
    """The columns of one batch that Python needs, as lists; None when a column is unused."""

    seqs: list[int]
    events: list[str]
    keys: list[bytes | None]
    values: list[bytes | None]
    errors: list[str | None] | None
    topics: list[str | None] | None
    partitions: list[int | None] | None
    header_values: list[tuple[str | None, ...]] | None

    @classmethod
    def of(cls, batch: pa.RecordBatch, routing: Routing) -> _MessageBatch:
        """Take from a batch only what varies: constant and all-NULL columns stay in Arrow."""
        topics = batch.column(message_batch.TOPIC)
        single_topic = len(routing.partitions) == 1 and topics.null_count == 0
        headers = [
            batch.column(message_batch.header_column(i)) for i in range(len(routing.header_names))
        ]
        return cls(
            seqs=batch.column(message_batch.SEQ).to_pylist(),
            events=batch.column(message_batch.EVENT).to_pylist(),
            keys=as_bytes(batch.column(message_batch.KEY)),
            values=as_bytes(batch.column(message_batch.VALUE)),
            errors=_values_unless_all_null(batch.column(message_batch.ROW_ERROR)),
            topics=None if single_topic else topics.to_pylist(),
            partitions=_values_unless_all_null(batch.column(message_batch.PARTITION)),
            header_values=(
                list(zip(*(h.to_pylist() for h in headers), strict=True)) if headers else None
            ),
        )

    def is_plain(self) -> bool:
        """True when every row goes to the one topic, without errors, partition or headers."""
        return (
            self.errors is None
            and self.topics is None
            and self.partitions is None
            and self.header_values is None
        )


def _values_unless_all_null(column: pa.Array) -> list[Any] | None:
    return None if column.null_count == len(column) else column.to_pylist()


class _Placement:
    """Checks and chooses partitions: the partition column, else the key, else round-robin."""

    def __init__(self, partitions: dict[str, int]) -> None:
        self.partitions = partitions
        # A random start, so that many small runs do not all begin with partition 0.
        self.next_partition = {t: random.randrange(n) for t, n in partitions.items() if n}

    def check(self, topic: str | None, partition: int | None) -> str:
        """Return why a message cannot go to this topic and partition, or ''."""
        if topic is None:
            return "the topic column is NULL"
        if partition is not None and not 0 <= partition < self.partitions[topic]:
            return (
                f"partition {partition} is out of range: topic '{topic}' has"
                f" {self.partitions[topic]} partition(s)"
            )
        return ""

    def choose(self, topic: str, key: str | None, partition: int | None) -> int:
        """Pick the partition; -1 lets the producer's murmur2 partitioner place the key."""
        if partition is not None:
            return partition
        if key is not None:
            return -1
        # No key: spread evenly, one message per partition in turn.
        chosen = self.next_partition[topic]
        self.next_partition[topic] = (chosen + 1) % self.partitions[topic]
        return chosen
