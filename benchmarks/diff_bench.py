"""Time change detection alone (no Kafka): a model of N rows against its snapshot.

    .venv/bin/python benchmarks/diff_bench.py --rows 1000000 --changed 0.01

It builds a warehouse table in a temporary DuckDB file, records every row in a
snapshot as if all were delivered, changes a share of the rows (a third each added,
changed, removed), then times the diff, the no-change diff and the commit.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import pyarrow as pa

from dbt_kafka_sync.changes.diff import compute_changes
from dbt_kafka_sync.changes.input import ChangeCounts, DiffInput
from dbt_kafka_sync.state.history import SyncOutcome
from dbt_kafka_sync.state.local_file import local_bookkeeping, open_state
from dbt_kafka_sync.state.snapshot import SnapshotView, commit, snapshot_view
from dbt_kafka_sync.state.store import SyncIdentity, load_sync

COLUMNS = {
    "id": "BIGINT",
    "name": "VARCHAR",
    "email": "VARCHAR",
    "country": "VARCHAR",
    "balance": "DECIMAL(18,2)",
    "score": "DOUBLE",
    "active": "BOOLEAN",
    "updated_at": "TIMESTAMP",
}


def build_model(path: Path, rows: int) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute(
            f"""
            CREATE TABLE model AS SELECT
                range AS id,
                'name ' || range AS name,
                'user' || range || '@example.com' AS email,
                ['FR', 'DE', 'US', 'JP'][1 + range % 4] AS country,
                (range % 100000 / 100)::DECIMAL(18,2) AS balance,
                range * 0.5 AS score,
                range % 2 = 0 AS active,
                TIMESTAMP '2024-01-01' + INTERVAL (range) SECOND AS updated_at
            FROM range({rows})
            """
        )


def change_model(path: Path, rows: int, share: float) -> None:
    step = max(1, round(3 / share))  # one row in `step` for each of the three kinds
    with duckdb.connect(str(path)) as con:
        con.execute(f"UPDATE model SET email = 'changed' WHERE id % {step} = 0")
        con.execute(f"DELETE FROM model WHERE id % {step} = 1")
        con.execute(
            f"INSERT INTO model SELECT id + {rows}, name, email, country, balance, score,"
            f" active, updated_at FROM model WHERE id % {step} = 2"
        )


def timed(label: str, action: Callable[[], object]) -> object:
    start = time.perf_counter()
    result = action()
    print(f"{label:<34} {time.perf_counter() - start:8.3f} s   {result}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--changed", type=float, default=0.01)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        warehouse, state = Path(tmp) / "warehouse.duckdb", Path(tmp) / "state.duckdb"
        timed("build model", lambda: build_model(warehouse, args.rows))
        con = duckdb.connect()
        open_state(con, state, read_only=False)
        con.execute(f"ATTACH '{warehouse}' AS warehouse (READ_ONLY)")
        diff = DiffInput(
            relation="warehouse.main.model",
            primary_key=["id"],
            columns=COLUMNS,
            compare_columns=[c for c in COLUMNS if c != "id"],
        )
        identity = SyncIdentity(
            "bench", "bench", "model.bench.model", "default", "bench", "-", duckdb.__version__
        )

        def view() -> SnapshotView | None:
            record = load_sync(local_bookkeeping(con), "bench")
            return snapshot_view("model", diff, record, duckdb.__version__) if record else None

        def commit_all() -> str:
            [(count,)] = con.execute("SELECT count(*) FROM dks_changes").fetchall()
            failed = pa.array([], type=pa.int64())  # every row delivered
            outcome = SyncOutcome("model", "default", "bench", ChangeCounts(), count, count)
            record = load_sync(local_bookkeeping(con), "bench")
            commit(con, diff, view(), record, failed, identity, "r", outcome)
            return f"{count} rows committed"

        def diff_now() -> ChangeCounts:
            current = view()
            return compute_changes(con, diff, current.sql if current else None, False, model="m")

        timed("initial diff (empty snapshot)", diff_now)
        timed("commit every row", commit_all)
        timed("diff, nothing changed", diff_now)
        con.execute("DETACH warehouse")
        change = f"change {args.changed:.1%} of rows"
        timed(change, lambda: change_model(warehouse, args.rows, args.changed))
        con.execute(f"ATTACH '{warehouse}' AS warehouse (READ_ONLY)")
        timed(f"diff, {args.changed:.1%} changed", diff_now)
        timed("commit the changes", commit_all)
        print(f"DuckDB {duckdb.__version__}, {args.rows:,} rows")


if __name__ == "__main__":
    main()
