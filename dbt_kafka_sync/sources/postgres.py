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
from dataclasses import dataclass, replace
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
# Types whose binary form ADBC would turn into a wrong value for 'infinity', or (for
# timestamps) beyond DuckDB's range: year 294247 and later.
_CAN_BE_INFINITE = {"date", "timestamp", "timestamptz"}
_TIMESTAMP_END = "'294247-01-10'"
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
    dbname: str
    password: str | None = None  # none: libpq's own sources (.pgpass, PGPASSWORD, trust)
    port: int = 5432
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
            WarehouseError: naming a missing or malformed setting (never showing a value).
        """
        required = {
            "host": output.get("host"),
            "user": output.get("user"),
            "dbname": output.get("dbname", output.get("database")),
        }
        missing = [name for name, value in required.items() if value in (None, "")]
        if missing:
            raise WarehouseError(
                f"the dbt target (type postgres) lacks {quote_list(missing)}",
                hint="dbt-postgres reads host, user, password and dbname from the output",
            )
        password = output.get("password", output.get("pass"))
        optional = ("sslmode", "sslcert", "sslkey", "sslrootcert", "role", "search_path")
        return cls(
            **{name: str(value) for name, value in required.items()},
            password=str(password) if password not in (None, "") else None,
            port=_whole_number(output, "port", 5432),
            connect_timeout=_whole_number(output, "connect_timeout", 10),
            **{name: str(output[name]) for name in optional if output.get(name) is not None},
        )

    def uri(self, project_dir: Path) -> str:
        """The libpq URI, password included: hand it to the driver, never to a log.

        Every setting is a query parameter, so that socket folders and IPv6 hosts need
        no special spelling.
        """
        params: dict[str, str] = {
            "host": self.host,
            "port": str(self.port),
            "user": self.user,
            "dbname": self.dbname,
            "connect_timeout": str(self.connect_timeout),
            "application_name": "dbt-kafka-sync",
        }
        if self.password is not None:
            params["password"] = self.password
        if self.sslmode:
            params["sslmode"] = self.sslmode
        for name in ("sslcert", "sslkey", "sslrootcert"):
            value = getattr(self, name)
            if value == "system" and name == "sslrootcert":  # libpq: the system's CAs
                params[name] = value
            elif value:  # relative to the dbt project, like every other path of the profile
                path = Path(value).expanduser()
                params[name] = str(path if path.is_absolute() else project_dir / path)
        if self.search_path:  # as dbt-postgres sets it: spaces escaped for libpq's options
            escaped = self.search_path.replace("\\", "\\\\").replace(" ", "\\ ")
            params["options"] = f"-c search_path={escaped}"
        return "postgresql://?" + urlencode(params, quote_via=quote)

    def describe(self) -> str:
        """Where the source is, for messages: no credentials."""
        return f"PostgreSQL at {self.host}:{self.port}, database {self.dbname}"


@dataclass(frozen=True)
class _Relation:
    """A model's relation: its quoted name and its kind (pg_class.relkind)."""

    name: str
    kind: str


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
class _Problem:
    """Values the driver would carry wrongly, refused before the read.

    Attributes:
        condition: PostgreSQL condition, true for a row holding such a value.
        description: what such a value is, for the error.
    """

    condition: str
    description: str


@dataclass(frozen=True)
class _ColumnRead:
    """How one column travels: what PostgreSQL selects, what DuckDB makes of it."""

    column: SourceColumn
    select: str  # PostgreSQL expression
    load: str  # DuckDB expression over the Arrow column of the same name
    problem: _Problem | None = None  # values of this column that cannot be read exactly
    catalog: _CatalogColumn | None = None  # what the catalog said when the read was planned

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
        relation = self._relation(model).name
        catalog = [
            _CatalogColumn(*row)
            for row in self._query(_COLUMNS.format(relation=_pg_literal(relation)), model)
        ]
        _refuse_names_alike(model, [column.name for column in catalog])
        columns = []
        for entry in catalog:
            read = _column_read(model, entry)
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
        found = self._relation(model)
        relation = found.name
        # One snapshot for the checks and the read: what was checked is what is read.
        self._query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", model, rows=False)
        try:
            if found.kind != "m":  # a `dbt run` replacing it now waits for the read to end
                self._query(f"LOCK TABLE {relation} IN ACCESS SHARE MODE", model, rows=False)
            oid = self._visible_oid(model, relation)
            self._check_unchanged(model, relation, reads)
            self._check_values(model, relation, reads)
            self._copy(connection, model, relation, reads)
            # A materialized view cannot be locked: make sure the name still meant it.
            if self._visible_oid(model, relation) != oid:
                raise self._changed(model, [read.column.name for read in reads])
        finally:
            self._end_transaction()
        return SOURCE_TABLE

    def _visible_oid(self, model: SyncedModel, relation: str) -> int:
        """The relation's id, checking that this transaction's snapshot sees it.

        A relation created (replaced by a `dbt run`) after the snapshot would read as
        empty, and every row would look removed: that is refused.
        """
        found = self._query(
            f"SELECT oid FROM pg_class WHERE oid = {_pg_literal(relation)}::regclass", model
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
        relation: str,
        reads: list[_ColumnRead],
    ) -> None:
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
            raise self._error(model, "reading the model", exc) from None
        finally:
            connection.unregister(ARROW_VIEW)
            cursor.close()

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
                schema=_pg_literal(model.schema), name=_pg_literal(model.identifier)
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

    def _check_values(self, model: SyncedModel, relation: str, reads: list[_ColumnRead]) -> None:
        """Refuse values the driver cannot carry exactly, naming the column and a row."""
        checked = [read for read in reads if read.problem is not None]
        if not checked:
            return
        flags = ", ".join(f"bool_or({read.problem.condition})" for read in checked if read.problem)
        [found] = self._query(f"SELECT {flags} FROM {relation}", model)
        for read, bad in zip(checked, found, strict=True):
            if bad and read.problem is not None:
                [(example,)] = self._query(
                    f"SELECT left(to_json(t)::text, 200) FROM {relation} t"
                    f" WHERE {read.problem.condition} LIMIT 1",
                    model,
                )
                raise ConfigError(
                    f"{read.column.warehouse_type} column holds {read.problem.description},"
                    f" which cannot be sent exactly; first such row: {example}",
                    model=model.name,
                    column=read.column.name,
                    hint="turn such values into NULL or another type in the model (e.g. ::text)",
                )

    def _check_unchanged(self, model: SyncedModel, relation: str, reads: list[_ColumnRead]) -> None:
        """Inside the read's transaction: the columns are still what columns() saw."""
        now = {
            catalog.name: catalog
            for catalog in (
                _CatalogColumn(*row)
                for row in self._query(_COLUMNS.format(relation=_pg_literal(relation)), model)
            )
        }
        changed = [read.column.name for read in reads if now.get(read.column.name) != read.catalog]
        if changed:
            raise self._changed(model, changed)

    def _cursor(self) -> Any:
        if self._connection is None:
            self._connection = self._connect()
        return self._connection.cursor()

    def _query(
        self, sql: str, model: SyncedModel | None, rows: bool = True
    ) -> list[tuple[Any, ...]]:
        """Run one statement; any driver error becomes a WarehouseError, password masked."""
        cursor = self._cursor()
        try:
            cursor.execute(sql)
            return list(cursor.fetchall()) if rows else []
        except Exception as exc:
            raise self._error(model, "a query", exc) from None
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
            cursor.execute("SET TIME ZONE 'UTC'")
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

    def _error(self, model: SyncedModel | None, what: str, exc: Exception) -> WarehouseError:
        return WarehouseError(
            f"{what} on {self.settings.describe()} failed: {self._masked(exc)}",
            model=model.name if model else None,
        )

    def _masked(self, exc: Exception) -> str:
        """The driver's message on one line, with the password cut out wherever it appears."""
        text = " ".join(str(exc).split())
        password = self.settings.password
        for secret in {password, quote(password, safe="")} if password else set():
            text = text.replace(secret, "**********")
        return text


def _column_read(model: SyncedModel, catalog: _CatalogColumn) -> _ColumnRead:
    """Decide how a column is read from its catalog entry; refuse what cannot be exact."""
    return replace(_read_for(model, catalog), catalog=catalog)


def _read_for(model: SyncedModel, catalog: _CatalogColumn) -> _ColumnRead:
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
        SourceColumn(name, declared, duckdb_type), select, quoted, _range_problem(catalog)
    )


def _range_problem(catalog: _CatalogColumn) -> _Problem | None:
    quoted = quote_identifier(catalog.name)
    if catalog.typname == "date":
        return _Problem(f"NOT isfinite({quoted})", "'infinity'")
    if catalog.typname in ("timestamp", "timestamptz"):
        beyond = f"{quoted} >= {_TIMESTAMP_END}::{catalog.typname}"
        return _Problem(
            f"(NOT isfinite({quoted}) OR {beyond})", "'infinity' or a year after 294246"
        )
    return None


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
    # ADBC flattens a multi-dimensional array into one list: refuse those values.
    nested = _Problem(f"array_ndims({quoted}) > 1", "a multi-dimensional array")
    if catalog.element_typtype == "e":
        column = SourceColumn(name, declared, "VARCHAR[]")
        return _ColumnRead(column, f"{quoted}::text[]", quoted, nested)
    decimal = _decimal_type(catalog.base.removesuffix("[]")) if element == "numeric" else None
    if decimal:
        column = SourceColumn(name, declared, f"{decimal}[]")
        item = "__dks_item"  # NaN elements are sent as null, as in numeric columns
        finite = f"CASE WHEN lower({item}) IN ('nan', 'inf', '-inf') THEN NULL ELSE {item} END"
        load = f"CAST(list_transform({quoted}, lambda {item}: {finite}) AS {decimal}[])"
        return _ColumnRead(column, f"{quoted}::text[]", load, nested)
    if element in _NATIVE and element not in _CAN_BE_INFINITE | _AS_TEXT:
        column = SourceColumn(name, declared, f"{_NATIVE[element]}[]")
        return _ColumnRead(column, quoted, quoted, nested)
    raise _unsupported(model, catalog)


def _whole_number(output: dict[str, Any], key: str, default: int) -> int:
    value = output.get(key)
    if value in (None, ""):
        return default
    try:
        return int(str(value))
    except ValueError:
        raise WarehouseError(
            f"the dbt target's `{key}` is not a whole number",
            hint=f"write e.g. {key}: {default}",
        ) from None


def _refuse_names_alike(model: SyncedModel, names: list[str]) -> None:
    """DuckDB tells columns apart regardless of case: "ID" and "id" would be one column."""
    seen: dict[str, str] = {}
    for name in names:
        other = seen.setdefault(name.lower(), name)
        if other != name:
            raise ConfigError(
                f"columns '{other}' and '{name}' differ only in case, which the diff cannot"
                " tell apart",
                model=model.name,
                column=name,
                hint="rename one of them in the model",
            )


def _role_name(role: str) -> str:
    """The role as dbt-postgres sets it (unquoted: folded to lower case), but quoted safely."""
    if role.startswith('"') and role.endswith('"'):
        return role  # quoted in the profile: taken as written
    return quote_identifier(role.lower())


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
