"""The PostgreSQL source: one connection per run, one checked, streamed read per sync."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from dbt_kafka_sync.errors import ConfigError, WarehouseError, masked, quote_list
from dbt_kafka_sync.sources.base import SourceColumn, Warehouse
from dbt_kafka_sync.sources.postgres.columns import (
    CATALOG_COLUMNS,
    CatalogColumn,
    ColumnRead,
    column_read,
    pg_literal,
    refuse_names_alike,
)
from dbt_kafka_sync.sources.postgres.settings import PostgresSettings
from dbt_kafka_sync.sql import quote_identifier

if TYPE_CHECKING:
    import duckdb

    from dbt_kafka_sync.dbt.manifest import SyncedModel

log = logging.getLogger("dbt_kafka_sync.sources.postgres")

SOURCE_TABLE = "dks_source"  # the session's copy of the columns a sync needs
ARROW_VIEW = "dks_arrow_batches"  # the batches as DuckDB scans them
_RELATION_KIND = """
SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = {schema} AND c.relname = {name}
"""
_SESSION_SETTINGS = [
    "SET TIME ZONE 'UTC'",
    "SET DateStyle = 'ISO, MDY'",
    "SET IntervalStyle = 'postgres'",
    "SET extra_float_digits = 1",  # the shortest text that reads back as the same float
    "SET bytea_output = 'hex'",
]
# pg_class.relkind: table, partitioned table, view, materialized view.
_READABLE_KINDS = {"r", "p", "v", "m"}


@dataclass(frozen=True)
class _Relation:
    """A model's relation: its quoted name and its kind (pg_class.relkind)."""

    name: str
    kind: str


@dataclass(frozen=True)
class _PlannedRead:
    """What columns() found for a model, for relation() to read."""

    relation: _Relation
    reads: dict[str, ColumnRead]  # column name -> how it is read


class PostgresSource:
    """Reads models built by dbt-postgres, over one connection for the whole run."""

    def __init__(self, output: dict[str, Any], project_dir: Path) -> None:
        self.settings = PostgresSettings.from_output(output)
        self.target_schema = str(output.get("schema") or "public")
        self.project_dir = project_dir
        self._connection: Any = None
        self._planned: dict[str, _PlannedRead] = {}  # by model unique_id

    def columns(
        self, connection: duckdb.DuckDBPyConnection, model: SyncedModel
    ) -> list[SourceColumn]:
        """The model's columns, each mapped to the DuckDB type it will have."""
        relation = self._relation(model)
        catalog = self._catalog(model, relation.name)
        refuse_names_alike(model, [column.name for column in catalog])
        reads = {entry.name: column_read(model, entry) for entry in catalog}
        self._planned[model.unique_id] = _PlannedRead(relation, reads)
        return [read.column for read in reads.values()]

    def relation(
        self,
        connection: duckdb.DuckDBPyConnection,
        model: SyncedModel,
        columns: list[SourceColumn],
    ) -> str:
        """Stream these columns of every row into a table of the session; return its name."""
        # One snapshot for the checks and the read: what was checked is what is read.
        self._query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", model, rows=False)
        try:
            oid = self.lock_for_read(model)
            relation = self._planned[model.unique_id].relation.name
            names = [column.name for column in columns]
            self.copy_query(connection, model, f"SELECT * FROM {relation}", names, [], SOURCE_TABLE)
            self.check_same_relation(model, oid)
        finally:
            self.end_transaction()
        return SOURCE_TABLE

    def lock_for_read(self, model: SyncedModel) -> int:
        """In the read's transaction: hold the relation, check it and its columns are as planned.

        Returns:
            The relation's id, to check again after reading a materialized view.
        """
        planned = self._planned[model.unique_id]
        relation = planned.relation.name
        if planned.relation.kind != "m":  # a `dbt run` replacing it now waits for the read
            self._query(f"LOCK TABLE {relation} IN ACCESS SHARE MODE", model, rows=False)
        oid = self._visible_oid(model, relation)
        self._check_unchanged(model, relation, list(planned.reads.values()))
        return oid

    def check_same_relation(self, model: SyncedModel, oid: int) -> None:
        """After a read: the name still means the relation read.

        A materialized view cannot be locked: a `dbt run` may have replaced it meanwhile.
        """
        planned = self._planned[model.unique_id]
        if self._visible_oid(model, planned.relation.name) != oid:
            raise self._changed(model, list(planned.reads))

    def relation_name(self, model: SyncedModel) -> str:
        """The quoted name of a model's relation, as columns() found it."""
        return self._planned[model.unique_id].relation.name

    def copy_query(
        self,
        connection: duckdb.DuckDBPyConnection,
        model: SyncedModel,
        query: str,
        columns: list[str],
        passthrough: list[str],
        into: str,
    ) -> None:
        """Check, then copy a query's rows into a session table.

        `columns` (model columns) are read as columns() planned; `passthrough` columns
        (numbers, text) as they come.
        """
        reads = [self._planned[model.unique_id].reads[name] for name in columns]
        rows = f"({query})"
        self._check_values(model, rows, reads)
        self._copy(connection, model, rows, reads, passthrough, into)

    def _visible_oid(self, model: SyncedModel, relation: str) -> int:
        """The relation's id, checking that this transaction's snapshot sees it.

        A relation created (replaced by a `dbt run`) after the snapshot would read as
        empty, and every row would look removed: that is refused.
        """
        found = self._query(
            f"SELECT oid FROM pg_class WHERE oid = {pg_literal(relation)}::regclass", model
        )
        if not found:
            raise self._changed(model, [])
        return int(found[0][0])

    def _changed(self, model: SyncedModel, columns: list[str]) -> WarehouseError:
        what = f"column(s) {quote_list(columns)}" if columns else "the relation"
        return WarehouseError(
            f"{what} changed while the model was read (a `dbt run` at the same time?);"
            " nothing was read",
            model=model.name,
            hint="run the sync again once dbt has finished",
        )

    def _copy(
        self,
        connection: duckdb.DuckDBPyConnection,
        model: SyncedModel,
        rows: str,
        reads: list[ColumnRead],
        passthrough: list[str],
        into: str,
    ) -> None:
        kept = [quote_identifier(name) for name in passthrough]
        select = ", ".join(kept + [f"{read.select} AS {read.quoted_name}" for read in reads])
        loads = ", ".join(kept + [f"{read.load} AS {read.quoted_name}" for read in reads])
        cursor = self._cursor()
        try:
            # Binary COPY under the hood (no bound parameters, which would turn it off),
            # streamed: DuckDB pulls one batch at a time and spills past its memory limit.
            cursor.execute(f"SELECT {select} FROM {rows} t")
            connection.register(ARROW_VIEW, cursor.fetch_record_batch())
            connection.execute(
                f"CREATE OR REPLACE TEMP TABLE {into} AS SELECT {loads} FROM {ARROW_VIEW}"
            )
        except Exception as exc:
            raise self.error(model, "reading the model", exc) from None
        finally:
            connection.unregister(ARROW_VIEW)
            cursor.close()

    def end_transaction(self) -> None:
        """Leave the read's transaction (nothing to commit)."""
        self._end_transaction()

    def _end_transaction(self) -> None:
        # Read only: nothing to commit. A connection that broke has no transaction left.
        try:
            self._query("ROLLBACK", None, rows=False)
        except WarehouseError:
            self.close()

    def open(self) -> None:
        """Connect now, so that a wrong password or host fails the run before any sync."""
        self._cursor().close()

    def close(self) -> None:
        """Close the warehouse connection."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _relation(self, model: SyncedModel) -> _Relation:
        """The model's relation as a quoted name, checking that it exists and can be read."""
        if model.database and model.database != self.settings.dbname:
            raise WarehouseError(
                f"the model is in database '{model.database}', but the dbt target connects to"
                f" '{self.settings.dbname}'",
                model=model.name,
                hint="PostgreSQL reads one database per connection: use the target dbt built with",
            )
        name = f"{quote_identifier(model.schema)}.{quote_identifier(model.identifier)}"
        kinds = self._query(
            _RELATION_KIND.format(
                schema=pg_literal(model.schema), name=pg_literal(model.identifier)
            ),
            model,
        )
        if not kinds:
            raise WarehouseError(
                f"relation {name} not found in {self.settings.describe()}",
                model=model.name,
                hint="run `dbt run` so the model is materialized before syncing it",
            )
        if kinds[0][0] not in _READABLE_KINDS:
            raise WarehouseError(
                f"relation {name} is of kind '{kinds[0][0]}', not a table or a view",
                model=model.name,
            )
        return _Relation(name, kinds[0][0])

    def _check_values(self, model: SyncedModel, relation: str, reads: list[ColumnRead]) -> None:
        """Refuse values the driver cannot carry exactly, naming the column and a row."""
        checked = [(read, read.problem) for read in reads if read.problem is not None]
        if not checked:
            return
        flags = ", ".join(f"bool_or({problem.condition})" for _, problem in checked)
        [found] = self._query(f"SELECT {flags} FROM {relation} t", model)
        for (read, problem), bad in zip(checked, found, strict=True):
            if bad:
                [(example,)] = self._query(
                    f"SELECT left(to_json(t)::text, 200) FROM {relation} t"
                    f" WHERE {problem.condition} LIMIT 1",
                    model,
                )
                raise ConfigError(
                    f"{read.column.warehouse_type} column holds {problem.description},"
                    f" which cannot be sent exactly; first such row: {example}",
                    model=model.name,
                    column=read.column.name,
                    hint="turn such values into NULL or another type in the model (e.g. ::text)",
                )

    def _check_unchanged(self, model: SyncedModel, relation: str, reads: list[ColumnRead]) -> None:
        """Inside the read's transaction: the columns are still what columns() saw."""
        now = {column.name: column for column in self._catalog(model, relation)}
        changed = [read.column.name for read in reads if now.get(read.column.name) != read.catalog]
        if changed:
            raise self._changed(model, changed)

    def _catalog(self, model: SyncedModel, relation: str) -> list[CatalogColumn]:
        """The relation's columns as the catalog describes them, in order."""
        query = CATALOG_COLUMNS.format(relation=pg_literal(relation))
        return [CatalogColumn(*row) for row in self._query(query, model)]

    def _cursor(self) -> Any:
        return self.connection().cursor()

    def connection(self) -> Any:
        """The run's ADBC connection, opened on first use."""
        if self._connection is None:
            self._connection = self.connect()
        return self._connection

    def warehouse(self, session: duckdb.DuckDBPyConnection, read_only: bool) -> Warehouse:
        """This connection, for the state kept in a schema of the database."""
        from dbt_kafka_sync.sources.postgres.warehouse import PostgresWarehouse

        return PostgresWarehouse(self)

    def _query(
        self, sql: str, model: SyncedModel | None, rows: bool = True
    ) -> list[tuple[Any, ...]]:
        """Run one statement; any driver error becomes a WarehouseError, password masked."""
        cursor = self._cursor()
        try:
            cursor.execute(sql)
            return list(cursor.fetchall()) if rows else []
        except Exception as exc:
            raise self.error(model, "a query", exc) from None
        finally:
            cursor.close()

    def connect(self) -> Any:
        """A new ADBC connection with the session settings every read relies on."""
        try:
            import adbc_driver_postgresql.dbapi as adbc
        except ImportError:
            raise WarehouseError(
                "reading PostgreSQL needs the ADBC PostgreSQL driver",
                hint="pip install 'dbt-kafka-sync[postgres]'",
            ) from None
        connection = None
        try:
            # Autocommit, so that SET ROLE lasts for the whole connection. Every column is
            # read as a built-in type (enums as text, domains as their base type), so the
            # driver need not load the server's type catalog first.
            connection = adbc.connect(
                self.settings.uri(self.project_dir),
                db_kwargs={"adbc.postgresql.type_resolver_mode": "builtin"},
                autocommit=True,
            )
            cursor = connection.cursor()
            # Fixed text forms: the warehouse row hash hashes values' text.
            for setting in _SESSION_SETTINGS:
                cursor.execute(setting)
            if self.settings.role:
                cursor.execute(f"SET ROLE {_role_name(self.settings.role)}")
            cursor.close()
        except Exception as exc:
            if connection is not None:
                connection.close()
            raise WarehouseError(
                f"cannot connect to {self.settings.describe()}: {self._masked(exc)}",
                hint="check the dbt profile's postgres output: `dbt debug` uses the same one",
            ) from None
        log.debug("connected to %s", self.settings.describe())
        return connection

    def error(self, model: SyncedModel | None, what: str, exc: Exception) -> WarehouseError:
        """A driver error as a WarehouseError, password masked."""
        return WarehouseError(
            f"{what} on {self.settings.describe()} failed: {self._masked(exc)}",
            model=model.name if model else None,
        )

    def _masked(self, exc: Exception) -> str:
        """The driver's message on one line, with the password cut out wherever it appears."""
        password = self.settings.password
        secrets = [password, quote(password, safe="")] if password else []
        return masked(" ".join(str(exc).split()), secrets)


def _role_name(role: str) -> str:
    """The role as dbt-postgres sets it (unquoted: folded to lower case), but quoted safely."""
    if role.startswith('"') and role.endswith('"'):
        return role  # quoted in the profile: taken as written
    return quote_identifier(role.lower())
