"""PostgreSQL, read with ADBC: binary COPY streamed as Arrow batches into the diff session.

The connection is the dbt profile's own Postgres output (the one `dbt run` used). Each
column is read in a form whose meaning survives the trip exactly; the DuckDB type it
takes in the session is chosen from the catalog, not guessed from the data:

- numeric(p, s) with p <= 38 becomes DECIMAL(p, s); a numeric without a precision (or a
  wider one) keeps its exact text and is sent as a JSON number with those digits;
- enums are read as their text, domains as their base type;
- json and jsonb are embedded as JSON, uuid as UUID, bytea as BLOB (base64 in JSON);
- one-dimensional arrays of the types above become lists.

Anything else (geometric types, money, ranges, time with time zone...) is refused before
any row is read, naming the column: a message is never silently wrong.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

from dbt_kafka_sync.errors import ConfigError, WarehouseError, quote_list
from dbt_kafka_sync.sources.base import EXACT_NUMERIC, EXACT_NUMERIC_MEMBER, SourceColumn
from dbt_kafka_sync.sql import quote_identifier

if TYPE_CHECKING:
    import duckdb

    from dbt_kafka_sync.dbt.manifest import SyncedModel

log = logging.getLogger(__name__)

SOURCE_TABLE = "dks_source"  # the session's copy of the columns a sync needs
ARROW_VIEW = "dks_arrow_batches"  # the batches as DuckDB scans them
MAX_DECIMAL_PRECISION = 38  # DuckDB's widest DECIMAL

# PostgreSQL base type -> DuckDB type, for types ADBC hands over exactly as they are.
_NATIVE = {
    "int2": "SMALLINT",
    "int4": "INTEGER",
    "int8": "BIGINT",
    "float4": "FLOAT",
    "float8": "DOUBLE",
    "bool": "BOOLEAN",
    "text": "VARCHAR",
    "varchar": "VARCHAR",
    "bpchar": "VARCHAR",
    "name": "VARCHAR",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "timestamptz": "TIMESTAMP WITH TIME ZONE",
    "time": "TIME",
    "interval": "INTERVAL",
    "uuid": "UUID",
    "bytea": "BLOB",
    "json": "JSON",
    "jsonb": "JSON",
}
# Read as their text and cast by DuckDB: the same result whatever Arrow extension types
# the driver version attaches to them.
_AS_TEXT = {"uuid", "json", "jsonb"}
# Types whose binary form ADBC would turn into a wrong value for 'infinity'.
_CAN_BE_INFINITE = {"date", "timestamp", "timestamptz"}
_NUMERIC = re.compile(r"^numeric\((\d+),(\d+)\)$")

# The catalog query: each column with its type, domains resolved to their base type.
_COLUMNS = """
WITH RECURSIVE resolved AS (
    SELECT a.attnum, a.attname, format_type(a.atttypid, a.atttypmod) AS declared,
           a.atttypid AS typid, a.atttypmod AS typmod, 0 AS depth
    FROM pg_attribute a
    WHERE a.attrelid = {relation}::regclass AND a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT r.attnum, r.attname, r.declared, t.typbasetype, t.typtypmod, r.depth + 1
    FROM resolved r JOIN pg_type t ON t.oid = r.typid
    WHERE t.typtype = 'd'
)
SELECT DISTINCT ON (r.attnum) r.attname, r.declared, format_type(r.typid, r.typmod),
       t.typname, t.typtype, e.typname, e.typtype
FROM resolved r
JOIN pg_type t ON t.oid = r.typid
LEFT JOIN pg_type e ON e.oid = t.typelem AND t.typcategory = 'A'
ORDER BY r.attnum, r.depth DESC
"""
_RELATION_KIND = """
SELECT c.relkind FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = {schema} AND c.relname = {name}
"""
_READABLE_KINDS = {"r": "table", "p": "table", "v": "view", "m": "materialized view"}


@dataclass(frozen=True)
class PostgresSettings:
    """The dbt-postgres profile output's connection settings (dbt's names and defaults)."""

    host: str
    user: str
    password: str
    dbname: str
    port: int = 5432
    schema: str | None = None
    sslmode: str | None = None
    sslcert: str | None = None
    sslkey: str | None = None
    sslrootcert: str | None = None
    connect_timeout: int = 10
    role: str | None = None
    search_path: str | None = None

    @classmethod
    def from_output(cls, output: dict[str, Any]) -> PostgresSettings:
        """Read the settings from a rendered dbt output, as dbt-postgres does.

        Raises:
            WarehouseError: naming a missing setting (never showing a value).
        """
        fields = {
            "host": output.get("host"),
            "user": output.get("user"),
            "password": output.get("password", output.get("pass")),
            "dbname": output.get("dbname", output.get("database")),
        }
        missing = [name for name, value in fields.items() if value in (None, "")]
        if missing:
            raise WarehouseError(
                f"the dbt target (type postgres) lacks {quote_list(missing)}",
                hint="dbt-postgres needs host, user, password and dbname in the output",
            )
        optional = ("schema", "sslmode", "sslcert", "sslkey", "sslrootcert", "role")
        return cls(
            host=str(fields["host"]),
            user=str(fields["user"]),
            password=str(fields["password"]),
            dbname=str(fields["dbname"]),
            port=int(output.get("port") or 5432),
            connect_timeout=int(output.get("connect_timeout") or 10),
            search_path=output.get("search_path"),
            **{name: str(output[name]) for name in optional if output.get(name) is not None},
        )

    def uri(self, project_dir: Path) -> str:
        """The libpq URI, password included: hand it to the driver, never to a log."""
        params: dict[str, str] = {
            "connect_timeout": str(self.connect_timeout),
            "application_name": "dbt-kafka-sync",
        }
        if self.sslmode:
            params["sslmode"] = self.sslmode
        for name in ("sslcert", "sslkey", "sslrootcert"):
            value = getattr(self, name)
            if value:  # relative to the dbt project, like every other path of the profile
                path = Path(value).expanduser()
                params[name] = str(path if path.is_absolute() else project_dir / path)
        if self.search_path:
            params["options"] = f"-c search_path={self.search_path}"
        credentials = f"{quote(self.user, safe='')}:{quote(self.password, safe='')}"
        database = quote(self.dbname, safe="")
        return f"postgresql://{credentials}@{self.host}:{self.port}/{database}?{urlencode(params)}"

    def describe(self) -> str:
        """Where the source is, for messages: no credentials."""
        return f"PostgreSQL at {self.host}:{self.port}, database {self.dbname}"


@dataclass(frozen=True)
class _CatalogColumn:
    """A column as the catalog describes it, domains resolved to their base type.

    Attributes:
        name: the column name.
        declared: its type as declared (a domain's name, numeric(12,2), mood...).
        base: the base type with its modifiers (numeric(12,2), integer[]...).
        typname: the base type's internal name (numeric, int4, _int4...).
        typtype: 'b' base, 'e' enum, 'c' composite, 'r' range...
        element: an array's element type name, else None.
        element_typtype: the element's typtype, else None.
    """

    name: str
    declared: str
    base: str
    typname: str
    typtype: str
    element: str | None
    element_typtype: str | None


@dataclass(frozen=True)
class _ColumnRead:
    """How one column travels: what PostgreSQL selects, what DuckDB makes of it."""

    column: SourceColumn
    select: str  # PostgreSQL expression
    load: str  # DuckDB expression over the Arrow column of the same name
    may_be_infinite: bool = False
    is_array: bool = False

    @property
    def quoted_name(self) -> str:
        """The column's name, quoted for either engine."""
        return quote_identifier(self.column.name)


class PostgresSource:
    """Reads models built by dbt-postgres, over one connection for the whole run."""

    def __init__(self, output: dict[str, Any], project_dir: Path) -> None:
        self.settings = PostgresSettings.from_output(output)
        self.project_dir = project_dir
        self._connection: Any = None
        self._reads: dict[tuple[str, str], _ColumnRead] = {}

    def columns(
        self, connection: duckdb.DuckDBPyConnection, model: SyncedModel
    ) -> list[SourceColumn]:
        """The model's columns, each mapped to the DuckDB type it will have."""
        relation = self._relation(model)
        rows = self._query(_COLUMNS.format(relation=_pg_literal(relation)))
        columns = []
        for row in rows:
            read = _column_read(model, _CatalogColumn(*row))
            self._reads[(model.unique_id, read.column.name)] = read
            columns.append(read.column)
        return columns

    def relation(
        self,
        connection: duckdb.DuckDBPyConnection,
        model: SyncedModel,
        columns: list[SourceColumn],
    ) -> str:
        """Stream these columns of every row into a table of the session; return its name."""
        reads = [self._reads[(model.unique_id, column.name)] for column in columns]
        relation = self._relation(model)
        self._check_values(model, relation, reads)
        select = ", ".join(f"{read.select} AS {read.quoted_name}" for read in reads)
        loads = ", ".join(f"{read.load} AS {read.quoted_name}" for read in reads)
        cursor = self._cursor()
        try:
            # Binary COPY under the hood (no bound parameters, which would turn it off),
            # streamed: DuckDB pulls one batch at a time and spills past its memory limit.
            cursor.execute(f"SELECT {select} FROM {relation}")
            connection.register(ARROW_VIEW, cursor.fetch_record_batch())
            connection.execute(
                f"CREATE OR REPLACE TEMP TABLE {SOURCE_TABLE} AS SELECT {loads} FROM {ARROW_VIEW}"
            )
        except Exception as exc:
            raise self._read_error(model, exc) from None
        finally:
            connection.unregister(ARROW_VIEW)
            cursor.close()
        return SOURCE_TABLE

    def open(self) -> None:
        """Connect now, so that a wrong password or host fails the run before any sync."""
        self._cursor().close()

    def close(self) -> None:
        """Close the warehouse connection."""
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _relation(self, model: SyncedModel) -> str:
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
                schema=_pg_literal(model.schema), name=_pg_literal(model.identifier)
            )
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
        return name

    def _check_values(self, model: SyncedModel, relation: str, reads: list[_ColumnRead]) -> None:
        """Refuse values ADBC cannot carry exactly: 'infinity' dates, multi-dimensional arrays."""
        checks = []
        for read in reads:
            name = quote_identifier(read.column.name)
            if read.may_be_infinite:
                checks.append((read, f"bool_or(NOT isfinite({name}))", "holds 'infinity'"))
            if read.is_array:
                checks.append(
                    (read, f"bool_or(array_ndims({name}) > 1)", "holds a multi-dimensional array")
                )
        if not checks:
            return
        [found] = self._query(
            f"SELECT {', '.join(check for _, check, _ in checks)} FROM {relation}"
        )
        for (read, _, problem), bad in zip(checks, found, strict=True):
            if bad:
                raise ConfigError(
                    f"{read.column.warehouse_type} column {problem}, which cannot be sent exactly",
                    model=model.name,
                    column=read.column.name,
                    hint="turn such values into NULL or another type in the model (e.g. ::text)",
                )

    def _cursor(self) -> Any:
        if self._connection is None:
            self._connection = self._connect()
        return self._connection.cursor()

    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        cursor = self._cursor()
        try:
            cursor.execute(sql)
            rows: list[tuple[Any, ...]] = cursor.fetchall()
            return rows
        finally:
            cursor.close()

    def _connect(self) -> Any:
        try:
            import adbc_driver_postgresql.dbapi as adbc
        except ImportError:
            raise WarehouseError(
                "reading PostgreSQL needs the ADBC PostgreSQL driver",
                hint="pip install 'dbt-kafka-sync[postgres]'",
            ) from None
        try:
            # Autocommit, so that SET ROLE lasts for the whole connection.
            connection = adbc.connect(self.settings.uri(self.project_dir), autocommit=True)
            cursor = connection.cursor()
            cursor.execute("SET TIME ZONE 'UTC'")
            if self.settings.role:
                cursor.execute(f"SET ROLE {quote_identifier(self.settings.role)}")
            cursor.close()
        except Exception as exc:
            raise WarehouseError(
                f"cannot connect to {self.settings.describe()}: {self._masked(exc)}",
                hint="check the dbt profile's postgres output: `dbt debug` uses the same one",
            ) from None
        log.debug("connected to %s", self.settings.describe())
        return connection

    def _read_error(self, model: SyncedModel, exc: Exception) -> WarehouseError:
        return WarehouseError(
            f"reading the model from {self.settings.describe()} failed: {self._masked(exc)}",
            model=model.name,
        )

    def _masked(self, exc: Exception) -> str:
        """The driver's message on one line, with the password cut out wherever it appears."""
        text = " ".join(str(exc).split())
        for secret in {self.settings.password, quote(self.settings.password, safe="")}:
            if secret:
                text = text.replace(secret, "**********")
        return text


def _column_read(model: SyncedModel, catalog: _CatalogColumn) -> _ColumnRead:
    """Decide how a column is read from its catalog entry; refuse what cannot be exact."""
    name, declared = catalog.name, catalog.declared
    quoted = quote_identifier(name)
    if catalog.element is not None:
        return _array_read(model, catalog)
    if catalog.typtype == "e":  # an enum: its label
        return _ColumnRead(SourceColumn(name, declared, "VARCHAR"), f"{quoted}::text", quoted)
    if catalog.typname == "numeric":
        return _numeric_read(catalog)
    if catalog.typname not in _NATIVE:
        raise _unsupported(model, catalog)
    duckdb_type = _NATIVE[catalog.typname]
    if catalog.typname in _AS_TEXT:
        column = SourceColumn(name, declared, duckdb_type)
        return _ColumnRead(column, f"{quoted}::text", f"CAST({quoted} AS {duckdb_type})")
    # A domain is read as its base type.
    select = quoted if catalog.base == declared else f"{quoted}::{catalog.base}"
    return _ColumnRead(
        SourceColumn(name, declared, duckdb_type),
        select,
        quoted,
        may_be_infinite=catalog.typname in _CAN_BE_INFINITE,
    )


def _numeric_read(catalog: _CatalogColumn) -> _ColumnRead:
    """Numeric arrives as text: cast to an exact DECIMAL, or kept as exact text if too wide."""
    quoted = quote_identifier(catalog.name)
    select = f"{quoted}::text"
    # NaN and +-Infinity are no JSON numbers: they are sent as null, as float columns' are.
    finite = f"CASE WHEN lower({quoted}) IN ('nan', 'inf', '-inf', 'infinity', '-infinity')"
    finite += f" THEN NULL ELSE {quoted} END"
    decimal = _decimal_type(catalog.base)
    if decimal:
        column = SourceColumn(catalog.name, catalog.declared, decimal)
        return _ColumnRead(column, select, f"CAST({finite} AS {decimal})")
    load = f'union_value("{EXACT_NUMERIC_MEMBER}" := {finite})'
    return _ColumnRead(SourceColumn(catalog.name, catalog.declared, EXACT_NUMERIC), select, load)


def _decimal_type(numeric: str) -> str | None:
    """DECIMAL(p,s) for numeric(p,s) when DuckDB can hold it exactly, else None."""
    scaled = _NUMERIC.match(numeric.replace(" ", ""))
    if scaled and int(scaled[1]) <= MAX_DECIMAL_PRECISION:
        return f"DECIMAL({scaled[1]},{scaled[2]})"
    return None


def _array_read(model: SyncedModel, catalog: _CatalogColumn) -> _ColumnRead:
    """A one-dimensional array of a natively read type becomes a DuckDB list."""
    name, declared, element = catalog.name, catalog.declared, catalog.element
    quoted = quote_identifier(name)
    if catalog.element_typtype == "e":
        column = SourceColumn(name, declared, "VARCHAR[]")
        return _ColumnRead(column, f"{quoted}::text[]", quoted, is_array=True)
    decimal = _decimal_type(catalog.base.removesuffix("[]")) if element == "numeric" else None
    if decimal:
        column = SourceColumn(name, declared, f"{decimal}[]")
        load = f"CAST({quoted} AS {decimal}[])"
        return _ColumnRead(column, f"{quoted}::text[]", load, is_array=True)
    if element in _NATIVE and element not in _CAN_BE_INFINITE | _AS_TEXT:
        column = SourceColumn(name, declared, f"{_NATIVE[element]}[]")
        return _ColumnRead(column, quoted, quoted, is_array=True)
    raise _unsupported(model, catalog)


def _unsupported(model: SyncedModel, catalog: _CatalogColumn) -> ConfigError:
    return ConfigError(
        f"the column's type {catalog.declared} cannot be sent exactly by dbt-kafka-sync",
        model=model.name,
        column=catalog.name,
        hint="cast it in the model to a supported type (text, numeric, timestamptz, json, ...);"
        " the README lists the supported PostgreSQL types",
    )


def _pg_literal(text: str) -> str:
    """A PostgreSQL string literal (standard_conforming_strings, on since 9.1)."""
    return "'" + text.replace("'", "''") + "'"
