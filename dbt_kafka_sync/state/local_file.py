"""The local state file: a DuckDB file attached to the run's session as `__dks_state`.

Attaching it read-write takes DuckDB's file lock, which is what keeps a second
concurrent run out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbt_kafka_sync.errors import StateError
from dbt_kafka_sync.session import STATE_DATABASE as ALIAS
from dbt_kafka_sync.sql import DuckDBRunner, quote_identifier, quote_literal
from dbt_kafka_sync.state.integrity import check_state, damaged, state_errors
from dbt_kafka_sync.state.tables import LOCAL_COLUMNS, SCHEMA_VERSION, Bookkeeping

if TYPE_CHECKING:
    import duckdb


def local_bookkeeping(connection: duckdb.DuckDBPyConnection) -> Bookkeeping:
    """The bookkeeping tables of the state file attached to this session."""
    return Bookkeeping(DuckDBRunner(connection), f"{quote_identifier(ALIAS)}.main")


class StateFileRunner(DuckDBRunner):
    """DuckDBRunner over the state file: a statement failing on a damaged file blames it.

    Attributes:
        failed: a statement on the file failed: it is not known good any more.
    """

    def __init__(self, connection: duckdb.DuckDBPyConnection, path: Path) -> None:
        super().__init__(connection)
        self.path = path
        self.failed = False

    @contextmanager
    def guard(self) -> Iterator[None]:
        """Run statements on the file: an error marks it failed, and blames a damaged file."""
        try:
            with state_errors(self.connection, self.path):
                yield
        except Exception:
            self.failed = True
            raise

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement."""
        with self.guard():
            super().execute(sql, params)

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each row of parameters, in one batch."""
        with self.guard():
            super().execute_many(sql, rows)

    def records(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run one query; its rows as column name -> value."""
        with self.guard():
            return super().records(sql, params)


def file_bookkeeping(runner: StateFileRunner) -> Bookkeeping:
    """The bookkeeping tables of the attached state file, whose errors name the file."""
    return Bookkeeping(runner, f"{quote_identifier(ALIAS)}.main")


def open_state(
    connection: duckdb.DuckDBPyConnection,
    path: Path,
    read_only: bool,
    check_snapshots: bool = True,
) -> bool:
    """Attach the state file and check it; return False when it does not exist and read_only.

    The whole file is read (check_state) before anything is written to it: a damaged
    file is refused as it is. `check_snapshots` False skips the snapshot tables (`reset`).

    Raises:
        StateError: when another run holds the lock, the file is damaged (DamagedStateError)
            or written by another layout version.
    """
    import duckdb

    if read_only and not path.exists():
        return False
    if path.exists() and path.stat().st_size == 0:  # DuckDB would start a new file in it
        raise damaged(path, "the file is empty")
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = " (READ_ONLY)" if read_only else ""
    try:
        connection.execute(f"ATTACH {quote_literal(str(path))} AS {ALIAS}{mode}")
    except duckdb.Error as exc:
        if re.search(r"\block\b", str(exc), re.IGNORECASE):  # not "block": a damaged one
            raise StateError(
                f"state {path} is locked by another dbt-kafka-sync run: {exc}",
                hint="wait for that run to finish; two runs must not publish the same syncs",
            ) from None
        if "permission" in str(exc).lower():
            raise StateError(f"cannot open state {path}: {exc}") from None
        raise damaged(path, f"it cannot be opened: {exc}") from None
    check_state(connection, path, check_snapshots)
    book = file_bookkeeping(StateFileRunner(connection, path))
    if not read_only:
        book.create_tables(LOCAL_COLUMNS)
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
