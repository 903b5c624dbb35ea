"""Simple message templates built by DuckDB instead of Liquid, as fast as the columns mode.

Most templates are a JSON skeleton with `{{ row.x | json }}` in its value positions.
Such a template gives the same document whether Liquid renders it row by row in Python or
DuckDB concatenates its text with each column's JSON, and DuckDB does it many times
faster. Anything else (tags, other filters or variables, text that puts a value inside a
string, text that is not strict JSON) stays with Liquid, as do columns whose JSON the two
would write differently (JSON, nested values, TIME, FLOAT, nanosecond timestamps,
decimals without an integer digit...).

One difference remains, in DuckDB's favour: a date or timestamp Python cannot hold
('infinity', BC dates, years after 9999) is written as DuckDB's text for it, as the
columns mode does, where Liquid fails the row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dbt_kafka_sync.messages.columns import column_json, parse_type
from dbt_kafka_sync.messages.templating import load_strict_json
from dbt_kafka_sync.sources.base import is_exact_numeric
from dbt_kafka_sync.sql import quote_identifier, quote_literal

if TYPE_CHECKING:
    from dbt_kafka_sync.messages.templating import MessageTemplate

# DuckDB type ids whose JSON text is, byte for byte, the `json` filter's for every value.
SQL_JSON_TYPES = {
    "boolean", "tinyint", "smallint", "integer", "bigint", "hugeint",
    "utinyint", "usmallint", "uinteger", "ubigint", "double", "decimal", "varchar",
    "uuid", "date", "timestamp", "timestamp_s", "timestamp_ms", "timestamp with time zone",
}  # fmt: skip
# Control characters DuckDB escapes with upper-case hex digits (\u001F), Python with
# lower-case ones (\u001f).
UPPER_HEX_ESCAPES = [f"\\u{code:04X}" for code in (0x0B, 0x0E, 0x0F, *range(0x1A, 0x20))]
ESCAPED_BACKSLASH = "\\\\"
# SQL of what stands for an escaped backslash while the escapes are lower-cased: JSON text
# never holds a raw control character.
BACKSLASH_STAND_IN = "chr(1)"
# What a value position must accept: a JSON null, and a value that would end a string.
PROBES = ("null", '{"probe": ["\\"", 1]}')

Part = tuple[str, str]  # ("text", literal text) or ("column", column name)


def template_sql(template: MessageTemplate, types: dict[str, str]) -> str | None:
    """SQL building the template's output for a row, or None when Liquid must render it."""
    parts = _skeleton(template.template.nodes)
    if parts is None or not _values_in_value_positions(parts):
        return None
    columns = [name for kind, name in parts if kind == "column"]
    if not all(_sql_json_type(types[column]) for column in columns):
        return None
    pieces = [
        quote_literal(text) if kind == "text" else _column_json(text, types[text])
        for kind, text in parts
    ]
    return f"concat({', '.join(pieces)})"


def _skeleton(nodes: list[Any]) -> list[Part] | None:
    """The template as text and `row.x | json` outputs; None if it holds anything else."""
    from liquid.builtin.content import ContentNode
    from liquid.builtin.expressions.path import Path
    from liquid.builtin.output import OutputNode

    parts: list[Part] = []
    for node in nodes:
        if isinstance(node, ContentNode):
            parts.append(("text", node.text))
            continue
        expression = getattr(node, "expression", None)
        left = getattr(expression, "left", None)
        filters = getattr(expression, "filters", None) or []
        segments = left.path if isinstance(left, Path) else []
        if (
            not isinstance(node, OutputNode)
            or len(segments) != 2
            or segments[0] != "row"
            or not isinstance(segments[1], str)
            or [(f.name, f.args) for f in filters] != [("json", [])]
        ):
            return None
        parts.append(("column", segments[1]))
    return parts


def _sql_json_type(column_type: str) -> bool:
    # A JSON column is VARCHAR to DuckDB, but to_json() would embed it where the json
    # filter writes it as a string. An exact number's text is what the filter writes for
    # its Decimal.
    if is_exact_numeric(column_type):
        return True
    kind = parse_type(column_type)
    if kind.id == "decimal":
        # DECIMAL(3,3) as text is '.5', which is not JSON; the filter writes 0.500.
        sizes = dict(kind.children)
        return bool(sizes["scale"] < sizes["precision"])
    return column_type.upper() != "JSON" and kind.id in SQL_JSON_TYPES


def _values_in_value_positions(parts: list[Part]) -> bool:
    """True when the text is strict JSON with any JSON value in place of each output."""
    for probe in PROBES:
        document = "".join(text if kind == "text" else probe for kind, text in parts)
        try:
            load_strict_json(document)
        except ValueError:
            return False
    return True


def _column_json(column: str, column_type: str) -> str:
    kind = parse_type(column_type).id
    name = quote_identifier(column)
    if kind == "decimal":
        # Every digit and the scale, as the json filter writes a Decimal.
        text = f"CAST({name} AS VARCHAR)"
    elif kind == "double":
        # A double's text is Python's repr (1e+16, 1e-05); to_json's is not (1e16,
        # 0.00001). NaN and infinities are null, as the filter writes them.
        text = f"CASE WHEN isfinite({name}) THEN CAST({name} AS VARCHAR) END"
    else:
        text = column_json(column, column_type)
    if kind == "varchar":
        text = _lower_case_escapes(text)
    return f"COALESCE({text}, 'null')"


def _lower_case_escapes(json_text: str) -> str:
    """A JSON string with Python's lower-case hex digits in the escapes of control characters."""
    backslash = quote_literal(ESCAPED_BACKSLASH)
    text = f"replace({json_text}, {backslash}, {BACKSLASH_STAND_IN})"
    for escape in UPPER_HEX_ESCAPES:
        text = f"replace({text}, {quote_literal(escape)}, {quote_literal(escape.lower())})"
    return f"replace({text}, {BACKSLASH_STAND_IN}, {backslash})"
