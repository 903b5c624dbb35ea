"""Clients of the local broker: create and delete topics, count and read messages."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from local_servers import processes
from local_servers.kafka.errors import KafkaLocalError

if TYPE_CHECKING:
    from confluent_kafka import Consumer, Message
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.admin._metadata import ClusterMetadata

# librdkafka logs every refused connection while the broker boots; keep that out of the
# caller's stderr but let them attach a handler to this logger when debugging.
CLIENT_LOG = logging.getLogger("local_servers.kafka.librdkafka")
CLIENT_LOG.addHandler(logging.NullHandler())
CLIENT_LOG.propagate = False


def _admin(bootstrap_servers: str) -> AdminClient:
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap_servers}, logger=CLIENT_LOG)


def create_topic(
    bootstrap_servers: str,
    name: str,
    partitions: int = 1,
    *,
    timeout: float = 30.0,
    exist_ok: bool = False,
    config: dict[str, str] | None = None,
) -> None:
    """Create a topic and wait until every partition has a leader.

    Args:
        bootstrap_servers: A PLAINTEXT bootstrap address.
        name: Topic name.
        partitions: Number of partitions (replication factor is always 1).
        timeout: Seconds to wait in total.
        exist_ok: Do not raise if the topic already exists.
        config: Topic configs, e.g. {"max.message.bytes": "2000"}.

    Raises:
        KafkaLocalError: If the topic is not fully available in time.
        confluent_kafka.KafkaException: If the broker rejects the creation.
    """
    from confluent_kafka import KafkaError, KafkaException

    # cimpl is where NewTopic is defined; confluent_kafka.admin re-exports it untyped.
    from confluent_kafka.cimpl import NewTopic

    deadline = time.monotonic() + timeout
    admin = _admin(bootstrap_servers)
    spec = NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})
    futures = admin.create_topics([spec], operation_timeout=timeout, request_timeout=timeout)
    try:
        futures[name].result(timeout=timeout)
    except KafkaException as exc:
        exists = exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS
        if not (exist_ok and exists):
            raise
        partitions = len(metadata(admin, deadline, name).topics[name].partitions)
    _wait_for(
        lambda: _topic_ready(metadata(admin, deadline, name), name, partitions),
        deadline,
        f"topic {name!r} with {partitions} led partition(s)",
    )


def delete_topic(
    bootstrap_servers: str, name: str, *, timeout: float = 30.0, missing_ok: bool = False
) -> None:
    """Delete a topic and wait until metadata no longer lists it.

    Args:
        bootstrap_servers: A PLAINTEXT bootstrap address.
        name: Topic name.
        timeout: Seconds to wait in total.
        missing_ok: Do not raise if the topic does not exist.

    Raises:
        KafkaLocalError: If the topic is still listed after ``timeout``.
        confluent_kafka.KafkaException: If the broker rejects the deletion.
    """
    from confluent_kafka import KafkaError, KafkaException

    deadline = time.monotonic() + timeout
    admin = _admin(bootstrap_servers)
    futures = admin.delete_topics([name], operation_timeout=timeout, request_timeout=timeout)
    try:
        futures[name].result(timeout=timeout)
    except KafkaException as exc:
        unknown = exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART
        if not (missing_ok and unknown):
            raise
    _wait_for(
        lambda: name not in metadata(admin, deadline).topics,
        deadline,
        f"deletion of topic {name!r}",
    )


def message_count(bootstrap_servers: str, topic: str, timeout: float = 10.0) -> int:
    """Count the messages in a topic: the sum of its partitions' high watermarks."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap_servers, "group.id": "kafka-local-count"},
        logger=CLIENT_LOG,
    )
    try:
        partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
            for p in partitions
        )
    finally:
        consumer.close()


@dataclass(frozen=True)
class Record:
    """One message read back from a topic, decoded as UTF-8."""

    key: str | None
    value: str | None
    partition: int
    offset: int
    headers: dict[str, str]


def consume_all(
    bootstrap_servers: str, topic: str, timeout: float = 30.0, start: int = 0
) -> list[Record]:
    """Read every message now in a topic: up to each partition's high watermark.

    The watermarks say exactly how many messages there are, so nothing is guessed and
    no wait is needed for messages that will never come.

    Args:
        bootstrap_servers: A PLAINTEXT bootstrap address.
        topic: Topic to read from the beginning.
        timeout: Seconds to wait for any one message.
        start: The offset to start from in each partition.

    Returns:
        The messages, in offset order within each partition.
    """

    consumer = _reader(bootstrap_servers, {"auto.offset.reset": "earliest"})
    try:
        ends = _assign_all(consumer, topic, timeout, start)
        remaining = {p: end for p, end in ends.items() if end > start}
        records: list[Record] = []
        while remaining:
            message = consumer.poll(timeout)
            if message is None:
                raise KafkaLocalError(f"timed out reading {topic}; still expected {remaining}")
            if message.error() is not None:
                raise KafkaLocalError(f"reading {topic}: {message.error()}")
            records.append(_record(message))
            partition, offset = message.partition() or 0, message.offset() or 0
            if offset + 1 >= remaining.get(partition, 0):
                remaining.pop(partition, None)
        return records
    finally:
        consumer.close()


def consume_committed(
    bootstrap_servers: str, topic: str, timeout: float = 30.0, start: int = 0
) -> list[Record]:
    """Read every committed message of a topic, as a read_committed consumer sees them.

    Messages of aborted transactions are skipped. Each partition is read to its end: the
    end of file a read_committed reader reaches only once no transaction is open on it.

    Raises:
        KafkaLocalError: when a partition's end is not reached within `timeout` (a
            transaction left open).
    """
    from confluent_kafka import KafkaError

    consumer = _reader(
        bootstrap_servers, {"isolation.level": "read_committed", "enable.partition.eof": True}
    )
    try:
        ends = _assign_all(consumer, topic, timeout, start)
        remaining = set(ends)
        records: list[Record] = []
        deadline = time.monotonic() + timeout
        while remaining:
            if time.monotonic() > deadline:
                raise KafkaLocalError(f"timed out reading {topic} to its end: {remaining} open")
            message = consumer.poll(1.0)
            if message is None:
                continue
            error = message.error()
            if error is None:
                records.append(_record(message))
            elif error.code() == KafkaError._PARTITION_EOF:
                if (message.offset() or 0) >= ends[message.partition() or 0]:
                    remaining.discard(message.partition() or 0)
            else:
                raise KafkaLocalError(f"reading {topic}: {error}")
        return records
    finally:
        consumer.close()


def _reader(bootstrap_servers: str, settings: dict[str, Any]) -> Consumer:
    """A consumer of its own group, committing nothing."""
    from confluent_kafka import Consumer

    group = f"kafka-local-{uuid.uuid4().hex}"
    return Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": group,
            "enable.auto.commit": False,
            **settings,
        },
        logger=CLIENT_LOG,
    )


def _assign_all(consumer: Consumer, topic: str, timeout: float, start: int) -> dict[int, int]:
    """Read every partition of the topic from `start`; return each one's high watermark."""
    from confluent_kafka import TopicPartition

    partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
    ends = {
        p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
        for p in partitions
    }
    consumer.assign([TopicPartition(topic, p, start) for p in partitions])
    return ends


def _record(message: Message) -> Record:
    key, value = message.key(), message.value()
    headers: list[tuple[str, Any]] = list(message.headers() or [])  # type: ignore[arg-type]
    return Record(
        key=key.decode() if isinstance(key, bytes) else key,
        value=value.decode() if isinstance(value, bytes) else value,
        partition=message.partition() or 0,
        offset=message.offset() or 0,
        headers={
            name: raw.decode() if isinstance(raw, bytes) else str(raw)
            for name, raw in headers
            if raw is not None
        },
    )


def metadata(admin: AdminClient, deadline: float, topic: str | None = None) -> ClusterMetadata:
    """Fetch cluster metadata, bounded by a short per-try timeout and the deadline."""
    budget = max(0.1, min(2.0, deadline - time.monotonic()))
    return admin.list_topics(topic=topic, timeout=budget)


def _topic_ready(md: ClusterMetadata, name: str, partitions: int) -> bool:
    """Tell whether metadata shows ``name`` with all partitions led."""
    topic = md.topics.get(name)
    if topic is None or topic.error is not None or len(topic.partitions) != partitions:
        return False
    return all(p.error is None and p.leader >= 0 for p in topic.partitions.values())


def _wait_for(check: Callable[[], bool], deadline: float, what: str) -> None:
    """Poll ``check`` (client errors count as "not yet") until true or the deadline."""
    from confluent_kafka import KafkaException

    errors: list[str] = []
    if not processes.wait_for(check, deadline, transient=(KafkaException,), errors=errors):
        last_error = f" (last error: {errors[-1]})" if errors else ""
        raise KafkaLocalError(f"timed out waiting for {what}{last_error}")
