"""Publishing to Kafka with confluent-kafka: producer settings, topic checks, delivery tracking.

Every message carries the sequence number of the row it came from, so that the
delivery report of each message says exactly which row is safely in Kafka.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from dbt_kafka_sync.errors import KafkaError, quote_list

if TYPE_CHECKING:
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
}
METADATA_TIMEOUT_S = 15.0
POLL_EVERY = 1_000  # serve delivery reports every N messages, keeping the queue moving


@dataclass
class Deliveries:
    """What happened to each message of one sync: row sequence numbers by outcome."""

    delivered: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    failed_keys: dict[int, str | None] = field(default_factory=dict)

    def on_delivery(self, seq: int, row_key: str | None, error: Any, _message: Any) -> None:
        """Delivery report callback of one message."""
        if error is None:
            self.delivered.append(seq)
        else:
            self.fail(seq, row_key, str(error))

    def fail(self, seq: int, row_key: str | None, reason: str) -> None:
        """Record a row that was not delivered, and why."""
        self.failed[seq] = reason
        self.failed_keys[seq] = row_key


def producer_settings(target: KafkaTarget) -> dict[str, Any]:
    """Build the librdkafka configuration for a profile output."""
    settings: dict[str, Any] = dict(DEFAULT_PRODUCER_SETTINGS)
    settings.update(target.producer)
    settings["bootstrap.servers"] = target.bootstrap_servers
    settings["client.id"] = target.client_id
    return settings


class Publisher:
    """One producer for a whole run."""

    def __init__(self, target: KafkaTarget) -> None:
        from confluent_kafka import Producer

        self.target = target
        self._errors: list[str] = []
        settings = producer_settings(target)
        settings["error_cb"] = self._on_client_error
        settings["logger"] = logging.getLogger("dbt_kafka_sync.librdkafka")
        self._producer = Producer(settings)

    def _on_client_error(self, error: Any) -> None:
        # Connection problems arrive here; they are reported when an operation fails.
        self._errors.append(str(error))
        log.debug("kafka client error: %s", error)

    def partition_counts(self, topics: Iterable[str]) -> dict[str, int]:
        """Check that every topic exists (topics are never auto-created); return partitions."""
        from confluent_kafka import KafkaException

        try:
            metadata = self._producer.list_topics(timeout=METADATA_TIMEOUT_S)
        except KafkaException as exc:
            raise KafkaError(
                f"cannot reach the Kafka brokers {self.target.bootstrap_servers}: "
                f"{self._last_error(exc)}",
                hint="check bootstrap_servers in the kafka_sync profile (and --target), and "
                "that the brokers are up and reachable from this machine",
            ) from None
        wanted = sorted(set(topics))
        missing = [topic for topic in wanted if topic not in metadata.topics]
        if missing:
            raise KafkaError(
                f"topic(s) {quote_list(missing)} do not exist on {self.target.bootstrap_servers}",
                hint="create them first; dbt-kafka-sync never creates topics",
            )
        return {topic: len(metadata.topics[topic].partitions) for topic in wanted}

    def _last_error(self, exc: Exception) -> str:
        return self._errors[-1] if self._errors else str(exc)

    def publish(self, topic: str, batches: Iterable[pa.RecordBatch]) -> Deliveries:
        """Send every message of the batches and wait for all delivery reports.

        Each batch has the columns seq, key, value, row_key and row_error; rows with a
        row_error are not sent and are reported as failed.
        """
        deliveries = Deliveries()
        for count, (seq, key, value, row_key, row_error) in enumerate(_rows(batches), 1):
            if row_error is not None:
                deliveries.fail(seq, row_key, row_error)
                continue
            callback = partial(deliveries.on_delivery, seq, row_key)
            self._produce(topic, key, value, callback)
            if count % POLL_EVERY == 0:
                self._producer.poll(0)
        self._wait_for_deliveries()
        return deliveries

    def _produce(self, topic: str, key: str | None, value: str | None, callback: Any) -> None:
        while True:
            try:
                self._producer.produce(topic, value=value, key=key, on_delivery=callback)
                return
            except BufferError:
                # The local queue is full: serve delivery reports until there is room.
                self._producer.poll(0.5)

    def _wait_for_deliveries(self) -> None:
        # flush() returns once every message is delivered or has failed by message.timeout.ms;
        # short waits keep Ctrl-C responsive.
        while self._producer.flush(1.0) > 0:
            pass


def _rows(
    batches: Iterable[pa.RecordBatch],
) -> Iterator[tuple[int, str | None, str | None, str | None, str | None]]:
    for batch in batches:
        columns = [
            batch.column(name).to_pylist()
            for name in ("seq", "key", "value", "row_key", "row_error")
        ]
        yield from zip(*columns, strict=True)
