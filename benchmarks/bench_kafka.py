"""Kafka side of the benchmark: Kafka's own ProducerPerformance tool and reading topics back."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

# The Java producer's equivalents of dbt-kafka-sync's librdkafka defaults.
JAVA_PRODUCER_PROPS = {
    "acks": "all",
    "enable.idempotence": "true",
    "linger.ms": "20",
    "batch.size": "1000000",
    "compression.type": "lz4",
}
PERF_CLASS = "org.apache.kafka.tools.ProducerPerformance"
PERF_HEAP = "-Xmx1g"  # with --payload-file, every payload is held in memory
_PERF_SUMMARY = re.compile(r"^(\d+) records sent, ([\d.]+) records/sec", re.MULTILINE)


def producer_perf_command(
    libs_dir: Path, bootstrap: str, topic: str, records: int, payload: int | Path
) -> list[str]:
    """Kafka's own producer benchmark with the tool's producer settings.

    `payload` is a record size (random bytes of that size) or a file of payloads, one per
    line, each record taking one of them at random.
    """
    if isinstance(payload, Path):
        payload_args = ["--payload-file", str(payload)]
    else:
        payload_args = ["--record-size", str(payload)]
    props = [f"{key}={value}" for key, value in JAVA_PRODUCER_PROPS.items()]
    return [
        "java",
        PERF_HEAP,
        "-cp",
        f"{libs_dir}/*",
        PERF_CLASS,
        "--topic",
        topic,
        "--num-records",
        str(records),
        *payload_args,
        "--throughput",
        "-1",
        "--producer-props",
        f"bootstrap.servers={bootstrap}",
        *props,
    ]


def producer_perf_seconds(output: str) -> tuple[int, float]:
    """(records, seconds) from ProducerPerformance's final summary line (its own timer)."""
    matches = _PERF_SUMMARY.findall(output)
    if not matches:
        raise ValueError(f"no ProducerPerformance summary in its output:\n{output[-2000:]}")
    records, per_second = matches[-1]
    return int(records), int(records) / float(per_second)


@dataclass(frozen=True)
class Sample:
    """Values read back from the start of a topic."""

    messages: int
    average_bytes: float
    invalid_json: int


def sample_values(bootstrap: str, topic: str, limit: int = 3000, timeout: float = 15.0) -> Sample:
    """Read up to `limit` messages from the start of every partition of a topic."""
    consumer = Consumer(_consumer_config(bootstrap))
    try:
        partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        values = _consume(consumer, limit, time.monotonic() + timeout)
    finally:
        consumer.close()
    sizes = [len(v) for v in values]
    invalid = sum(1 for v in values if not _is_json(v))
    return Sample(len(values), sum(sizes) / len(sizes) if sizes else 0.0, invalid)


def _consumer_config(bootstrap: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "group.id": "dks-bench-sample",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
    }


def _consume(consumer: Any, limit: int, deadline: float) -> list[bytes]:
    values: list[bytes] = []
    while len(values) < limit and time.monotonic() < deadline:
        for message in consumer.consume(num_messages=500, timeout=1.0):
            if message.error() is None and message.value() is not None:
                values.append(message.value())
    return values[:limit]


def _is_json(value: bytes) -> bool:
    try:
        json.loads(value)
    except ValueError:
        return False
    return True
