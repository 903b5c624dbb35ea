"""Builds each row's message as SQL run inside DuckDB: key, value, topic, partition, headers.

Values of the columns modes are JSON built by DuckDB, so Python only touches finished
payload bytes. DuckDB's own JSON is mostly right; json_value() fixes the types it renders
in ways consumers trip over, at any depth of lists and structs: timestamps without the
ISO 'T', NaN/Infinity (not JSON) and raw blob bytes. A template sync selects the columns
its template reads instead, and templating.py renders them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dbt_kafka_sync.changes.keys import row_key_expression
from dbt_kafka_sync.config.sync import SyncConfig
from dbt_kafka_sync.errors import ConfigError, quote_list
from dbt_kafka_sync.messages import batch
from dbt_kafka_sync.sources.base import EXACT_NUMERIC_MEMBER, is_exact_numeric
from dbt_kafka_sync.sql import events_list, quote_identifier, quote_literal

if TYPE_CHECKING:
    from dbt_kafka_sync.messages.templating import MessageTemplate

_TIMESTAMPS = {"timestamp", "timestamp_s", "timestamp_ms", "timestamp_ns"}
_FLOATS = {"double", "float"}
_NESTED = {"list", "array", "struct", "map"}
# What DuckDB's json_valid accepts but JSON does not: NaN/Infinity as values, trailing
# commas. A string holding such text exactly (e.g. ", NaN}") is rejected too: rare, and
# never silently wrong.
_LAX_JSON = r"[:\[,]\s*-?(NaN|nan|Infinity|inf)\s*[,\]}]|,\s*[\]}]"


@dataclass(frozen=True)
class MessageColumns:
    """SQL expressions producing one message per row of a relation with known columns.

    Attributes:
        key: the message key as text, or NULL.
        value: the message value as JSON text; None when a template renders it.
        row_key: the primary key as text, to name the row in errors.
        row_error: why the row cannot be sent, or NULL.
        topic: the destination topic.
        partition: the partition as an integer, or NULL to let the key (or round-robin)
            decide; values that cannot be cast are NULL.
        headers: header name -> its value as text (NULL: the header is left out).
        template: the template rendering the value, if any.
        template_rows: with a template and a value: SQL true for the rows the template
            renders (the value builds the others); None: it renders every row.
    """

    key: str
    value: str | None
    row_key: str
    row_error: str
    topic: str
    partition: str
    headers: dict[str, str] = field(default_factory=dict)
    template: MessageTemplate | None = None
    template_rows: str | None = None


def json_value(expression: str, column_type: str) -> str:
    """Return an expression giving a value as consumers expect it in JSON."""
    return _json_ready(expression, parse_type(column_type)) or expression


def parse_type(column_type: str) -> Any:
    """Parse a DuckDB type name into a type object (id, children)."""
    import duckdb

    parse = getattr(duckdb, "sqltype", None) or duckdb.type
    return parse(column_type)


def _json_ready(expression: str, kind: Any) -> str | None:
    """The conversion a value needs before DuckDB writes it as JSON; None if it needs none."""
    name = kind.id
    if name == "timestamp with time zone":
        # Instants are sent in UTC with an explicit 'Z', whatever the session's zone.
        return f"replace(CAST(timezone('UTC', {expression}) AS VARCHAR), ' ', 'T') || 'Z'"
    if name in _TIMESTAMPS:
        return f"replace(CAST({expression} AS VARCHAR), ' ', 'T')"
    if name in _FLOATS:
        return f"CASE WHEN isfinite({expression}) THEN {expression} END"
    if name == "blob":
        return f"base64({expression})"
    if name in _NESTED:
        return _nested_json_ready(expression, kind)
    return None


def _nested_json_ready(expression: str, kind: Any) -> str | None:
    children = dict(kind.children)
    if kind.id in ("list", "array"):
        # Lambda parameters get names no column has: a column `x` would shadow `x`.
        item = f"__dks_item{_depth(expression)}"
        inner = _json_ready(item, children["child"])
        return f"list_transform({expression}, lambda {item}: {inner})" if inner else None
    if kind.id == "map":
        entry_name = f"__dks_entry{_depth(expression)}"
        inner = _json_ready(f"struct_extract({entry_name}, 'value')", children["value"])
        if inner is None:
            return None
        entry = f"{{'key': struct_extract({entry_name}, 'key'), 'value': {inner}}}"
        entries = f"map_entries({expression})"
        return f"map_from_entries(list_transform({entries}, lambda {entry_name}: {entry}))"
    fields = {
        name: _json_ready(f"struct_extract({expression}, {quote_literal(name)})", child)
        for name, child in kind.children
    }
    if not any(fields.values()):
        return None
    packed = ", ".join(
        f"{quote_identifier(name)} := "
        f"{converted or f'struct_extract({expression}, {quote_literal(name)})'}"
        for name, converted in fields.items()
    )
    return f"CASE WHEN {expression} IS NULL THEN NULL ELSE struct_pack({packed}) END"


def _depth(expression: str) -> int:
    """A number distinguishing nested lambdas' parameters from their outer ones."""
    return expression.count("__dks_")


def message_columns(
    model: str,
    sync: SyncConfig,
    types: dict[str, str],
    template: MessageTemplate | None = None,
) -> MessageColumns:
    """Build the expressions of a sync's messages.

    Args:
        model: the model's name, for error messages.
        sync: the validated sync config.
        types: column name -> DuckDB type of the relation the messages are built from.
        template: the parsed template of a template sync.

    Raises:
        ConfigError: when the config or the template names a column the model lacks.
    """
    require_columns(model, types, sync.primary_key, "primary_key")
    for option in ("key_column", "topic_column", "partition_column"):
        column = getattr(sync, option)
        if column:
            require_columns(model, types, [column], option)
    require_columns(model, types, list(sync.headers.values()), "headers")
    if template is not None:
        template.check(model, types)
        value, row_error = None, "NULL::VARCHAR"
    else:
        value, row_error = _value_and_error(model, sync, types)
    return MessageColumns(
        key=_text(sync.key_column),
        value=value,
        row_key=row_key_expression(sync.primary_key),
        row_error=row_error,
        topic=quote_literal(sync.topic) if sync.topic else _text(sync.topic_column),
        partition=_partition(sync.partition_column),
        headers={name: _text(column) for name, column in sync.headers.items()},
        template=template,
    )


def _partition(column: str | None) -> str:
    """The partition as a whole number; a value that is not one (3.7, 'x') counts as NULL."""
    if not column:
        return "NULL::BIGINT"
    name = quote_identifier(column)
    whole = f"TRY_CAST({name} AS BIGINT)"
    return f"CASE WHEN TRY_CAST({name} AS DOUBLE) = {whole} THEN {whole} END"


def _text(column: str | None) -> str:
    return f"CAST({quote_identifier(column)} AS VARCHAR)" if column else "NULL::VARCHAR"


def required_columns(
    sync: SyncConfig, types: dict[str, str], template: MessageTemplate | None = None
) -> list[str]:
    """Columns a sync's messages depend on, in the relation's order."""
    wanted = set(sync.primary_key) | set(sync.headers.values())
    wanted |= {c for c in (sync.key_column, sync.topic_column, sync.partition_column) if c}
    if template is not None:
        wanted |= template.row_columns() or set(types)
    elif sync.message is None:
        wanted.update(types)
    elif sync.message.column:
        wanted.add(sync.message.column)
    else:
        wanted.update((sync.message.field_to_column() or {}).values())
    return [column for column in types if column in wanted]


def require_columns(model: str, types: dict[str, str], columns: list[str], option: str) -> None:
    """Fail with a config error naming the columns that the relation lacks."""
    missing = [column for column in columns if column not in types]
    if missing:
        raise ConfigError(
            f"{option} names {quote_list(missing)}, which the model does not have",
            model=model,
            column=missing[0],
            hint=f"the model's columns are {quote_list(list(types))}",
        )


def _value_and_error(model: str, sync: SyncConfig, types: dict[str, str]) -> tuple[str, str]:
    if sync.message is not None and sync.message.column:
        column = sync.message.column
        require_columns(model, types, [column], "message.column")
        name = quote_identifier(column)
        text = f"CAST({name} AS VARCHAR)"
        is_null = quote_literal(f"column {column!r} is NULL")
        not_json = quote_literal(f"column {column!r} is not valid JSON")
        lax = quote_literal(
            f"column {column!r} is not strict JSON (NaN, Infinity or a trailing comma)"
        )
        error = (
            f"CASE WHEN {name} IS NULL THEN {is_null}"
            f" WHEN NOT json_valid({text}) THEN {not_json}"
            f" WHEN regexp_matches({text}, {quote_literal(_LAX_JSON)}) THEN {lax} END"
        )
        return text, error
    mapping = sync.message.field_to_column() if sync.message else None
    if mapping is None:
        mapping = {column: column for column in types}
    require_columns(model, types, list(mapping.values()), "message.columns")
    if any(is_exact_numeric(types[column]) for column in mapping.values()):
        return _concatenated_object(mapping, types), "NULL::VARCHAR"
    pairs = ", ".join(
        f"{quote_literal(name)}, {json_value(quote_identifier(column), types[column])}"
        for name, column in mapping.items()
    )
    return f"CAST(json_object({pairs}) AS VARCHAR)", "NULL::VARCHAR"


def _concatenated_object(mapping: dict[str, str], types: dict[str, str]) -> str:
    """The columns' JSON object written piece by piece, for exact numbers among them.

    json_object() would parse an exact number's text and write it back as a double.
    """
    pieces = []
    for index, (name, column) in enumerate(mapping.items()):
        key = ("," if index else "{") + json.dumps(name, ensure_ascii=False) + ":"
        pieces += [quote_literal(key), f"COALESCE({column_json(column, types[column])}, 'null')"]
    return f"concat({', '.join(pieces)}, '}}')"


def column_json(column: str, column_type: str) -> str:
    """SQL writing one column's value as JSON text (NULL for NULL), as the columns mode does."""
    name = quote_identifier(column)
    if is_exact_numeric(column_type):
        return f"union_extract({name}, {quote_literal(EXACT_NUMERIC_MEMBER)})"
    return f"CAST(to_json({json_value(name, column_type)}) AS VARCHAR)"


def select_messages(
    messages: MessageColumns,
    sync: SyncConfig,
    events: list[str],
    stored_columns: list[str],
    changes: ChangeTable,
) -> str:
    """SQL selecting the messages of a sync's changes, in batch.MESSAGE_COLUMNS order.

    A removed row's message is rebuilt from its last known values: they were valid when
    sent, and a value the snapshot never held is sent as null rather than failing forever.
    """
    removed = f"{changes.event} = 'removed'"
    value = messages.value or "NULL::VARCHAR"
    if sync.on_remove == "tombstone":
        value = f"CASE WHEN {removed} THEN NULL ELSE {value} END"
    parts = [
        f"{changes.seq} AS {batch.SEQ}",
        f"{changes.event} AS {batch.EVENT}",
        f"{messages.key} AS {batch.KEY}",
        f"{value} AS {batch.VALUE}",
        f"{messages.row_key} AS {batch.ROW_KEY}",
        f"CASE WHEN {removed} THEN NULL ELSE {messages.row_error} END AS {batch.ROW_ERROR}",
        f"{messages.topic} AS {batch.TOPIC}",
        f"{messages.partition} AS {batch.PARTITION}",
        *(
            f"{expr} AS {batch.header_column(i)}"
            for i, expr in enumerate(messages.headers.values())
        ),
    ]
    if messages.template is not None:
        read = messages.template.row_columns() or set(stored_columns)
        fields = ", ".join(
            f"{quote_identifier(c)} := {quote_identifier(c)}" for c in stored_columns if c in read
        )
        rows = messages.template_rows
        row, previous = f"struct_pack({fields})", changes.previous
        if rows is not None:  # only the rows the template renders hand it their values
            row = f"CASE WHEN {rows} THEN {row} END"
            previous = previous and f"CASE WHEN {rows} THEN {previous} END"
        parts.append(f"{row} AS {batch.TEMPLATE_ROW}")
        if previous:
            parts.append(f"{previous} AS {batch.TEMPLATE_PREVIOUS}")
    # No ORDER BY: the table is in seq order already (DuckDB keeps insertion order), and
    # sorting would hold every message back until all of them are built.
    return (
        f"SELECT {', '.join(parts)} FROM {changes.table}"
        f" WHERE {changes.event} IN ({events_list(events)})"
    )


@dataclass(frozen=True)
class ChangeTable:
    """Where the diff left a sync's changes, and the names of its own columns."""

    table: str
    seq: str
    event: str
    previous: str | None  # the previous-values column, when the diff added it
