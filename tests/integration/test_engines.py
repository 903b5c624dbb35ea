"""The same dbt project on DuckDB and on PostgreSQL publishes the same events, run after run."""

from __future__ import annotations

import re
from pathlib import Path

import local_servers.postgres as local_postgres
import pytest
from harness import ENGINES, TOPICS, Kafka, Project, copy_example, postgres_env

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


def three_runs(project: Project, kafka: Kafka) -> list[list[Message]]:
    """Backfill, a change set, then nothing changed: the messages of each run."""
    project.build(kafka)
    seen: dict[str, int] = {}
    runs = []
    for step in ("backfill", "change", "nothing"):
        if step == "change":
            change_seeds(project)
        result = project.sync()
        assert result.returncode == 0, f"{step}: {result.stdout}{result.stderr}"
        runs.append(published(project, kafka, seen))
    return runs


def test_postgres_publishes_exactly_what_duckdb_publishes(
    tmp_path: Path, kafka: Kafka, postgres: local_postgres.Server
) -> None:
    runs = {}
    for engine in ENGINES:
        engine_env = postgres_env(postgres) if engine == "postgres" else {}
        project = copy_example(tmp_path / engine, kafka, engine_env)
        runs[engine] = three_runs(project, kafka)

    backfill, change, nothing = runs["duckdb"]
    assert len(backfill) == 5 + 4 + 5 + 5 + 4 + 4 * 4  # every row of every synced model
    assert {(topic, event) for topic, event, *_ in change} >= {
        ("customers", "added"),
        ("customers", "changed"),
        ("customers", "removed"),
    }
    assert nothing == []
    assert runs["postgres"] == runs["duckdb"]


@pytest.mark.parametrize("project", ["postgres"], indirect=True)
def test_the_postgres_password_never_appears(project: Project, kafka: Kafka) -> None:
    password = project.env["DBT_PG_PASSWORD"]
    wrong = f"wrong-{password}"
    project.build(kafka, ("customers",))
    debug = ("--select", "customers", "--log-level", "debug")

    ok = project.sync(*debug)
    refused = project.sync(*debug, env={"DBT_PG_PASSWORD": wrong})
    history = project.sync("runs")

    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert refused.returncode == 1
    assert "cannot connect to PostgreSQL at 127.0.0.1" in refused.stderr
    assert "password authentication failed" in refused.stderr
    for result in (ok, refused, history):
        output = result.stdout + result.stderr
        assert password not in output and wrong not in output
