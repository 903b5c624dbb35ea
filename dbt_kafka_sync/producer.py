"""Publishing to Kafka with confluent-kafka: producer settings, topic checks, delivery tracking.

Every message carries the sequence number of the row it came from, so that the
delivery report of each message says exactly which row is safely in Kafka.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from dbt_kafka_sync.config import EVENT_HEADER
from dbt_kafka_sync.connection import describe, security_settings
from dbt_kafka_sync.errors import KafkaError, ProfileError, quote_list

if TYPE_CHECKING:
    from pathlib import Path

    import pyarrow as pa

    from dbt_kafka_sync.profiles import KafkaTarget

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
MESSAGE_COLUMNS = (
    "seq", "event", "key", "value", "row_key", "row_error", "topic", "partition"
)  # fmt: skip
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


@dataclass(frozen=True)
class FailedRow:
    """A row that did not reach Kafka."""

    row_key: str | None
    event: str
    reason: str


@dataclass
class Deliveries:
    """What happened to each message of one sync, by the row's sequence number."""

    produced: int = 0  # messages handed to the producer
    delivered: list[int] = field(default_factory=list)
    failed: dict[int, FailedRow] = field(default_factory=dict)

    def on_delivery(self, seq: int, row_key: str | None, event: str, error: Any, _: Any) -> None:
        """Delivery report callback of one message."""
        if error is None:
            self.delivered.append(seq)
        else:
            self.failed[seq] = FailedRow(row_key, event, describe_kafka_error(error))


class _ClientLog:
    """librdkafka's own log, kept at debug level.

    The client retries transient problems by itself and logs each try; what it cannot
    recover from surfaces as an error of the run, so its log is only for --log-level debug.
    """

    _log = logging.getLogger("dbt_kafka_sync.librdkafka")

    def log(self, _level: int, message: str, *args: object) -> None:
        self._log.debug(message, *args)


def describe_kafka_error(error: Any) -> str:
    """Return a client error as one readable line: what happened and its Kafka error code."""
    if hasattr(error, "str") and hasattr(error, "name"):
        return f"{error.str()} ({error.name()})"
    return str(error)


def _error_name(error: Any) -> str:
    return str(error.name()) if hasattr(error, "name") else ""


def client_log() -> Any:
    """The logger handed to Kafka clients (librdkafka's own log, at debug level)."""
    return _ClientLog()


def producer_settings(target: KafkaTarget, base_dir: Path) -> dict[str, Any]:
    """Build the librdkafka configuration for a profile output."""
    settings: dict[str, Any] = dict(DEFAULT_PRODUCER_SETTINGS)
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

    def __init__(self, target: KafkaTarget, base_dir: Path) -> None:
        from confluent_kafka import KafkaException, Producer

        self.target = target
        self._kafka_exception = KafkaException  # kept: importing per message is costly
        self._errors: list[Any] = []
        settings = producer_settings(target, base_dir)
        settings["error_cb"] = self._errors.append
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

    def publish(self, batches: Iterable[pa.RecordBatch], routing: Routing) -> Deliveries:
        """Send every message of the batches and wait for all delivery reports.

        Each batch has the columns of MESSAGE_COLUMNS, then one per header of the
        routing. Rows with a row_error, a NULL topic or a partition out of range are not
        sent and are reported as failed.
        """
        deliveries = Deliveries()
        place = _Placement(routing.partitions)
        for count, row in enumerate(_rows(batches, len(routing.header_names)), 1):
            seq, event, key, value, row_key, row_error, topic, partition, *header_values = row
            problem = row_error or place.check(topic, partition)
            if not problem:
                callback = partial(deliveries.on_delivery, seq, row_key, event)
                headers = routing.headers(event, header_values)
                partition = place.choose(topic, key, partition)
                problem = self._produce(topic, key, value, partition, headers, callback)
            if problem:
                deliveries.failed[seq] = FailedRow(row_key, event, problem)
            else:
                deliveries.produced += 1
            if count % POLL_EVERY == 0:
                self._producer.poll(0)
        self._wait_for_deliveries()
        return deliveries

    def _produce(
        self,
        topic: str,
        key: str | None,
        value: str | None,
        partition: int,
        headers: Headers | None,
        callback: Any,
    ) -> str:
        """Queue one message; return why the client refused it, or '' once queued."""
        while True:
            try:
                self._producer.produce(
                    topic,
                    value=value,
                    key=key,
                    partition=partition,
                    headers=headers,
                    on_delivery=callback,
                )
                return ""
            except BufferError:
                # The local queue is full: serve delivery reports until there is room.
                self._producer.poll(0.5)
            except self._kafka_exception as exc:  # e.g. larger than message.max.bytes
                return describe_kafka_error(exc.args[0] if exc.args else exc)

    def _wait_for_deliveries(self) -> None:
        # flush() returns once every message is delivered or has failed by message.timeout.ms;
        # short waits keep Ctrl-C responsive.
        while self._producer.flush(1.0) > 0:
            pass


def _rows(batches: Iterable[pa.RecordBatch], headers: int) -> Iterator[tuple[Any, ...]]:
    for batch in batches:
        columns = [batch.column(name).to_pylist() for name in MESSAGE_COLUMNS]
        columns += [batch.column(header_column(i)).to_pylist() for i in range(headers)]
        yield from zip(*columns, strict=True)


def header_column(index: int) -> str:
    """Name of the batch column holding the value of the index-th configured header."""
    return f"header_{index}"


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
