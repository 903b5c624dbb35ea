"""Helpers of the integration tier: topics, consuming, and a copy of the example project."""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import local_servers.kafka as local_kafka
import local_servers.postgres as local_postgres
import pytest
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
# The warehouses the example project is built on; tests parametrize `project` with them.
ENGINES = ["duckdb", "postgres"]
on_both_engines = pytest.mark.parametrize("project", ENGINES, indirect=True)
# The same, with the state kept in the warehouse ("<engine>+warehouse").
WAREHOUSE_STATE = ["duckdb+warehouse", "postgres+warehouse"]
on_warehouse_state = pytest.mark.parametrize("project", WAREHOUSE_STATE, indirect=True)
# A short lease, so that tests of a killed run need not wait long for it to expire.
TEST_LEASE_SECONDS = 6


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

    def consume_all(self, topic: str, start: int = 0) -> list[local_kafka.Record]:
        """Every message now in the topic (from offset `start` of each partition)."""
        return local_kafka.consume_all(self.bootstrap_servers, topic, start=start)

    def consume_committed(self, topic: str, start: int = 0) -> list[local_kafka.Record]:
        """Every message of the topic a read_committed consumer sees (from offset `start`)."""
        return local_kafka.consume_committed(self.bootstrap_servers, topic, start=start)


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
        prefix = self.create_topics(kafka, topics, partitions)
        self.rebuild()
        return prefix

    def create_topics(self, kafka: Kafka, topics: tuple[str, ...], partitions: int = 1) -> str:
        """Create topics under a fresh prefix, which `rebuild` hands to the models."""
        self.prefix = f"it-{uuid.uuid4().hex[:10]}."
        for model in topics:
            local_kafka.create_topic(kafka.bootstrap_servers, self.prefix + model, partitions)
        return self.prefix

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

    def use_state(self, state: Mapping[str, object]) -> None:
        """Set the kafka_sync profile's `state` block (e.g. {"type": "warehouse"})."""
        path = self.path / "profiles.yml"
        profiles = yaml.safe_load(path.read_text())
        profiles["kafka_sync"]["outputs"]["dev"]["state"] = dict(state)
        path.write_text(yaml.safe_dump(profiles, sort_keys=False))

    def set_output(self, **settings: object) -> None:
        """Set keys of the kafka_sync profile's `dev` output (e.g. delivery="exactly_once")."""
        path = self.path / "profiles.yml"
        profiles = yaml.safe_load(path.read_text())
        profiles["kafka_sync"]["outputs"]["dev"].update(settings)
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


RUN_ID = re.compile(r"\d{8}T\d{6}-[0-9a-f]{6}")  # the run id in template messages
Message = tuple[str, str, str | None, str | None, tuple[tuple[str, str], ...]]


def change_seeds(project: Project) -> None:
    """One change, one removal and one addition in each seed, as a day of transforms would."""
    customers = [dict(row) for row in project.read_seed("raw_customers") if row["id"] != "4"]
    customers[1]["email"] = "grace@navy.mil"
    customers.append({**customers[0], "id": "6", "full_name": "New Person", "balance": "1.5"})
    project.write_seed("raw_customers", customers)
    orders = [dict(row) for row in project.read_seed("raw_orders") if row["customer_id"] != "3"]
    orders[1]["amount"] = "7.50"
    orders.append({**orders[0], "customer_id": "2", "order_number": "2", "status": "placed"})
    project.write_seed("raw_orders", orders)
    project.rebuild()


def published(project: Project, kafka: Kafka, seen: dict[str, int]) -> list[Message]:
    """What the last run added to every topic of the example, in a comparable order."""
    messages: list[Message] = []
    for topic in TOPICS:
        records = kafka.consume_all(project.prefix + topic)
        for record in records[seen.get(topic, 0) :]:
            value = RUN_ID.sub("<run>", record.value) if record.value else record.value
            headers = tuple(sorted(record.headers.items()))
            messages.append(
                (topic, record.headers.get("dbt-kafka-sync-event", ""), record.key, value, headers)
            )
        seen[topic] = len(records)
    return sorted(messages, key=repr)


def run_checked(command: list[str], project: Project) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        command, cwd=project.path, env=project.env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, f"{command} failed:\n{result.stdout}\n{result.stderr}"
    return result


def postgres_env(server: local_postgres.Server) -> dict[str, str]:
    """The example profile's `pg` output pointed at the server, in a schema of its own."""
    return {
        "DBT_TARGET": "pg",  # dbt's --target and dbt-kafka-sync's --dbt-target
        "DBT_PG_HOST": server.host,
        "DBT_PG_PORT": str(server.port),
        "DBT_PG_USER": server.user,
        "DBT_PG_PASSWORD": server.password,
        "DBT_PG_DBNAME": server.dbname,
        "DBT_PG_SCHEMA": f"it_{uuid.uuid4().hex[:10]}",
    }


def copy_example(path: Path, kafka: Kafka, engine_env: dict[str, str] | None = None) -> Project:
    """A fresh copy of integration_tests/ with dbt deps installed; not built yet."""
    shutil.copytree(
        EXAMPLE_PROJECT,
        path,
        ignore=shutil.ignore_patterns("target", "dbt_packages", "logs", ".dbt_kafka_sync"),
    )
    (path / "packages.yml").write_text(yaml.safe_dump({"packages": [{"local": str(REPO)}]}))
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_PROFILES_DIR": str(path),
        **(engine_env or {}),
    }
    env.pop("DBT_DUCKDB_PATH", None)
    if not engine_env:
        env.pop("DBT_TARGET", None)
    project = Project(path, env)
    project.dbt("deps")
    return project
