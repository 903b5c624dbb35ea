"""The state store: a DuckDB file with each sync's snapshot and the run history.

It is attached to the run's in-memory DuckDB connection as `state`. Attaching it
read-write takes DuckDB's file lock, which is what keeps a second concurrent run out.
Every write for one sync happens in one transaction, so a crash leaves either the old
snapshot or the new one, never a mix.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbt_kafka_sync.errors import StateError
from dbt_kafka_sync.session import STATE_DATABASE as ALIAS
from dbt_kafka_sync.sql import quote_identifier, quote_literal

if TYPE_CHECKING:
    import duckdb

SCHEMA_VERSION = 1

_TABLES = f"""
CREATE TABLE IF NOT EXISTS {ALIAS}.meta (key VARCHAR PRIMARY KEY, value VARCHAR);
CREATE TABLE IF NOT EXISTS {ALIAS}.syncs (
    sync_id VARCHAR PRIMARY KEY,
    target VARCHAR, model VARCHAR, sync_name VARCHAR, topic VARCHAR,
    snapshot_table VARCHAR, primary_key VARCHAR, columns VARCHAR, compare_columns VARCHAR,
    fingerprint VARCHAR, duckdb_version VARCHAR, version BIGINT, updated_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS {ALIAS}.runs (
    run_id VARCHAR PRIMARY KEY, command VARCHAR, target VARCHAR,
    started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, status VARCHAR, error VARCHAR);
CREATE TABLE IF NOT EXISTS {ALIAS}.run_syncs (
    run_id VARCHAR, sync_id VARCHAR, model VARCHAR, sync_name VARCHAR, topic VARCHAR,
    added BIGINT, changed BIGINT, removed BIGINT, published BIGINT, delivered BIGINT,
    failed BIGINT, rejected BIGINT, status VARCHAR, error VARCHAR);
CREATE TABLE IF NOT EXISTS {ALIAS}.failed_rows (
    run_id VARCHAR, sync_id VARCHAR, model VARCHAR, row_key VARCHAR, event VARCHAR,
    error VARCHAR);
"""


@dataclass(frozen=True)
class SyncRecord:
    """What the state remembers of one sync."""

    sync_id: str
    snapshot_table: str
    primary_key: list[str]
    columns: dict[str, str]
    compare_columns: list[str]
    fingerprint: str
    duckdb_version: str


def sync_id(target: str, model_unique_id: str, sync_name: str) -> str:
    """Identify a sync: one snapshot per Kafka target, model and sync name."""
    return f"{target}:{model_unique_id}:{sync_name}"


def open_state(connection: duckdb.DuckDBPyConnection, path: Path, read_only: bool) -> bool:
    """Attach the state file; return False when it does not exist and read_only is set.

    Raises:
        StateError: when another run holds the lock, or the file is not a state store.
    """
    import duckdb

    if read_only and not path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = " (READ_ONLY)" if read_only else ""
    try:
        connection.execute(f"ATTACH {quote_literal(str(path))} AS {ALIAS}{mode}")
    except duckdb.IOException as exc:
        if "lock" in str(exc).lower():
            raise StateError(
                f"state {path} is locked by another dbt-kafka-sync run: {exc}",
                hint="wait for that run to finish; two runs must not publish the same syncs",
            ) from None
        raise StateError(f"cannot open state {path}: {exc}") from None
    if not read_only:
        connection.execute(_TABLES)
    _check_schema_version(connection, path, read_only)
    return True


def _check_schema_version(
    connection: duckdb.DuckDBPyConnection, path: Path, read_only: bool
) -> None:
    if read_only and not has_state(connection):
        return
    found = connection.execute(
        f"SELECT value FROM {ALIAS}.meta WHERE key = 'schema_version'"
    ).fetchall()
    if not found and not read_only:
        connection.execute(
            f"INSERT INTO {ALIAS}.meta VALUES ('schema_version', ?)", [str(SCHEMA_VERSION)]
        )
    elif found and int(found[0][0]) != SCHEMA_VERSION:
        raise StateError(
            f"state {path} has schema version {found[0][0]}; this version of dbt-kafka-sync"
            f" reads version {SCHEMA_VERSION}",
            hint="use the dbt-kafka-sync version that wrote it, or move the file away",
        )


@contextmanager
def transaction(connection: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run a block in one transaction: committed at the end, rolled back on any error."""
    connection.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


def has_state(connection: duckdb.DuckDBPyConnection) -> bool:
    """Tell whether a state store is attached and initialised."""
    rows = connection.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND table_name = 'syncs'",
        [ALIAS],
    ).fetchall()
    return bool(rows[0][0])


def load_sync(connection: duckdb.DuckDBPyConnection, sync: str) -> SyncRecord | None:
    """Return what the state remembers of a sync, or None before its first commit."""
    if not has_state(connection):
        return None
    rows = connection.execute(
        f"SELECT sync_id, snapshot_table, primary_key, columns, compare_columns, fingerprint,"
        f" duckdb_version FROM {ALIAS}.syncs WHERE sync_id = ?",
        [sync],
    ).fetchall()
    if not rows:
        return None
    row = rows[0]
    return SyncRecord(
        sync_id=row[0],
        snapshot_table=row[1],
        primary_key=json.loads(row[2]),
        columns=json.loads(row[3]),
        compare_columns=json.loads(row[4]),
        fingerprint=row[5],
        duckdb_version=row[6],
    )


def snapshot_name(sync: str) -> str:
    """Return a stable table name for a sync's snapshot (sync ids hold characters tables cannot)."""
    return "snapshot_" + hashlib.sha256(sync.encode()).hexdigest()[:16]


def qualified(table: str) -> str:
    """Name a table of the state store."""
    return f"{ALIAS}.main.{quote_identifier(table)}"


def fingerprint(config: dict[str, Any]) -> str:
    """Hash the parts of a sync's config that shape its messages."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


def forget_syncs(connection: duckdb.DuckDBPyConnection, model: str, target: str) -> list[str]:
    """Drop the snapshots of a model's syncs (by name or unique_id); return the sync ids."""
    if not has_state(connection):
        return []
    rows = connection.execute(
        f"SELECT sync_id, snapshot_table FROM {ALIAS}.syncs WHERE target = ?"
        f" AND (model = ? OR split_part(model, '.', -1) = ?)",
        [target, model, model],
    ).fetchall()
    with transaction(connection):
        for identity, table in rows:
            connection.execute(f"DROP TABLE IF EXISTS {qualified(table)}")
            connection.execute(f"DELETE FROM {ALIAS}.syncs WHERE sync_id = ?", [identity])
    return [str(identity) for identity, _ in rows]
