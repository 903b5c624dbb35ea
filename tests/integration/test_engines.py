"""The same dbt project on DuckDB and on PostgreSQL publishes the same events, run after run."""

from __future__ import annotations

from pathlib import Path

import local_servers.postgres as local_postgres
import pytest
from harness import (
    ENGINES,
    Kafka,
    Message,
    Project,
    change_seeds,
    copy_example,
    postgres_env,
    published,
)


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
    assert len(backfill) == 5 + 4 + 5 + 5 + 4 + 5 * 4  # every row of every sync (tricky: 5)
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
