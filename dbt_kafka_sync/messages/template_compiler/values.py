"""Template values as typed SQL expressions, and the text Liquid writes for each type.

A value knows the Python type Liquid would see for it (from the column's DuckDB type),
because the text Liquid writes, and what its filters and comparisons do, depend on that
type: `True` prints as 'true' but a string filter sees 'True'. SQL NULL is Liquid's nil.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from dbt_kafka_sync.messages.columns import json_value, parse_type
from dbt_kafka_sync.messages.templating import JsonText
from dbt_kafka_sync.sources.base import EXACT_NUMERIC_MEMBER, is_exact_numeric
from dbt_kafka_sync.sql import quote_identifier, quote_literal

# Kinds: the Python type a template sees.
STR, INT, DECIMAL, BOOL, FLOAT = "str", "int", "Decimal", "bool", "float"
DATE, TIMESTAMP, TIMESTAMPTZ = "date", "datetime", "datetime with a time zone"
LIST, JSON, NIL, OTHER = "list", "JSON text", "nil", "other"
EMPTY, BLANK = "empty", "blank"  # the `empty` and `blank` keywords of comparisons
UNKNOWN = object()  # a probe's answer when the value depends on the row

_INTEGERS = {"tinyint", "smallint", "integer", "bigint"}
_INTEGERS |= {"utinyint", "usmallint", "uinteger", "ubigint"}
# (Not FLOAT: Python sees the float32 widened, 0.10000000149011612 where DuckDB writes 0.1.)
_KINDS = {"varchar": STR, "boolean": BOOL, "decimal": DECIMAL, "double": FLOAT}
_KINDS |= {"hugeint": DECIMAL}  # Arrow hands it to Python as a Decimal (decimal128(38, 0))
_KINDS |= {"date": DATE, "timestamp": TIMESTAMP, "timestamp_s": TIMESTAMP}
_KINDS |= {"timestamp_ms": TIMESTAMP, "timestamp with time zone": TIMESTAMPTZ}
# Types whose `json` the columns mode writes as the json filter does (checked by the tests).
# (Not DOUBLE: Python writes 1e+20 where DuckDB writes 100000000000000000000.0.)
_COLUMN_JSON = {"boolean", "decimal", "varchar", "uuid", "date", "timestamp"}
_COLUMN_JSON |= {"timestamp_s", "timestamp_ms", "timestamp with time zone", "hugeint"}
_COLUMN_JSON |= _INTEGERS
_JSON_ESCAPES = {"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


@functools.cache
def spaces() -> str:
    """Every character Python's str.isspace() accepts: what strip() removes, blank means.

    Found once, by the first template that needs it: scanning every code point takes
    a tenth of a second, which a run without templates need not pay at start-up.
    """
    return "".join(chr(code) for code in range(0x110000) if chr(code).isspace())


def space_class() -> str:
    """A regular expression class of those characters."""
    return "[" + "".join(f"\\x{{{ord(c):x}}}" for c in spaces()) + "]"


class Refused(Exception):
    """A construct DuckDB cannot reproduce exactly: Liquid renders the template."""


@dataclass(frozen=True)
class Value:
    """A template value: SQL giving it per row, and the Python type Liquid sees.

    Attributes:
        sql: the expression (NULL for nil).
        kind: the Python type (see the kinds above).
        label: how the template names it, for reasons ("row.score").
        item: the kind of a list's items.
        column_type: the DuckDB type of a value read straight from a column.
        constant: True when `python` holds the value itself, the same for every row.
        python: the constant's Python value.
        probe: the value at a turn of the enclosing loops, for `forloop` values.
        never_nil: the value is never nil (a count, a sum): its text is never empty.
        alike_from: for `forloop.index` and the like, the value from which every turn of
            a loop longer than the probed ones is like a probed turn (2 for `index`: a
            probed loop of 3 items has a first turn, and turns at 2 and 3 like all others).
    """

    sql: str
    kind: str
    label: str
    item: str | None = None
    column_type: str | None = None
    constant: bool = False
    python: Any = None
    probe: Callable[[dict[int, tuple[int, int]]], Any] | None = None
    never_nil: bool = False
    alike_from: int | None = None

    def at(self, loops: dict[int, tuple[int, int]]) -> Any:
        """The value when loops (depth -> (index0, length)) are at a given turn, or UNKNOWN.

        Only constants and `forloop` values are known without a row: enough to check
        that `{% unless forloop.last %},{% endunless %}` writes JSON.
        """
        if self.constant:
            return self.python
        return self.probe(loops) if self.probe is not None else UNKNOWN

    def describe(self) -> str:
        """`row.score` on a DOUBLE column, for refusals."""
        if self.column_type:
            return f"`{self.label}` on {_a(self.column_type.upper())} column"
        return f"`{self.label}` ({_a(self.kind)})"


def column_value(sql: str, column_type: str, label: str) -> Value:
    """A row's column (or a list's item) of a DuckDB type."""
    if is_exact_numeric(column_type):
        return Value(sql, OTHER, label, column_type=column_type)
    kind = parse_type(column_type)
    name = kind.id
    if name in ("list", "array") and column_type.upper() != "JSON":
        child = dict(kind.children)["child"]
        item = _kind_of(child.id, str(child))
        return Value(sql, LIST, label, item=item, column_type=column_type)
    return Value(sql, _kind_of(name, column_type), label, column_type=column_type)


def _kind_of(type_id: str, column_type: str) -> str:
    if column_type.upper() == "JSON":
        return OTHER  # VARCHAR to DuckDB, but not a plain string to the json filter
    if _fraction_only_decimal(column_type):
        return OTHER  # DuckDB's text for 0.5 as DECIMAL(1,1) is '.5': not Python's, not JSON
    if type_id in _INTEGERS:
        return INT
    return _KINDS.get(type_id, OTHER)


def constant(python: Any, label: str) -> Value:
    """A value known before any row is read: a literal, `model`, `run.id`..."""
    if python is None:
        return Value("NULL", NIL, label, constant=True)
    if isinstance(python, JsonText):
        return Value(quote_literal(python), JSON, label, constant=True, python=python)
    if isinstance(python, bool):
        return Value("true" if python else "false", BOOL, label, constant=True, python=python)
    if isinstance(python, int) and abs(python) < 2**126:  # beyond: no HUGEINT holds it
        return Value(f"{python}::HUGEINT", INT, label, constant=True, python=python)
    if isinstance(python, str):
        return Value(quote_literal(python), STR, label, constant=True, python=python)
    if isinstance(python, Decimal):
        return Value(f"'{python}'::DECIMAL", DECIMAL, label, constant=True, python=python)
    if isinstance(python, float):
        return Value(repr(python), FLOAT, label, constant=True, python=python)
    return Value("NULL", OTHER, label, constant=True, python=python)


def text_sql(value: Value) -> str:
    """SQL of the text `{{ value }}` writes before escaping (never NULL)."""
    if value.kind == BOOL:
        return _bool_text(value.sql, "true", "false", "")
    if value.kind in (STR, INT, DECIMAL, DATE):
        # A Decimal is written with format 'f': every digit and the scale, as DuckDB does.
        return _text_or(value.sql, "")
    if value.kind in (TIMESTAMP, TIMESTAMPTZ) and value.column_type:
        return f"COALESCE(CAST({json_value(value.sql, value.column_type)} AS VARCHAR), '')"
    if value.kind == NIL:
        return "''"
    if value.kind == LIST and value.item == STR:
        # A list is written as its items' text run together, nil items as 'None'.
        return f"COALESCE(array_to_string(list_transform({value.sql}, {_none_text}), ''), '')"
    if value.kind == FLOAT:
        return _text_or(value.sql, "")  # see float_differs
    raise Refused(f"writing {value.describe()} as text")


def float_differs(value: Value, as_json: bool) -> str:
    """SQL true where DuckDB's text for a double may differ from Python's repr().

    Both write the shortest digits that read back the same number, in plain notation
    from 1e-4 to 1e16; outside it Python writes 1e+16 where DuckDB writes
    10000000000000000.0. NaN and infinity are null in JSON, but bare text differs.
    """
    sql = value.sql
    plain = f"{sql} IS NULL OR {sql} = 0 OR (abs({sql}) >= 1e-4 AND abs({sql}) < 1e16)"
    return f"NOT ({plain}{f' OR NOT isfinite({sql})' if as_json else ''})"


_none_text = "lambda __dks_text: COALESCE(__dks_text, 'None')"


def filter_text_sql(value: Value, name: str) -> str:
    """SQL of the text a string filter sees: str(value), '' for nil (never NULL)."""
    if value.kind == BOOL:
        return _bool_text(value.sql, "True", "False", "")
    if value.kind in (STR, INT, DATE):
        return _text_or(value.sql, "")
    if value.kind == NIL:
        return "''"
    raise Refused(f"`{value.label} | {name}` on {_a(_type_name(value))}")


def _text_or(sql: str, nil: str) -> str:
    """A value's text; `nil` for nil."""
    return f"COALESCE(CAST({sql} AS VARCHAR), {quote_literal(nil)})"


def _bool_text(sql: str, true: str, false: str, nil: str) -> str:
    words = (quote_literal(word) for word in (true, false, nil))
    return "CASE WHEN {0} THEN {1} WHEN NOT {0} THEN {2} ELSE {3} END".format(sql, *words)


def _a(noun: str) -> str:
    return f"{'an' if noun[:1] in 'AEIOUaeiou' else 'a'} {noun}"


def _type_name(value: Value) -> str:
    return f"{value.column_type.upper()} column" if value.column_type else f"{value.kind} value"


def escaped_sql(text: str) -> str:
    """SQL escaping text for inside a JSON string, as json.dumps(ensure_ascii=False) does."""
    chain = f"replace(replace({text}, '\\', '\\\\'), '\"', '\\\"')"
    for code in range(0x20):
        escape = _JSON_ESCAPES.get(chr(code), f"\\u{code:04x}")
        chain = f"replace({chain}, chr({code}), {quote_literal(escape)})"
    # DuckDB's to_json escapes as json.dumps does, but for the hex case of \u001b and
    # a few like it: where its text holds no \u00 at all, it is json.dumps's (and faster
    # than any test for the characters to escape); elsewhere the replacements decide.
    as_json = f"CAST(to_json({text}) AS VARCHAR)"
    return f"CASE WHEN contains({as_json}, '\\u00') THEN {chain} ELSE {as_json}[2:-2] END"


def json_sql(value: Value) -> str:
    """SQL of the `json` filter's text for a value (never NULL)."""
    if value.kind in (STR, JSON):
        # Escaped as json.dumps does (DuckDB's to_json writes \u001B for \u001b). JSON
        # text is a string to the filter: `| json | json` quotes it.
        return f"COALESCE('\"' || {escaped_sql(value.sql)} || '\"', 'null')"
    if value.column_type and is_exact_numeric(value.column_type):
        return (
            f"COALESCE(union_extract({value.sql}, {quote_literal(EXACT_NUMERIC_MEMBER)}), 'null')"
        )
    if value.column_type and _column_json_type(value.column_type) and value.kind != LIST:
        if value.kind == DECIMAL:
            return _text_or(value.sql, "null")  # every digit and the scale, as the filter does
        as_json = f"CAST(to_json({json_value(value.sql, value.column_type)}) AS VARCHAR)"
        return f"COALESCE({as_json}, 'null')"
    if value.kind in (INT, DECIMAL):
        return _text_or(value.sql, "null")
    if value.kind == BOOL:
        return _bool_text(value.sql, "true", "false", "null")
    if value.kind == NIL:
        return "'null'"
    if value.kind == FLOAT:
        return f"CASE WHEN isfinite({value.sql}) THEN CAST({value.sql} AS VARCHAR) ELSE 'null' END"
    if value.kind == LIST and value.item in (STR, INT, BOOL):
        item = replace(value, sql="__dks_json", kind=value.item, column_type=None)
        items = f"list_transform({value.sql}, lambda __dks_json: {json_sql(item)})"
        return f"COALESCE('[' || array_to_string({items}, ',') || ']', 'null')"
    raise Refused(f"`{value.label} | json` on {_a(_type_name(value))}")


def _column_json_type(column_type: str) -> bool:
    if column_type.upper() == "JSON" or _fraction_only_decimal(column_type):
        return False
    return parse_type(column_type).id in _COLUMN_JSON


def _fraction_only_decimal(column_type: str) -> bool:
    """A DECIMAL(p, p): every digit after the point."""
    kind = parse_type(column_type)
    if kind.id != "decimal":
        return False
    sizes = dict(kind.children)
    return bool(sizes["precision"] == sizes["scale"])


def row_column(name: str, column_type: str, label: str) -> Value:
    """`row.name`: the changes table's column."""
    return column_value(quote_identifier(name), column_type, label)
