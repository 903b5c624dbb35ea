"""Helpers of the integration tier: topics, consuming, and a copy of the example project."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import kafka_local
import yaml

REPO = Path(__file__).resolve().parents[2]
EXAMPLE_PROJECT = REPO / "integration_tests"


@dataclass(frozen=True)
class Kafka:
    """The broker the tests talk to."""

    bootstrap_servers: str
    broker: kafka_local.Broker | None

    def create_topic(self, partitions: int = 1) -> str:
        """Create a topic with a fresh name, so tests never see each other's messages."""
        name = f"test-{uuid.uuid4().hex[:12]}"
        create_topic(self.bootstrap_servers, name, partitions)
        return name


def create_topic(bootstrap_servers: str, name: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap_servers})
    future = admin.create_topics([NewTopic(name, partitions, 1)])[name]
    future.result(timeout=30)
    # Metadata propagates asynchronously: wait until the topic's partitions have leaders.
    for _ in range(300):
        topic = admin.list_topics(name, timeout=10).topics.get(name)
        ready = topic and topic.error is None and len(topic.partitions) == partitions
        if ready and all(p.leader >= 0 for p in topic.partitions.values()):
            return
        admin.poll(0.1)
    raise AssertionError(f"topic {name} did not become ready")


@dataclass
class Consumed:
    """One message read back from a topic."""

    key: str | None
    value: str | None
    partition: int
    headers: dict[str, str]


def consume_all(bootstrap_servers: str, topic: str) -> list[Consumed]:
    """Read every message now in the topic: up to each partition's high watermark, no guessing."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"test-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
            for p in partitions
        }
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        remaining = {p: end for p, end in ends.items() if end > 0}
        messages: list[Consumed] = []
        while remaining:
            message = consumer.poll(10)
            assert message is not None, f"timed out reading {topic}; still expected {remaining}"
            assert message.error() is None, message.error()
            messages.append(_decode(message))
            if message.offset() + 1 >= remaining.get(message.partition(), 0):
                remaining.pop(message.partition(), None)
        return messages
    finally:
        consumer.close()


def _decode(message: object) -> Consumed:
    key, value = message.key(), message.value()  # type: ignore[attr-defined]
    headers = message.headers() or []  # type: ignore[attr-defined]
    return Consumed(
        key=key.decode() if key is not None else None,
        value=value.decode() if value is not None else None,
        partition=message.partition(),  # type: ignore[attr-defined]
        headers={name: raw.decode() for name, raw in headers if raw is not None},
    )


@dataclass
class Project:
    """A copy of the example dbt project, built with dbt, pointing at the test broker."""

    path: Path
    env: dict[str, str]

    def dbt(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_checked([str(Path(sys.executable).with_name("dbt")), *args], self)

    def sync(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run dbt-kafka-sync in its own process, as a user would; returns any exit code."""
        return subprocess.run(
            [sys.executable, "-m", "dbt_kafka_sync", *args, "--project-dir", str(self.path)],
            cwd=self.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )

    def edit_schema(self, edit: Callable[[dict[str, object]], None]) -> None:
        path = self.path / "models" / "schema.yml"
        schema = yaml.safe_load(path.read_text())
        edit(schema)
        path.write_text(yaml.safe_dump(schema, sort_keys=False))


def run_checked(command: list[str], project: Project) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command, cwd=project.path, env=project.env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result
