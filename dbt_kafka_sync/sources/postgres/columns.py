"""How each PostgreSQL column is read: what is selected, and what DuckDB makes of it.

Types ADBC hands over exactly are read as they are; numeric, enums, uuid and json go
through their text; anything that cannot arrive exactly is refused, naming the column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dbt_kafka_sync.errors import ConfigError
from dbt_kafka_sync.sources.base import EXACT_NUMERIC, EXACT_NUMERIC_MEMBER, SourceColumn
from dbt_kafka_sync.sql import quote_identifier

if TYPE_CHECKING:
    from dbt_kafka_sync.dbt.manifest import SyncedModel

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
CATALOG_COLUMNS = """
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


@dataclass(frozen=True)
class CatalogColumn:
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
class Problem:
    """Values the driver would carry wrongly, refused before the read.

    Attributes:
        condition: PostgreSQL condition, true for a row holding such a value.
        description: what such a value is, for the error.
    """

    condition: str
    description: str


@dataclass(frozen=True)
class ColumnRead:
    """How one column travels: what PostgreSQL selects, what DuckDB makes of it."""

    catalog: CatalogColumn  # what the catalog said when the read was planned
    column: SourceColumn
    select: str  # PostgreSQL expression
    load: str  # DuckDB expression over the Arrow column of the same name
    problem: Problem | None = None  # values of this column that cannot be read exactly

    @property
    def quoted_name(self) -> str:
        """The column's name, quoted for either engine."""
        return quote_identifier(self.column.name)


def column_read(model: SyncedModel, catalog: CatalogColumn) -> ColumnRead:
    """Decide how a column is read from its catalog entry; refuse what cannot be exact."""
    name, declared = catalog.name, catalog.declared
    quoted = quote_identifier(name)
    if catalog.element is not None:
        return _array_read(model, catalog)
    if catalog.typtype == "e":  # an enum: its label
        column = SourceColumn(name, declared, "VARCHAR")
        return ColumnRead(catalog, column, f"{quoted}::text", quoted)
    if catalog.typname == "numeric":
        return _numeric_read(catalog)
    if catalog.typname not in _NATIVE:
        raise _unsupported(model, catalog)
    duckdb_type = _NATIVE[catalog.typname]
    if catalog.typname in _AS_TEXT:
        column = SourceColumn(name, declared, duckdb_type)
        return ColumnRead(catalog, column, f"{quoted}::text", f"CAST({quoted} AS {duckdb_type})")
    # A domain is read as its base type.
    select = quoted if catalog.base == declared else f"{quoted}::{catalog.base}"
    column = SourceColumn(name, declared, duckdb_type)
    return ColumnRead(catalog, column, select, quoted, _range_problem(catalog))


def _range_problem(catalog: CatalogColumn) -> Problem | None:
    quoted = quote_identifier(catalog.name)
    if catalog.typname == "date":
        return Problem(f"NOT isfinite({quoted})", "'infinity'")
    if catalog.typname in ("timestamp", "timestamptz"):
        beyond = f"{quoted} >= {_TIMESTAMP_END}::{catalog.typname}"
        return Problem(f"(NOT isfinite({quoted}) OR {beyond})", "'infinity' or a year after 294246")
    return None


def _numeric_read(catalog: CatalogColumn) -> ColumnRead:
    """Numeric arrives as text: cast to an exact DECIMAL, or kept as exact text if too wide."""
    quoted = quote_identifier(catalog.name)
    select = f"{quoted}::text"
    decimal = _decimal_type(catalog.base)
    if decimal:
        column = SourceColumn(catalog.name, catalog.declared, decimal)
        return ColumnRead(catalog, column, select, f"CAST({_finite(quoted)} AS {decimal})")
    load = f'union_value("{EXACT_NUMERIC_MEMBER}" := {_finite(quoted)})'
    column = SourceColumn(catalog.name, catalog.declared, EXACT_NUMERIC)
    return ColumnRead(catalog, column, select, load)


def _finite(numeric_text: str) -> str:
    """A numeric's text, NULL for NaN and +-Infinity: no JSON number, sent as null like floats'."""
    return (
        f"CASE WHEN lower({numeric_text}) IN ('nan', 'inf', '-inf', 'infinity', '-infinity')"
        f" THEN NULL ELSE {numeric_text} END"
    )


def _decimal_type(numeric: str) -> str | None:
    """DECIMAL(p,s) for numeric(p,s) when DuckDB can hold it exactly, else None."""
    scaled = _NUMERIC.match(numeric.replace(" ", ""))
    if scaled and int(scaled[1]) <= MAX_DECIMAL_PRECISION:
        return f"DECIMAL({scaled[1]},{scaled[2]})"
    return None


def _array_read(model: SyncedModel, catalog: CatalogColumn) -> ColumnRead:
    """A one-dimensional array of a natively read type becomes a DuckDB list."""
    name, declared, element = catalog.name, catalog.declared, catalog.element
    quoted = quote_identifier(name)
    # ADBC flattens a multi-dimensional array into one list: refuse those values.
    nested = Problem(f"array_ndims({quoted}) > 1", "a multi-dimensional array")
    if catalog.element_typtype == "e":
        column = SourceColumn(name, declared, "VARCHAR[]")
        return ColumnRead(catalog, column, f"{quoted}::text[]", quoted, nested)
    decimal = _decimal_type(catalog.base.removesuffix("[]")) if element == "numeric" else None
    if decimal:
        column = SourceColumn(name, declared, f"{decimal}[]")
        item = "__dks_item"  # a lambda parameter no column is named
        load = f"CAST(list_transform({quoted}, lambda {item}: {_finite(item)}) AS {decimal}[])"
        return ColumnRead(catalog, column, f"{quoted}::text[]", load, nested)
    if element in _NATIVE and element not in _CAN_BE_INFINITE | _AS_TEXT:
        column = SourceColumn(name, declared, f"{_NATIVE[element]}[]")
        return ColumnRead(catalog, column, quoted, quoted, nested)
    raise _unsupported(model, catalog)


def refuse_names_alike(model: SyncedModel, names: list[str]) -> None:
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


def _unsupported(model: SyncedModel, catalog: CatalogColumn) -> ConfigError:
    return ConfigError(
        f"the column's type {catalog.declared} cannot be sent exactly by dbt-kafka-sync",
        model=model.name,
        column=catalog.name,
        hint="cast it in the model to a supported type (text, numeric, timestamptz, json, ...);"
        " the README lists the supported PostgreSQL types",
    )


def pg_literal(text: str) -> str:
    """A PostgreSQL string literal (standard_conforming_strings, on since 9.1)."""
    return "'" + text.replace("'", "''") + "'"
