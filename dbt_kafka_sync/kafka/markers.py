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
    """Reads the progress topic as consumers of the synced topics will: read_committed.

    A second client, reading uncommitted, tells where a partition really ends: asked by
    a read_committed client, the broker answers with the last stable offset, which stops
    at the first transaction still open (of any producer) and would hide later markers.
    """

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
            "auto.offset.reset": "error",  # a marker's offset gone is an error, not "the end"
            "enable.partition.eof": True,
            "logger": client_log(),
        }
        self._committed = Consumer(settings | {"isolation.level": "read_committed"})
        self._ends = Consumer(settings | {"isolation.level": "read_uncommitted"})

    def partitions(self) -> int:
        """The topic's partition count.

        Raises:
            KafkaError: when the topic does not exist (it is never created automatically).
        """
        from confluent_kafka import KafkaException

        try:
            metadata = self._ends.list_topics(self.topic, timeout=10.0)
        except KafkaException as exc:
            error = exc.args[0] if exc.args else exc
            reason = describe_kafka_error(error)
            raise KafkaError(f"cannot read the progress topic: {reason}") from None
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

    def offsets(self, topic: str, partition: int) -> tuple[int, int]:
        """The partition's first offset and its high watermark, asked of the broker."""
        from confluent_kafka import KafkaException, TopicPartition

        try:
            low, high = self._ends.get_watermark_offsets(
                TopicPartition(topic, partition), timeout=10.0, cached=False
            )
        except KafkaException as exc:
            raise KafkaError(
                f"cannot read the offsets of the progress topic '{topic}':"
                f" {describe_kafka_error(exc.args[0] if exc.args else exc)}"
            ) from None
        return int(low), int(high)

    def holds(self, marker: Marker) -> bool:
        """Tell whether the marker's transaction committed.

        Call it once the sync's producer has initialised its transactions: any transaction
        of an earlier producer of the sync is then committed or aborted for good, and the
        partition's high watermark covers its marker. The partition is read, as
        read_committed consumers read it, from the marker's start offset to that end;
        a transaction of another producer still open before the end holds the reading
        back, so this waits for it (or fails, deciding nothing).

        Raises:
            KafkaError: when the partition cannot be read to its end in time, or no longer
                holds the offsets the marker may be at.
        """
        low, end = self.offsets(marker.topic, marker.partition)
        if marker.start_offset < low or end < marker.start_offset:
            raise KafkaError(
                f"the progress topic '{marker.topic}' (partition {marker.partition}) no longer"
                f" holds offset {marker.start_offset} (it starts at {low} and ends at {end}):"
                " whether the interrupted run's transaction committed cannot be told; nothing"
                " was changed",
                hint="keep the progress topic compacted, never deleted (cleanup.policy=compact);"
                " to go on, reset the model (`dbt-kafka-sync reset MODEL`), which sends its rows"
                " again as initial_sync says",
            )
        if end == marker.start_offset:
            return False  # nothing was written since: the transaction never reached its marker
        return self._read_to(marker, end)

    def _read_to(self, marker: Marker, end: int) -> bool:
        from confluent_kafka import KafkaError as ClientError
        from confluent_kafka import TopicPartition

        start = TopicPartition(marker.topic, marker.partition, marker.start_offset)
        self._committed.assign([start])
        deadline = time.monotonic() + READ_TIMEOUT_S
        try:
            while time.monotonic() < deadline:
                message = self._committed.poll(1.0)
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
            self._committed.unassign()
        raise KafkaError(
            f"the progress topic '{marker.topic}' (partition {marker.partition}) could not be"
            f" read to its end within {READ_TIMEOUT_S:g} s: a transaction of another producer"
            " is open on it, so whether the interrupted run's transaction committed is not"
            " known yet; nothing was changed",
            hint="run again once that transaction has ended (at most transaction.timeout.ms)",
        )

    def close(self) -> None:
        """Leave the cluster."""
        self._committed.close()
        self._ends.close()


def _marker_id(value: bytes | None) -> str | None:
    try:
        return str(json.loads(value or b"{}").get("marker"))
    except (ValueError, AttributeError):
        return None  # not one of ours
