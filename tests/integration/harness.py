"""Helpers of the integration tier: topics, consuming, and a copy of the example project."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import local_servers.kafka as local_kafka
import yaml

REPO = Path(__file__).resolve().parents[2]
# Topics of the example project's syncs (each prefixed per test).
TOPICS = (
    "customers",
    "orders",
    "customer_profiles",
    "customer_events",
    "order_notifications",
    "tricky_columns",
    "tricky_column",
    "tricky_template",
    "tricky_built_template",
)
EXAMPLE_PROJECT = REPO / "integration_tests"


@dataclass(frozen=True)
class Kafka:
    """The broker the tests talk to."""

    bootstrap_servers: str
    broker: local_kafka.Broker | None

    def create_topic(self, partitions: int = 1) -> str:
        """Create a topic with a fresh name, so tests never see each other's messages."""
        name = f"test-{uuid.uuid4().hex[:12]}"
        local_kafka.create_topic(self.bootstrap_servers, name, partitions)
        return name

    def consume_all(self, topic: str) -> list[local_kafka.Record]:
        """Every message now in the topic."""
        return local_kafka.consume_all(self.bootstrap_servers, topic)


@dataclass
class Project:
    """A copy of the example dbt project, built with dbt, pointing at the test broker."""

    path: Path
    env: dict[str, str]
    prefix: str = ""

    def dbt(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_checked([str(Path(sys.executable).with_name("dbt")), *args], self)

    def sync(
        self, *args: str, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run dbt-kafka-sync in its own process, as a user would; returns any exit code."""
        return subprocess.run(
            [sys.executable, "-m", "dbt_kafka_sync", *args, "--project-dir", str(self.path)],
            cwd=self.path,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=300,
        )

    def build(self, kafka: Kafka, topics: tuple[str, ...] = TOPICS, partitions: int = 1) -> str:
        """Create the example's topics under a fresh prefix, then `dbt build` with it."""
        prefix = f"it-{uuid.uuid4().hex[:10]}."
        for model in topics:
            local_kafka.create_topic(kafka.bootstrap_servers, prefix + model, partitions)
        self.prefix = prefix
        self.rebuild()
        return prefix

    def rebuild(self) -> None:
        """`dbt build` again (after seeds or models changed), keeping the topic prefix."""
        self.dbt("build", "--vars", json.dumps({"kafka_topic_prefix": self.prefix}))

    def read_seed(self, name: str) -> list[dict[str, str]]:
        with (self.path / "seeds" / f"{name}.csv").open(newline="") as handle:
            return list(csv.DictReader(handle))

    def write_seed(self, name: str, rows: list[dict[str, str]]) -> None:
        with (self.path / "seeds" / f"{name}.csv").open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)

    def write_model(self, name: str, sql: str) -> None:
        (self.path / "models" / f"{name}.sql").write_text(sql)

    def add_kafka_output(self, name: str, output: Mapping[str, object]) -> None:
        """Add (or replace) an output of the kafka_sync profile, chosen with --target."""
        path = self.path / "profiles.yml"
        profiles = yaml.safe_load(path.read_text())
        profiles["kafka_sync"]["outputs"][name] = dict(output)
        path.write_text(yaml.safe_dump(profiles, sort_keys=False))

    def set_producer(self, settings: Mapping[str, object]) -> None:
        """Extra librdkafka settings in the kafka_sync profile (replacing earlier ones)."""
        path = self.path / "profiles.yml"
        profiles = yaml.safe_load(path.read_text())
        profiles["kafka_sync"]["outputs"]["dev"]["producer"] = dict(settings)
        path.write_text(yaml.safe_dump(profiles, sort_keys=False))

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
