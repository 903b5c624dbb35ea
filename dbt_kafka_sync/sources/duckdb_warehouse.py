"""DuckDB as the warehouse that keeps the state: the dbt-duckdb file, attached read-write.

The warehouse is the run's own session: the diff is DuckDB's work, within its memory
limit (spilling beyond it), and only the changed rows become a table of the session.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from dbt_kafka_sync.errors import StateError
from dbt_kafka_sync.sources.base import SourceColumn
from dbt_kafka_sync.sql import (
    DuckDBRunner,
    SqlRunner,
    quote_identifier,
    quote_literal,
    transaction,
)

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from dbt_kafka_sync.dbt.manifest import SyncedModel

    # The source's lookup of a model's relation in the session (attached and checked).
    RelationOf = Callable[[duckdb.DuckDBPyConnection, SyncedModel], str]

_NESTED = ("STRUCT", "MAP", "UNION")
_UPLOADED = "dks_uploaded_arrow"


class DuckDBWarehouse(DuckDBRunner):
    """The state in a schema of the dbt-duckdb database file; statements run on the session."""

    hash_type = "UBIGINT"
    lock_clause = ""  # the file lock already keeps other processes out
    exclusive = True

    def __init__(
        self,
        session: duckdb.DuckDBPyConnection,
        database: str,
        path: Path,
        relation_of: RelationOf,
        read_only: bool,
    ) -> None:
        import duckdb

        # A value's text could change with DuckDB's version: a new one is a new hash.
        major_minor = ".".join(duckdb.__version__.split(".")[:2])
        self.hash_version = f"md5-64/1 duckdb-{major_minor}"
        super().__init__(session)
        self.session = session
        self.database = database
        self.relation_of = relation_of
        self._attach(path, read_only)

    def _attach(self, path: Path, read_only: bool) -> None:
        import duckdb

        attached = self.session.execute("SELECT database_name FROM duckdb_databases()").fetchall()
        if (self.database,) in attached:
            return
        if read_only and not path.is_file():
            return  # nothing to read: relations are reported missing when a model is read
        mode = " (READ_ONLY)" if read_only else ""
        try:
            self.session.execute(
                f"ATTACH {quote_literal(str(path))} AS {quote_identifier(self.database)}{mode}"
            )
        except duckdb.IOException as exc:
            if "lock" not in str(exc).lower():
                raise StateError(f"cannot open the warehouse file {path}: {exc}") from None
            raise StateError(
                f"the warehouse file {path} is in use by another process (another"
                f" dbt-kafka-sync run, or dbt): {exc}",
                hint="wait for it to finish; DuckDB lets one process write a file at a time",
            ) from None

    def schema(self, name: str) -> str:
        """The schema in the warehouse file."""
        return f"{quote_identifier(self.database)}.{quote_identifier(name)}"

    def schema_exists(self, name: str) -> bool:
        """Tell whether the schema exists in the warehouse file."""
        found = self.records(
            "SELECT count(*) AS n FROM duckdb_schemas() WHERE database_name = $1"
            " AND schema_name = $2",
            [self.database, name],
        )
        return bool(found[0]["n"])

    def create_schema(self, name: str) -> None:
        """Create the schema in the warehouse file."""
        self.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema(name)}")

    def relation(self, model: SyncedModel) -> str:
        """The model's relation, attached and checked."""
        return self.relation_of(self.session, model)

    def column_types(self, table: str) -> dict[str, str]:
        """The table's DuckDB types."""
        rows = self.session.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()
        return {str(row[0]): str(row[1]) for row in rows}

    def temp_table(self, name: str) -> str:
        """A table of the session's temp catalog."""
        return f"temp.main.{quote_identifier(name)}"

    def create_temp(self, name: str, query: str) -> None:
        """A temp table of the session, replaced if it exists."""
        self.execute(f"CREATE OR REPLACE TEMP TABLE {quote_identifier(name)} AS {query}")

    def text(self, column: SourceColumn, alias: str) -> str:
        """A value's text; nested values through JSON, which tells NULL from empty."""
        name = f"{alias}.{quote_identifier(column.name)}"
        kind = column.duckdb_type.upper()
        if "[" in kind or kind.startswith(_NESTED):
            return f"CAST(to_json({name}) AS VARCHAR)"
        return f"CAST({name} AS VARCHAR)"

    def convert(self, expression: str, column: SourceColumn) -> str:
        """DuckDB's TRY_CAST: NULL where the value does not convert."""
        return f"TRY_CAST({expression} AS {column.warehouse_type})"

    def hash_of_text(self, text: str) -> str:
        """The first 64 bits of the text's md5."""
        return f"CAST('0x' || left(md5({text}), 16) AS UBIGINT)"

    def row_json(self, alias: str) -> str:
        """A row as JSON text, cut to 200 characters."""
        return f"left(CAST(to_json({alias}) AS VARCHAR), 200)"

    @contextmanager
    def consistent_read(self, model: SyncedModel) -> Iterator[None]:
        """One DuckDB transaction: its statements see one snapshot of the file."""
        with transaction(self):
            yield

    def fetch(
        self,
        session: duckdb.DuckDBPyConnection,
        model: SyncedModel,
        query: str,
        columns: list[SourceColumn],
        passthrough: list[str],
        into: str,
    ) -> None:
        """The same engine: a view of the rows, read once when the changes are built."""
        session.execute(f"CREATE OR REPLACE TEMP VIEW {into} AS SELECT * FROM ({query}) q")

    def upload(
        self, session: duckdb.DuckDBPyConnection, table: pa.Table | pa.RecordBatchReader, name: str
    ) -> None:
        """The same engine: the Arrow table becomes a temp table directly."""
        import pyarrow as pa

        if not isinstance(table, pa.Table):  # a stream from this session: read before it writes
            table = table.read_all()
        session.register(_UPLOADED, table)
        try:
            session.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {_UPLOADED}")
        finally:
            session.unregister(_UPLOADED)

    def second_connection(self) -> SqlRunner:
        """A cursor of the same database instance: it sees the attached file."""
        return DuckDBRunner(self.session.cursor())

    def close_runner(self, runner: SqlRunner) -> None:
        """Close a cursor second_connection() opened."""
        if isinstance(runner, DuckDBRunner):
            runner.connection.close()
