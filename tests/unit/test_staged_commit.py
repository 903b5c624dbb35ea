"""A staged commit stopped by a failed sync stops its thread, whenever the failure comes."""

from __future__ import annotations

import duckdb

from dbt_kafka_sync.state.staging import StagedCommit

STEPS = 6


def test_closing_at_once_interrupts_the_staging_instead_of_waiting_for_it() -> None:
    # Closed right after it begins, the first interrupt reaches the thread before its first
    # statement, where DuckDB drops it: one interrupt alone would let every step run.
    connection = duckdb.connect()
    done: list[int] = []

    def stage(cursor: duckdb.DuckDBPyConnection) -> bool:
        for step in range(STEPS):
            cursor.execute("SELECT sum(hash(range)) FROM range(100000000)").fetchall()
            done.append(step)
        return True

    staged = StagedCommit(connection, stage)
    staged.close()
    assert len(done) < STEPS
    connection.execute("SELECT 1").fetchall()  # the session is usable: the cursor is closed
    connection.close()
