"""The state in the warehouse: CI runners that start empty, one run at a time, a killed run."""

from __future__ import annotations

import hashlib
import shutil
import signal
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import local_servers.kafka as local_kafka
import local_servers.postgres as local_postgres
import psycopg
import pytest
from harness import (
    ENGINES,
    TEST_LEASE_SECONDS,
    TOPICS,
    WAREHOUSE_STATE,
    Kafka,
    Message,
    Project,
    change_seeds,
    copy_example,
    postgres_env,
    published,
)
from test_safety import BIG_MODEL, ONE_AT_A_TIME, ROWS, wait_until

from dbt_kafka_sync.sources.base import SourceColumn
from dbt_kafka_sync.sources.postgres import PostgresSource
from dbt_kafka_sync.state.warehouse.diff import row_hash

STATE_SCHEMA_SUFFIX = "_kafka_sync"  # the default state schema: the dbt target's + this
WAREHOUSE = {"type": "warehouse", "lease_seconds": TEST_LEASE_SECONDS}


def remove_a_customer(project: Project) -> None:
    """The last step of a day: a customer (and its orders) deleted upstream."""
    project.write_seed(
        "raw_customers", [r for r in project.read_seed("raw_customers") if r["id"] != "1"]
    )
    project.write_seed(
        "raw_orders", [r for r in project.read_seed("raw_orders") if r["customer_id"] != "1"]
    )


STEPS = {"backfill": None, "change": change_seeds, "nothing": None, "removal": remove_a_customer}


def fresh_checkout(repository: Project, path: Path) -> Project:
    """What a CI runner starts from: the dbt project's files only (no target/, no state)."""
    shutil.copytree(
        repository.path,
        path,
        ignore=shutil.ignore_patterns("target", "dbt_packages", "logs", ".dbt_kafka_sync"),
    )
    checkout = Project(path, {**repository.env, "DBT_PROFILES_DIR": str(path)}, repository.prefix)
    checkout.dbt("deps")
    return checkout


@pytest.mark.parametrize("engine", ENGINES)
def test_stateless_runners_publish_exactly_what_a_local_state_publishes(
    tmp_path: Path, kafka: Kafka, engine: str, request: pytest.FixtureRequest
) -> None:
    postgres = request.getfixturevalue("postgres") if engine == "postgres" else None
    local = copy_example(tmp_path / "local", kafka, postgres_env(postgres) if postgres else {})
    local.build(kafka)
    repository = copy_example(
        tmp_path / "repository", kafka, postgres_env(postgres) if postgres else {}
    )
    if engine == "duckdb":  # the warehouse file outlives every checkout, as a warehouse does
        repository.env["DBT_DUCKDB_PATH"] = str(tmp_path / "warehouse.duckdb")
    repository.use_state(WAREHOUSE)
    repository.create_topics(kafka, TOPICS)
    local_seen: dict[str, int] = {}
    ci_seen: dict[str, int] = {}

    for number, (step, change) in enumerate(STEPS.items()):
        if change is not None:
            change(local)
            change(repository)
            local.rebuild()
        assert local.sync().returncode == 0
        runner = fresh_checkout(repository, tmp_path / f"runner-{number}")
        runner.rebuild()
        result = runner.sync()

        assert result.returncode == 0, f"{step}: {result.stdout}{result.stderr}"
        assert not (runner.path / ".dbt_kafka_sync").exists()  # nothing kept on the runner
        expected: list[Message] = published(local, kafka, local_seen)
        assert published(runner, kafka, ci_seen) == expected, step
        if step == "nothing":
            assert expected == []
        else:
            assert expected, step


def lease_expiry(project: Project) -> datetime:
    """When the lease in the project's state schema expires (read with a client of its own)."""
    on_postgres = project.env.get("DBT_TARGET") == "pg"
    target_schema = project.env["DBT_PG_SCHEMA"] if on_postgres else "main"
    lease = f"{target_schema}{STATE_SCHEMA_SUFFIX}.lease"
    query = f"SELECT expires_at FROM {lease}"
    if on_postgres:
        env = project.env
        with psycopg.connect(
            host=env["DBT_PG_HOST"],
            port=env["DBT_PG_PORT"],
            user=env["DBT_PG_USER"],
            password=env["DBT_PG_PASSWORD"],
            dbname=env["DBT_PG_DBNAME"],
        ) as connection:
            rows = connection.execute(query).fetchall()
    else:
        warehouse = project.path / "target" / "warehouse.duckdb"
        with duckdb.connect(str(warehouse), read_only=True) as connection:
            rows = connection.execute(f"SELECT expires_at FROM warehouse.{lease}").fetchall()
    [(expires,)] = rows
    assert isinstance(expires, datetime)
    return expires.astimezone(timezone.utc)


@pytest.mark.parametrize("project", WAREHOUSE_STATE, indirect=True)
def test_one_run_at_a_time_and_a_killed_runs_lease_is_taken_over(
    project: Project, kafka: Kafka
) -> None:
    on_postgres = project.env.get("DBT_TARGET") == "pg"
    if not on_postgres:  # a lease far from expiring: only the file lock can free it
        project.use_state({**WAREHOUSE, "lease_seconds": 600})
    project.write_model("big", BIG_MODEL)
    topic = project.build(kafka, ("big",)) + "big"
    project.set_producer(ONE_AT_A_TIME)
    command = [sys.executable, "-m", "dbt_kafka_sync", "--select", "big"]
    slow = subprocess.Popen(
        [*command, "--project-dir", str(project.path)],
        cwd=project.path,
        env=project.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: local_kafka.message_count(kafka.bootstrap_servers, topic) > 0,
            timeout=120,
            what="the first published message",
        )
        concurrent = project.sync("--select", "big")
        assert concurrent.returncode == 1, concurrent.stdout + concurrent.stderr
        assert slow.poll() is None, "the first run ended before the second one was refused"
        assert "in use by" in concurrent.stderr
        assert f"{slow.pid}" in concurrent.stderr  # the holder, by its process id
    finally:
        slow.send_signal(signal.SIGKILL)
        slow.wait()
    published_count = local_kafka.message_count(kafka.bootstrap_servers, topic)
    assert 0 < published_count < ROWS, "the run was not killed while publishing"

    if on_postgres:
        # The lease of the killed run is a deadline on the warehouse's clock: wait it out.
        expiry = lease_expiry(project)
        time.sleep(max(0.0, (expiry - datetime.now(timezone.utc)).total_seconds()) + 1)
    else:  # DuckDB's file lock proves the killed run gone: its lease is taken over at once
        assert lease_expiry(project) > datetime.now(timezone.utc)
    project.set_producer({})
    rerun = project.sync("--select", "big")

    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "took over the lease" in rerun.stderr
    keys = [record.key for record in kafka.consume_all(topic)]
    assert set(keys) == {str(i) for i in range(ROWS)}  # every row at least once
    plan = project.sync("plan", "--select", "big")
    assert "0 added, 0 changed, 0 removed" in plan.stdout  # snapshot equals the model
    assert "interrupted" in project.sync("runs").stdout


def counts(plan: subprocess.CompletedProcess[str]) -> list[str]:
    """The count line of each sync in `plan`'s output."""
    return sorted(line for line in plan.stdout.splitlines() if " added, " in line)


@pytest.mark.parametrize("project", ENGINES, indirect=True)
def test_moving_the_state_between_local_and_warehouse_sends_nothing_again(
    project: Project, kafka: Kafka
) -> None:
    local_file = project.path / ".dbt_kafka_sync" / "state.duckdb"
    project.build(kafka)
    assert project.sync().returncode == 0  # the local state has everything sent
    rows = project.read_seed("raw_customers")
    rows[1]["email"] = "grace@navy.mil"
    rows.append({**rows[0], "id": "6", "full_name": "New"})
    project.write_seed("raw_customers", rows)
    project.rebuild()  # changes not published yet: they must stay pending
    pending = counts(project.sync("plan"))
    assert any(" 1 added, 1 changed" in line for line in pending), pending

    to_warehouse = project.sync("copy-state", "--to", "warehouse")
    assert to_warehouse.returncode == 0, to_warehouse.stdout + to_warehouse.stderr
    assert "COPIED   customers [default]: 2 change(s) not published yet stay pending" in (
        to_warehouse.stdout
    )
    project.use_state(WAREHOUSE)
    assert counts(project.sync("plan")) == pending  # the same changes, no more
    assert project.sync().returncode == 0
    assert all(" 0 added, 0 changed, 0 removed" in c for c in counts(project.sync("plan")))

    local_file.rename(local_file.with_suffix(".old"))
    back = project.sync("copy-state", "--to", "local")
    assert back.returncode == 0, back.stdout + back.stderr
    project.use_state({"type": "local"})
    assert all(" 0 added, 0 changed, 0 removed" in c for c in counts(project.sync("plan")))

    # A row removed upstream and not published yet is only known to the state: kept there.
    project.write_seed("raw_customers", [r for r in rows if r["id"] != "3"])
    project.rebuild()
    local_file.unlink()
    refused = project.sync("copy-state", "--to", "local")
    assert refused.returncode == 1
    assert "REFUSED  customers [default]: 1 removed row(s) are not published yet" in (
        refused.stdout
    )


def test_postgres_hashes_rows_as_documented(
    tmp_path: Path, postgres: local_postgres.Server
) -> None:
    """md5-64/1 on PostgreSQL: the same canonical text as DuckDB, the bits read as signed."""
    output = {
        "type": "postgres",
        "host": postgres.host,
        "port": postgres.port,
        "user": postgres.user,
        "password": postgres.password,
        "dbname": postgres.dbname,
        "schema": "public",
    }
    source = PostgresSource(output, tmp_path)
    try:
        warehouse = source.warehouse(duckdb.connect(), read_only=True)
        columns = [SourceColumn("a", "text", "VARCHAR"), SourceColumn("b", "text", "VARCHAR")]
        query = f"SELECT {row_hash(warehouse, columns, 'r')} AS h FROM (SELECT {{}}) r"
        [row] = warehouse.records(query.format("'héllo'::text AS a, NULL::text AS b"))
        floats = warehouse.records(
            "SELECT CAST(0.1::float8 AS text) AS a, CAST(1e300::float8 AS text) AS b"
        )
    finally:
        source.close()
    digest = hashlib.md5("5:héllo~".encode()).digest()[:8]
    assert row["h"] == int.from_bytes(digest, "big", signed=True)
    assert floats == [{"a": "0.1", "b": "1e+300"}]  # the shortest text that reads back exactly


@pytest.mark.parametrize("project", ["postgres+warehouse"], indirect=True)
def test_a_missing_privilege_is_named_and_a_created_schema_is_used(
    project: Project, kafka: Kafka, postgres: local_postgres.Server
) -> None:
    """A dbt user that may read the models but not create schemas (a common grant)."""
    project.build(kafka, ("customers",))
    role, password = f"reader_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    models = project.env["DBT_PG_SCHEMA"]
    with postgres.connect(autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        admin.execute(f"GRANT USAGE ON SCHEMA {models} TO {role}")
        admin.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {models} TO {role}")
    as_reader = {"DBT_PG_USER": role, "DBT_PG_PASSWORD": password}

    refused = project.sync("--select", "customers", env=as_reader)

    assert refused.returncode == 1, refused.stdout + refused.stderr
    assert (
        f"the state schema '{models}{STATE_SCHEMA_SUFFIX}' does not exist and user '{role}'"
        " may not create it" in refused.stderr
    )
    assert f'CREATE SCHEMA "{models}{STATE_SCHEMA_SUFFIX}" AUTHORIZATION' in refused.stderr
    with postgres.connect(autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {models}{STATE_SCHEMA_SUFFIX} AUTHORIZATION {role}")
    accepted = project.sync("--select", "customers", env=as_reader)
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert "5 added, 0 changed, 0 removed; 5 delivered" in accepted.stdout
