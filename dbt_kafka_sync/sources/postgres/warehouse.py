"""PostgreSQL as the warehouse that keeps the state: a bookkeeping schema, the diff in SQL.

Only the changed rows leave the server, through the same checked binary COPY that
reads a model, so they arrive with exactly the types a local-state run gives them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from dbt_kafka_sync.errors import StateError, WarehouseError
from dbt_kafka_sync.sources.base import SourceColumn
from dbt_kafka_sync.sql import SqlRunner, quote_identifier, quote_literal

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from dbt_kafka_sync.dbt.manifest import SyncedModel
    from dbt_kafka_sync.sources.postgres.settings import PostgresSettings

_NO_PRIVILEGE = "42501"  # SQLSTATE insufficient_privilege
MIN_SERVER_VERSION = 120000  # extra_float_digits = 1 gives the shortest exact float text from 12
INPUT_CHECK_VERSION = 160000  # pg_input_is_valid(): tells whether a text converts to a type


class ModelReader(Protocol):
    """What the warehouse uses of the PostgreSQL source: its connection and checked reads."""

    settings: PostgresSettings

    def connection(self) -> Any:
        """The run's ADBC connection."""
        ...

    def connect(self) -> Any:
        """A new ADBC connection."""
        ...

    def error(self, model: SyncedModel | None, what: str, exc: Exception) -> WarehouseError:
        """A driver error, password masked."""
        ...

    def relation_name(self, model: SyncedModel) -> str:
        """The model's quoted relation name."""
        ...

    def lock_for_read(self, model: SyncedModel) -> int:
        """Hold the relation for the transaction's reads."""
        ...

    def check_same_relation(self, model: SyncedModel, oid: int) -> None:
        """After the reads: the name still means the relation read."""
        ...

    def end_transaction(self) -> None:
        """Leave the current transaction, keeping nothing of it."""
        ...

    def copy_query(
        self,
        connection: duckdb.DuckDBPyConnection,
        model: SyncedModel,
        query: str,
        columns: list[str],
        passthrough: list[str],
        into: str,
    ) -> None:
        """Check, then copy a query's rows into a session table."""
        ...


class PostgresRunner:
    """SqlRunner over an ADBC connection; driver errors become masked WarehouseErrors."""

    def __init__(self, connection: Any, error: Callable[[Exception], WarehouseError]) -> None:
        self.connection = connection
        self.error = error

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement."""
        self._run(sql, params, rows=False)

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each row of parameters, bound as one Arrow batch."""
        cursor = self.connection.cursor()
        try:
            cursor.executemany(sql, [list(row) for row in rows])
        except Exception as exc:
            raise self.error(exc) from None
        finally:
            cursor.close()

    def records(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run one query; its rows as column name -> value."""
        return self._run(sql, params, rows=True)

    def _run(self, sql: str, params: Sequence[Any], rows: bool) -> list[dict[str, Any]]:
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql, list(params) if params else None)
            if not rows:
                return []
            names = [column[0] for column in cursor.description or []]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        except Exception as exc:
            raise self.error(exc) from None
        finally:
            cursor.close()


class PostgresWarehouse(PostgresRunner):
    """The state in a schema of the database the dbt target connects to.

    Statements run on the source's connection, the one the models are read with.
    """

    hash_version = "md5-64/1"
    hash_type = "bigint"
    lock_clause = " FOR UPDATE"
    exclusive = False

    def __init__(self, source: ModelReader) -> None:
        self.source = source
        super().__init__(source.connection(), self._error)
        [row] = self.records("SELECT current_setting('server_version_num')::int AS version")
        self.server_version = int(row["version"])
        if row["version"] < MIN_SERVER_VERSION:
            raise StateError(
                f"the warehouse state needs PostgreSQL 12 or later (its row hash relies on the"
                f" shortest exact text of floats); {source.settings.describe()} runs version"
                f" {row['version']}",
                hint="keep the state in a local file (state: {type: local}) with this server",
            )

    def _error(self, exc: Exception) -> WarehouseError:
        return self.source.error(None, "a query", exc)

    def schema(self, name: str) -> str:
        """The schema's quoted name (one database per connection)."""
        return quote_identifier(name)

    def schema_exists(self, name: str) -> bool:
        """Tell whether the schema exists."""
        found = self.records("SELECT count(*) AS n FROM pg_namespace WHERE nspname = $1", [name])
        return bool(found[0]["n"])

    def create_schema(self, name: str) -> None:
        """Create the schema, or say which privilege is missing."""
        try:
            self.execute(f"CREATE SCHEMA IF NOT EXISTS {self.schema(name)}")
        except WarehouseError as exc:
            if _NO_PRIVILEGE not in str(exc) and "permission denied" not in str(exc):
                raise
            settings = self.source.settings
            raise StateError(
                f"the state schema '{name}' does not exist and user '{settings.user}' may not"
                f" create it in database '{settings.dbname}' (it needs CREATE on the database)",
                hint=f"have it created once: CREATE SCHEMA {self.schema(name)} AUTHORIZATION"
                f" {quote_identifier(settings.user)}; or GRANT CREATE ON DATABASE"
                f" {quote_identifier(settings.dbname)} TO {quote_identifier(settings.user)}",
            ) from None

    def relation(self, model: SyncedModel) -> str:
        """The model's relation, checked to exist and be readable."""
        return self.source.relation_name(model)

    def column_types(self, table: str) -> dict[str, str]:
        """The table's declared types (with modifiers), as the model's catalog names them."""
        rows = self.records(
            "SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type"
            " FROM pg_attribute a WHERE a.attrelid = $1::regclass AND a.attnum > 0"
            " AND NOT a.attisdropped",
            [table],
        )
        return {str(row["name"]): str(row["type"]) for row in rows}

    def temp_table(self, name: str) -> str:
        """A table of the connection's own temp schema."""
        return f"pg_temp.{quote_identifier(name)}"

    def create_temp(self, name: str, query: str) -> None:
        """A temp table of the connection (not logged), replaced if it exists."""
        self.execute(f"DROP TABLE IF EXISTS {self.temp_table(name)}")
        self.execute(f"CREATE TEMP TABLE {quote_identifier(name)} AS {query}")

    def text(self, column: SourceColumn, alias: str) -> str:
        """A value's text output (the session fixes time zone, date and float formats)."""
        return f"CAST({alias}.{quote_identifier(column.name)} AS text)"

    def convert(self, expression: str, column: SourceColumn) -> str:
        """The value's text read as the column's type, where that text is valid input for it.

        PostgreSQL has no TRY_CAST: the check needs pg_input_is_valid (PostgreSQL 16); on
        older servers no value converts (they read as NULL, and the run says so).
        """
        if self.server_version < INPUT_CHECK_VERSION:
            return f"CAST(NULL AS {column.warehouse_type})"
        text = f"CAST({expression} AS text)"
        kind = column.warehouse_type
        valid = f"pg_input_is_valid({text}, {quote_literal(kind)})"
        return f"CASE WHEN {valid} THEN CAST({text} AS {kind}) END"

    def hash_of_text(self, text: str) -> str:
        """The first 64 bits of the text's md5, as a signed bigint."""
        return f"('x' || substr(md5({text}), 1, 16))::bit(64)::bigint"

    def row_json(self, alias: str) -> str:
        """A row as JSON text, cut to 200 characters."""
        return f"left(to_json({alias})::text, 200)"

    @contextmanager
    def consistent_read(self, model: SyncedModel) -> Iterator[None]:
        """REPEATABLE READ, with the model locked against a `dbt run` replacing it meanwhile."""
        self.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
        try:
            oid = self.source.lock_for_read(model)
            yield
            self.source.check_same_relation(model, oid)
        except BaseException:
            self.source.end_transaction()
            raise
        self.execute("COMMIT")

    def fetch(
        self,
        session: duckdb.DuckDBPyConnection,
        model: SyncedModel,
        query: str,
        columns: list[SourceColumn],
        passthrough: list[str],
        into: str,
    ) -> None:
        """Checked binary COPY of the query's rows, each column read as the model's."""
        names = [column.name for column in columns]
        self.source.copy_query(session, model, query, names, passthrough, into)

    def upload(
        self, session: duckdb.DuckDBPyConnection, table: pa.Table | pa.RecordBatchReader, name: str
    ) -> None:
        """Bulk ingest (binary COPY) into a temp table of this connection; a stream as it comes."""
        cursor = self.source.connection().cursor()
        try:
            cursor.adbc_ingest(name, table, mode="replace", temporary=True)
        except Exception as exc:
            raise self._error(exc) from None
        finally:
            cursor.close()

    def second_connection(self) -> SqlRunner:
        """A connection of its own, with the same settings."""
        return PostgresRunner(self.source.connect(), self._error)

    def close_runner(self, runner: SqlRunner) -> None:
        """Close a connection second_connection() opened."""
        if isinstance(runner, PostgresRunner):
            runner.connection.close()
