"""The local state file: a DuckDB file attached to the run's session as `__dks_state`.

Attaching it read-write takes DuckDB's file lock, which is what keeps a second
concurrent run out.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dbt_kafka_sync.errors import StateError
from dbt_kafka_sync.session import STATE_DATABASE as ALIAS
from dbt_kafka_sync.sql import DuckDBRunner, quote_identifier, quote_literal
from dbt_kafka_sync.state.tables import SCHEMA_VERSION, Bookkeeping

if TYPE_CHECKING:
    import duckdb


def local_bookkeeping(connection: duckdb.DuckDBPyConnection) -> Bookkeeping:
    """The bookkeeping tables of the state file attached to this session."""
    return Bookkeeping(DuckDBRunner(connection), f"{quote_identifier(ALIAS)}.main")


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
    book = local_bookkeeping(connection)
    if not read_only:
        book.create_tables()
    if not has_state(connection):
        return True
    version = book.schema_version()
    if version is None and not read_only:
        book.set_schema_version()
    elif version is not None and version != SCHEMA_VERSION:
        raise StateError(
            f"state {path} has schema version {version}; this version of dbt-kafka-sync"
            f" reads version {SCHEMA_VERSION}",
            hint="use the dbt-kafka-sync version that wrote it, or move the file away",
        )
    return True


def has_state(connection: duckdb.DuckDBPyConnection) -> bool:
    """Tell whether a state file is attached and initialised."""
    rows = connection.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND table_name = 'syncs'",
        [ALIAS],
    ).fetchall()
    return bool(rows[0][0])
