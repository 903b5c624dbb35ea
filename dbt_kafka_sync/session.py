"""The run's local DuckDB session, where models are read, diffed and turned into messages."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

STATE_DATABASE = "__dks_state"  # the state store's alias: a name no dbt database is likely to have
# Database names the session already uses: a warehouse database may not take them.
RESERVED_DATABASES = {"memory", "temp", "system", STATE_DATABASE}


@contextmanager
def duckdb_session(memory_limit: str) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection for one run, closed at the end.

    Its memory is capped: a large diff spills to a temporary folder (under $TMPDIR),
    removed at the end, instead of growing with the table.
    """
    import duckdb

    with tempfile.TemporaryDirectory(prefix="dbt-kafka-sync-") as spill:
        connection = duckdb.connect()
        # Instants rendered as text (keys, headers, row keys) must not depend on the machine.
        connection.execute("SET TimeZone = 'UTC'")
        connection.execute("SET memory_limit = ?", [memory_limit])
        connection.execute("SET temp_directory = ?", [spill])
        try:
            yield connection
        finally:
            connection.close()
