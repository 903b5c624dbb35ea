"""The progress topic: one marker per exactly-once commit, written in the sync's transaction.

A marker becomes visible to read_committed readers exactly when the transaction holding
the sync's messages commits, so finding it tells a later run whether those messages
reached consumers. Each sync writes to one partition of the topic (from its
transactional id), and the state records where that partition ended before the
transaction began: the marker, if it committed, is at or after that offset.
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbt_kafka_sync.errors import KafkaError, describe_kafka_error
from dbt_kafka_sync.kafka.security import security_settings

if TYPE_CHECKING:
    from dbt_kafka_sync.config.kafka import KafkaTarget

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 30.0  # reading the partition to its end; longer only behind open transactions


@dataclass(frozen=True)
class Marker:
    """One exactly-once commit's marker: where it goes and what identifies it.

    Attributes:
        topic: the progress topic.
        partition: the sync's partition of it.
        start_offset: the partition's end before the transaction began.
        marker_id: unique per transaction.
        transactional_id: the producer's id, the marker's key.
    """

    topic: str
    partition: int
    start_offset: int
    marker_id: str
    transactional_id: str

    def value(self, run_id: str, sync_id: str) -> bytes:
        """The marker's message: which run's commit of which sync."""
        doc = {"marker": self.marker_id, "run_id": run_id, "sync": sync_id, "version": 1}
        return json.dumps(doc, sort_keys=True).encode()

    def to_json(self) -> str:
        """The marker as the state records it."""
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Marker:
        """The marker the state recorded."""
        return cls(**json.loads(text))


def partition_of(transactional_id: str, partitions: int) -> int:
    """The progress partition of a sync: fixed by its transactional id."""
    return zlib.crc32(transactional_id.encode()) % partitions


class ProgressTopic:
    """Reads the progress topic as consumers of the synced topics will: read_committed."""

    def __init__(self, target: KafkaTarget, base_dir: Path, topic: str) -> None:
        from confluent_kafka import Consumer

        from dbt_kafka_sync.kafka.producer import client_log

        self.topic = topic
        settings: dict[str, Any] = security_settings(target, base_dir)
        settings |= {
            "bootstrap.servers": target.bootstrap_servers,
            "client.id": target.client_id,
            "group.id": f"{target.client_id}-progress",  # required by the client; never joined
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "logger": client_log(),
        }
        self._consumer = Consumer(settings)

    def partitions(self) -> int:
        """The topic's partition count.

        Raises:
            KafkaError: when the topic does not exist (it is never created automatically).
        """
        from confluent_kafka import KafkaException

        try:
            metadata = self._consumer.list_topics(self.topic, timeout=10.0)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else exc
            raise KafkaError(
                f"cannot read the progress topic: {describe_kafka_error(error)}"
            ) from None
        found = metadata.topics.get(self.topic)
        if found is None or found.error is not None or not found.partitions:
            raise KafkaError(
                f"the progress topic '{self.topic}' does not exist; exactly-once delivery"
                " records each commit on it",
                hint=f"create it once: kafka-topics --create --topic {self.topic} --partitions 1"
                " --config cleanup.policy=compact (or set progress_topic in the kafka_sync"
                " profile)",
            )
        return len(found.partitions)

    def end_offset(self, partition: int) -> int:
        """The partition's high watermark, asked of the broker."""
        from confluent_kafka import KafkaException, TopicPartition

        try:
            _low, high = self._consumer.get_watermark_offsets(
                TopicPartition(self.topic, partition), timeout=10.0, cached=False
            )
        except KafkaException as exc:
            raise KafkaError(
                f"cannot read the end of the progress topic '{self.topic}':"
                f" {describe_kafka_error(exc.args[0] if exc.args else exc)}"
            ) from None
        return int(high)

    def holds(self, marker: Marker) -> bool:
        """Tell whether the marker's transaction committed.

        Call it once the sync's producer has initialised its transactions: any transaction
        of an earlier producer of the sync is then committed or aborted for good, and the
        partition's end covers its marker. The partition is read from the marker's start
        offset to that end; read_committed, a reader stops at the first transaction still
        open (of another sync), so this waits for those to end.

        Raises:
            KafkaError: when the partition cannot be read to its end in time.
        """
        from confluent_kafka import KafkaError as ClientError
        from confluent_kafka import TopicPartition

        end = self.end_offset(marker.partition)
        if end <= marker.start_offset:
            return False
        self._consumer.assign([TopicPartition(self.topic, marker.partition, marker.start_offset)])
        deadline = time.monotonic() + READ_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                message = self._consumer.poll(1.0)
                if message is None:
                    continue
                error = message.error()
                if error is None:
                    if _marker_id(message.value()) == marker.marker_id:
                        return True
                elif error.code() == ClientError._PARTITION_EOF:
                    if (message.offset() or 0) >= end:
                        return False
                    log.info("waiting for open transactions on the progress topic to end")
                else:
                    raise KafkaError(
                        f"cannot read the progress topic: {describe_kafka_error(error)}"
                    )
        finally:
            self._consumer.unassign()
        raise KafkaError(
            f"the progress topic '{self.topic}' (partition {marker.partition}) could not be"
            f" read to its end within {READ_TIMEOUT_S:g} s, so whether run's transaction"
            " committed is not known yet; nothing was changed",
            hint="a transaction of another sync may still be open on it; run again later",
        )

    def close(self) -> None:
        """Leave the cluster."""
        self._consumer.close()


def _marker_id(value: bytes | None) -> str | None:
    try:
        return str(json.loads(value or b"{}").get("marker"))
    except (ValueError, AttributeError):
        return None  # not one of ours
