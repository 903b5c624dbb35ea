"""Reading a PostgreSQL model into the diff session, side by side with its baselines.

    .venv/bin/python benchmarks/pg_read.py                  # 1,000,000 rows, 3 repeats
    .venv/bin/python benchmarks/pg_read.py --rows 100000 --repeats 5

One run starts a local PostgreSQL server (tests/local_servers/postgres) and a local Kafka
broker, loads the benchmark's 8-column model (bench_setup.py) into both DuckDB and
PostgreSQL, then measures, in this order and each `--repeats` times:

  duckdb-read       DuckDB copying the model from its attached warehouse file into a
                    session table (the DuckDB source itself reads in place, not copying)
  tool-pg-read      dbt-kafka-sync's PostgreSQL source: catalog, value checks, binary COPY
                    streamed as Arrow into a session table (PostgresSource.relation)
  copy-binary       psycopg: COPY ... TO STDOUT (FORMAT binary), raw blocks, nothing parsed
  copy-rows         psycopg: the same COPY parsed into Python tuples, as a script would
  tool-duckdb-run   `dbt-kafka-sync run` (backfill, columns mode) from the DuckDB model
  tool-pg-run       the same from the PostgreSQL model

Prints one line per measurement and a table of medians (rows/s). Run it on a quiet
machine: the load average is printed with the results.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import local_servers.kafka as local_kafka
import local_servers.postgres as local_postgres
import yaml
from bench_setup import COLUMNS, MODELS, TABLE, BenchProject, build_warehouse

from dbt_kafka_sync.dbt.manifest import SyncedModel
from dbt_kafka_sync.session import duckdb_session
from dbt_kafka_sync.sources.postgres import PostgresSource

PG_TYPES = {
    "BIGINT": "bigint",
    "VARCHAR": "text",
    "DECIMAL(12,2)": "numeric(12,2)",
    "DOUBLE": "double precision",
    "BOOLEAN": "boolean",
    "TIMESTAMP": "timestamp",
}


def load_postgres(server: local_postgres.Server, warehouse: Path, work: Path) -> None:
    """Copy the benchmark model into PostgreSQL (public.customers) through a CSV file."""
    csv = work / "customers.csv"
    with duckdb.connect(str(warehouse), read_only=True) as con:
        con.execute(f"COPY {TABLE} TO '{csv}' (HEADER false)")
    columns = ", ".join(f"{name} {PG_TYPES[kind]}" for name, kind in COLUMNS.items())
    with server.connect() as connection:
        connection.execute(f"DROP TABLE IF EXISTS {TABLE}")
        connection.execute(f"CREATE TABLE {TABLE} ({columns}, PRIMARY KEY (id))")
        with (
            connection.cursor().copy(f"COPY {TABLE} FROM STDIN (FORMAT csv)") as copy,
            csv.open("rb") as handle,
        ):
            while block := handle.read(1 << 20):
                copy.write(block)
        connection.commit()
        connection.autocommit = True  # VACUUM runs outside a transaction
        connection.execute(f"VACUUM ANALYZE {TABLE}")


def pg_output(server: local_postgres.Server) -> dict[str, Any]:
    return {
        "type": "postgres",
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "password": server.password,
        "dbname": server.dbname,
        "schema": "public",
        "threads": 1,
    }


def model(database: str) -> SyncedModel:
    return SyncedModel(
        unique_id=f"model.bench.{TABLE}",
        name=TABLE,
        database=database,
        schema="public",
        identifier=TABLE,
        location="bench",
        syncs=(),
    )


def duckdb_read(warehouse: Path) -> int:
    with duckdb_session("4GB") as con:
        con.execute(f"ATTACH '{warehouse}' AS wh (READ_ONLY)")
        con.execute(f"CREATE TEMP TABLE copied AS SELECT * FROM wh.main.{TABLE}")
        return count(con, "copied")


def tool_pg_read(server: local_postgres.Server, work: Path) -> int:
    source = PostgresSource(pg_output(server), work)
    try:
        with duckdb_session("4GB") as con:
            columns = source.columns(con, model(server.dbname))
            return count(con, source.relation(con, model(server.dbname), columns))
    finally:
        source.close()


def copy_binary(server: local_postgres.Server) -> int:
    """Bytes only: what the wire and the server's binary output cost, nothing decoded."""
    total = 0
    with server.connect() as connection, connection.cursor() as cursor:
        query = f"COPY (SELECT * FROM {TABLE}) TO STDOUT (FORMAT binary)"
        with cursor.copy(query) as copy:
            for block in copy:
                total += len(block)
    return total


def copy_rows(server: local_postgres.Server) -> int:
    """Every row as a Python tuple of typed values: the do-it-yourself script's read."""
    rows = 0
    with server.connect() as connection, connection.cursor() as cursor:
        query = f"COPY (SELECT * FROM {TABLE}) TO STDOUT (FORMAT binary)"
        with cursor.copy(query) as copy:
            copy.set_types([PG_TYPES[kind].split("(")[0] for kind in COLUMNS.values()])
            for _ in copy.rows():
                rows += 1
    return rows


def server_rows(server: local_postgres.Server) -> tuple[int, int]:
    with server.connect() as connection:
        row = connection.execute(
            f"SELECT count(*), pg_total_relation_size('{TABLE}') FROM {TABLE}"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def count(con: duckdb.DuckDBPyConnection, relation: str) -> int:
    row = con.execute(f"SELECT count(*) FROM {relation}").fetchone()
    assert row is not None
    return int(row[0])


def tool_run(project: Path, topic: str, bootstrap: str) -> int:
    """One backfill by the command line, as a user runs it; returns the messages sent."""
    local_kafka.create_topic(bootstrap, topic, 6)
    manifest = project / "target" / "manifest.json"
    manifest.write_text(manifest.read_text().replace("__TOPIC__", topic))
    try:
        state = project / f"state-{topic}.duckdb"  # a first run every time: a full backfill
        command = ["run", "--project-dir", str(project), "--state-path", str(state)]
        result = subprocess.run(
            [sys.executable, "-m", "dbt_kafka_sync", *command],
            capture_output=True,
            text=True,
            timeout=900,
        )
    finally:
        manifest.write_text(manifest.read_text().replace(topic, "__TOPIC__"))
    if result.returncode != 0:
        raise RuntimeError(result.stdout + result.stderr)
    return local_kafka.message_count(bootstrap, topic)


def write_project(root: Path, bootstrap: str, warehouse: dict[str, Any], database: str) -> Path:
    """A dbt project folder with one synced model (columns mode) and no dbt run."""
    bench = BenchProject(root, bootstrap)
    bench.write()
    profiles = yaml.safe_load((root / "profiles.yml").read_text())
    profiles["bench"]["outputs"]["dev"] = warehouse
    (root / "profiles.yml").write_text(yaml.safe_dump(profiles))
    node = {
        "resource_type": "model",
        "unique_id": f"model.bench.{TABLE}",
        "name": TABLE,
        "database": database,
        "schema": "public" if warehouse["type"] == "postgres" else "main",
        "alias": MODELS["columns"].relation,
        "original_file_path": f"models/{TABLE}.sql",
        "config": {"meta": {"kafka_sync": {"primary_key": "id", "topic": "__TOPIC__"}}},
    }
    manifest = {"metadata": {}, "nodes": {node["unique_id"]: node}}
    (root / "target" / "manifest.json").write_text(json.dumps(manifest))
    return root


def measure(name: str, repeats: int, step: Callable[[int], int]) -> list[tuple[float, int]]:
    runs = []
    for index in range(repeats):
        began = time.perf_counter()
        rows = step(index)
        elapsed = time.perf_counter() - began
        runs.append((elapsed, rows))
        print(
            f"{name:<16} run {index + 1}: {rows:,} rows in {elapsed:.2f} s"
            f" ({rows / elapsed:,.0f} rows/s)",
            flush=True,
        )
    return runs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-runs", action="store_true", help="only the reads")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="pg-read-bench-") as tmp:
        work = Path(tmp)
        warehouse = work / "warehouse.duckdb"
        build_warehouse(warehouse, args.rows)
        server = local_postgres.start(work / "postgres")
        broker = None if args.skip_runs else local_kafka.start(work / "broker")
        try:
            load_postgres(server, warehouse, work)
            rows, size = server_rows(server)
            print(f"model: {rows:,} rows, 8 columns, {size / 2**20:.0f} MiB in PostgreSQL")
            results = {
                "duckdb-read": measure(
                    "duckdb-read", args.repeats, lambda _: duckdb_read(warehouse)
                ),
                "tool-pg-read": measure(
                    "tool-pg-read", args.repeats, lambda _: tool_pg_read(server, work)
                ),
                "copy-binary": measure(
                    "copy-binary", args.repeats, lambda _: copy_binary(server) and rows
                ),
                "copy-rows": measure("copy-rows", args.repeats, lambda _: copy_rows(server)),
            }
            if broker is not None:
                bootstrap = broker.plaintext
                duck = write_project(
                    work / "duck",
                    bootstrap,
                    {"type": "duckdb", "path": str(warehouse)},
                    warehouse.stem,
                )
                pg = write_project(work / "pg", bootstrap, pg_output(server), server.dbname)
                results["tool-duckdb-run"] = measure(
                    "tool-duckdb-run",
                    args.repeats,
                    lambda i: tool_run(duck, f"duck-{i}-{time.time_ns()}", bootstrap),
                )
                results["tool-pg-run"] = measure(
                    "tool-pg-run",
                    args.repeats,
                    lambda i: tool_run(pg, f"pg-{i}-{time.time_ns()}", bootstrap),
                )
        finally:
            if broker is not None:
                broker.stop()
            server.stop()
    print(f"\nload average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores; medians:")
    print("| measurement | median s | range s | rows/s (median) |")
    print("| --- | ---: | ---: | ---: |")
    for name, runs in results.items():
        seconds = [s for s, _ in runs]
        median = statistics.median(seconds)
        print(
            f"| {name} | {median:.2f} | {min(seconds):.2f}-{max(seconds):.2f}"
            f" | {runs[0][1] / median:,.0f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
