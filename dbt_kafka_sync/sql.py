"""Quoting for the SQL this tool writes: identifiers and literals never come in raw."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa


def quote_identifier(name: str) -> str:
    """Quote a DuckDB identifier (column, table, schema or database name)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    """Quote a DuckDB string literal."""
    return "'" + text.replace("'", "''") + "'"


def arrow_batches(
    connection: duckdb.DuckDBPyConnection, query: str, batch_rows: int
) -> pa.RecordBatchReader:
    """Run a query and stream its result as Arrow record batches of at most batch_rows."""
    result = connection.execute(query)
    # DuckDB 2 renamed fetch_record_batch to to_arrow_reader; both stream, neither copies.
    if hasattr(result, "to_arrow_reader"):
        reader: pa.RecordBatchReader = result.to_arrow_reader(batch_rows)
    else:
        reader = result.fetch_record_batch(batch_rows)  # type: ignore[attr-defined,unused-ignore]
    return reader
