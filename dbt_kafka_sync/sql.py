"""Quoting for the SQL this tool writes: identifiers and literals never come in raw."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa


def quote_identifier(name: str) -> str:
    """Quote a DuckDB identifier (column, table, schema or database name)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """Quote a DuckDB string literal."""
    return "'" + text.replace("'", "''") + "'"


def events_list(events: list[str]) -> str:
    """Return events as the inside of an SQL IN list (NULL, matching nothing, when empty)."""
    return ", ".join(quote_literal(e) for e in events) or "NULL"


def arrow_batches(
    connection: duckdb.DuckDBPyConnection, query: str, batch_rows: int
) -> pa.RecordBatchReader:
    """Run a query and stream its result as Arrow record batches of at most batch_rows."""
    relation = connection.sql(query)
    # Streamed from the relation: no copy of the result. DuckDB 2 renamed the method.
    if hasattr(relation, "to_arrow_reader"):
        reader: pa.RecordBatchReader = relation.to_arrow_reader(batch_rows)
    else:
        reader = relation.fetch_arrow_reader(batch_rows)  # type: ignore[attr-defined,unused-ignore]
    return reader


@contextmanager
def registered(connection: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> Iterator[str]:
    """An Arrow table that `connection`'s queries read by `name`, for the block only."""
    connection.register(name, table)
    try:
        yield name
    finally:
        connection.unregister(name)


class SqlRunner(Protocol):
    """A connection that runs statements with positional parameters ($1, $2, ...)."""

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement."""
        ...

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each row of parameters, in one batch."""
        ...

    def records(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run one query; its rows as column name -> value."""
        ...


class DuckDBRunner:
    """SqlRunner over a DuckDB connection."""

    def __init__(self, connection: duckdb.DuckDBPyConnection) -> None:
        self.connection = connection

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement."""
        self.connection.execute(sql, list(params))

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each row of parameters, in one batch."""
        self.connection.executemany(sql, [list(row) for row in rows])

    def records(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run one query; its rows as column name -> value."""
        cursor = self.connection.execute(sql, list(params))
        names = [column[0] for column in cursor.description or []]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


@contextmanager
def transaction(runner: SqlRunner) -> Iterator[None]:
    """Run a block in one transaction: committed at the end, rolled back on any error."""
    runner.execute("BEGIN")
    try:
        yield
    except BaseException:
        runner.execute("ROLLBACK")
        raise
    runner.execute("COMMIT")
