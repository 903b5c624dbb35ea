"""A sync's snapshot: the rows as last delivered, read for the diff and advanced on commit.

The snapshot only advances for rows whose delivery Kafka confirmed (or whose event is
not published), in one transaction with the run history, so a failed or interrupted
run leaves every unconfirmed row to be found again by the next run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dbt_kafka_sync.diff import CHANGES, EVENT, SEQ, ChangeCounts, DiffInput
from dbt_kafka_sync.producer import FailedRow
from dbt_kafka_sync.sql import quote_identifier, quote_literal
from dbt_kafka_sync.state import ALIAS, ROW_HASH, SyncRecord, qualified, snapshot_name

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

MAX_RECORDED_ROWS = 1_000  # failed rows kept per sync and run; the counts are always exact


def snapshot_rows(diff: DiffInput, record: SyncRecord) -> str:
    """Return the snapshot as a subquery with exactly the diff's columns.

    Columns the snapshot did not keep yet read as NULL (so those rows count as changed),
    and columns whose type changed are cast to the new type.
    """
    table = qualified(record.snapshot_table)
    columns = []
    for name, column_type in diff.columns.items():
        quoted = quote_identifier(name)
        if name not in record.columns:
            columns.append(f"NULL::{column_type} AS {quoted}")
        elif record.columns[name] != column_type:
            columns.append(f"TRY_CAST({quoted} AS {column_type}) AS {quoted}")
        else:
            columns.append(quoted)
    return f"(SELECT {', '.join(columns)}, {ROW_HASH} FROM {table})"


def rehash_if_needed(
    connection: duckdb.DuckDBPyConnection, diff: DiffInput, record: SyncRecord, duckdb_version: str
) -> list[str]:
    """Recompute stored hashes when what they cover changed; return notes for the log.

    Hashes depend on the compared columns and on DuckDB's hash function. When either
    changed and the snapshot holds every compared column, rehashing keeps unchanged rows
    unchanged; otherwise every row is sent as changed once, and the note says so.
    """
    same_columns = record.compare_columns == diff.compare_columns
    if same_columns and record.duckdb_version == duckdb_version:
        return []
    missing = [c for c in diff.compare_columns if c not in record.columns]
    if missing:
        return [
            f"the compared columns now include {', '.join(missing)}, which the snapshot does"
            " not hold: every row will be published as changed once"
        ]
    table = qualified(record.snapshot_table)
    hashed = ", ".join(quote_identifier(c) for c in diff.compare_columns)
    connection.execute("BEGIN TRANSACTION")
    connection.execute(f"UPDATE {table} SET {ROW_HASH} = hash({hashed})")
    connection.execute(
        f"UPDATE {ALIAS}.syncs SET compare_columns = ?, duckdb_version = ? WHERE sync_id = ?",
        [json.dumps(diff.compare_columns), duckdb_version, record.sync_id],
    )
    connection.execute("COMMIT")
    if same_columns:
        return []
    return ["the compared columns changed; the snapshot was rehashed, nothing is resent"]


@dataclass
class SyncOutcome:
    """What one sync did, for the run history."""

    run_id: str
    sync_id: str
    target: str
    model: str
    sync_name: str
    topic: str
    counts: ChangeCounts
    published: int
    delivered: int
    failed: int = 0
    rejected: int = 0
    failed_rows: list[FailedRow] = field(default_factory=list)  # stored: MAX_RECORDED_ROWS
    status: str = "success"
    error: str | None = None


def commit(
    connection: duckdb.DuckDBPyConnection,
    diff: DiffInput,
    record: SyncRecord | None,
    delivered: pa.Array,
    unpublished_events: list[str],
    sync_row: dict[str, str],
    outcome: SyncOutcome,
) -> None:
    """Advance the snapshot for delivered or unpublished rows and record the outcome.

    One transaction: on any error nothing of it is kept.
    """
    import pyarrow as pa

    table = record.snapshot_table if record else snapshot_name(outcome.sync_id)
    connection.register("dks_delivered", pa.table({SEQ: delivered}))
    try:
        connection.execute("BEGIN TRANSACTION")
        _shape_table(connection, diff, record, table)
        _apply_changes(connection, diff, qualified(table), unpublished_events)
        _save_sync(connection, diff, table, sync_row)
        record_outcome(connection, outcome)
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    finally:
        connection.unregister("dks_delivered")


def _shape_table(
    connection: duckdb.DuckDBPyConnection, diff: DiffInput, record: SyncRecord | None, table: str
) -> None:
    if record is None:
        columns = ", ".join(f"{quote_identifier(c)} {t}" for c, t in diff.columns.items())
        connection.execute(f"CREATE TABLE {qualified(table)} ({columns}, {ROW_HASH} UBIGINT)")
    elif record.columns != diff.columns:
        connection.execute(
            f"CREATE OR REPLACE TABLE {qualified(table)} AS SELECT * FROM"
            f" {snapshot_rows(diff, record)}"
        )


def _apply_changes(
    connection: duckdb.DuckDBPyConnection, diff: DiffInput, table: str, unpublished: list[str]
) -> None:
    unpublished_sql = ", ".join(quote_literal(e) for e in unpublished) or "NULL"
    done = (
        f"SELECT * FROM {CHANGES} WHERE {SEQ} IN (SELECT {SEQ} FROM dks_delivered)"
        f" OR {EVENT} IN ({unpublished_sql})"
    )
    connection.execute(f"CREATE OR REPLACE TEMP TABLE dks_done AS {done}")
    connection.execute(f"DELETE FROM {table} s USING dks_done d WHERE {diff.key_join('s', 'd')}")
    columns = ", ".join(quote_identifier(c) for c in diff.columns)
    connection.execute(
        f"INSERT INTO {table} ({columns}, {ROW_HASH}) SELECT {columns}, {ROW_HASH}"
        f" FROM dks_done WHERE {EVENT} <> 'removed'"
    )


def _save_sync(
    connection: duckdb.DuckDBPyConnection, diff: DiffInput, table: str, sync_row: dict[str, str]
) -> None:
    connection.execute(
        f"""
        INSERT INTO {ALIAS}.syncs BY NAME
        SELECT ? AS sync_id, ? AS target, ? AS model, ? AS sync_name, ? AS topic,
               ? AS snapshot_table, ? AS columns, ? AS compare_columns, ? AS fingerprint,
               ? AS duckdb_version,
               COALESCE((SELECT version FROM {ALIAS}.syncs WHERE sync_id = ?), 0) + 1 AS version,
               now() AS updated_at
        ON CONFLICT (sync_id) DO UPDATE SET
            topic = excluded.topic, snapshot_table = excluded.snapshot_table,
            columns = excluded.columns, compare_columns = excluded.compare_columns,
            fingerprint = excluded.fingerprint, duckdb_version = excluded.duckdb_version,
            version = excluded.version, updated_at = excluded.updated_at
        """,
        [
            sync_row["sync_id"],
            sync_row["target"],
            sync_row["model"],
            sync_row["sync_name"],
            sync_row["topic"],
            table,
            json.dumps(diff.columns),
            json.dumps(diff.compare_columns),
            sync_row["fingerprint"],
            sync_row["duckdb_version"],
            sync_row["sync_id"],
        ],
    )


def record_outcome(connection: duckdb.DuckDBPyConnection, outcome: SyncOutcome) -> None:
    """Write one sync's line of the run history and its failed rows."""
    connection.execute(
        f"INSERT INTO {ALIAS}.run_syncs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            outcome.run_id,
            outcome.sync_id,
            outcome.model,
            outcome.sync_name,
            outcome.topic,
            outcome.counts.added,
            outcome.counts.changed,
            outcome.counts.removed,
            outcome.published,
            outcome.delivered,
            outcome.failed,
            outcome.rejected,
            outcome.status,
            outcome.error,
        ],
    )
    if outcome.failed_rows:
        connection.executemany(
            f"INSERT INTO {ALIAS}.failed_rows VALUES (?, ?, ?, ?, ?, ?)",
            [
                [outcome.run_id, outcome.sync_id, outcome.model, row.row_key, row.event, row.reason]
                for row in outcome.failed_rows[:MAX_RECORDED_ROWS]
            ],
        )
