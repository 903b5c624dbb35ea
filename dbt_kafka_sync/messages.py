"""Builds each row's message (key, value, row key, row error) as SQL run inside DuckDB.

Values are JSON built by DuckDB, so Python only ever touches finished payload bytes.
DuckDB's own JSON is mostly right; the expressions below fix the types it renders in
ways consumers trip over: timestamps without the ISO 'T', NaN/Infinity (not JSON) and
raw blob bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

from dbt_kafka_sync.config import SyncConfig
from dbt_kafka_sync.errors import ConfigError, quote_list
from dbt_kafka_sync.sql import quote_identifier, quote_literal

_TIMESTAMP_TYPES = {"TIMESTAMP", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "DATETIME"}
_ZONED_TYPES = {"TIMESTAMP WITH TIME ZONE", "TIMESTAMPTZ"}
_FLOAT_TYPES = {"DOUBLE", "FLOAT", "REAL", "FLOAT4", "FLOAT8"}


@dataclass(frozen=True)
class MessageColumns:
    """SQL expressions producing one message per row of a relation with known columns."""

    key: str
    value: str
    row_key: str
    row_error: str


def json_value(column: str, column_type: str) -> str:
    """Return an expression giving the column's value as consumers expect it in JSON."""
    name = quote_identifier(column)
    kind = column_type.upper()
    if kind in _ZONED_TYPES:
        # Instants are sent in UTC with an explicit 'Z', whatever the session's zone.
        return f"replace(CAST(timezone('UTC', {name}) AS VARCHAR), ' ', 'T') || 'Z'"
    if kind in _TIMESTAMP_TYPES:
        return f"replace(CAST({name} AS VARCHAR), ' ', 'T')"
    if kind in _FLOAT_TYPES:
        return f"CASE WHEN isfinite({name}) THEN {name} END"  # NaN and Infinity are not JSON
    if kind == "BLOB":
        return f"base64({name})"
    return name


def message_columns(model: str, sync: SyncConfig, types: dict[str, str]) -> MessageColumns:
    """Build the key, value, row key and row error expressions of a sync.

    Args:
        model: the model's name, for error messages.
        sync: the validated sync config.
        types: column name -> DuckDB type of the relation the messages are built from.

    Raises:
        ConfigError: when the config names a column the model does not have.

    """
    require_columns(model, types, sync.primary_key, "primary_key")
    value, row_error = _value_and_error(model, sync, types)
    key = "NULL::VARCHAR"
    if sync.key_column:
        require_columns(model, types, [sync.key_column], "key_column")
        key = f"CAST({quote_identifier(sync.key_column)} AS VARCHAR)"
    return MessageColumns(
        key=key, value=value, row_key=row_key_expression(sync.primary_key), row_error=row_error
    )


def row_key_expression(primary_key: list[str]) -> str:
    """Return the primary key as text: the value itself, or a JSON array for a composite key."""
    if len(primary_key) == 1:
        return f"CAST({quote_identifier(primary_key[0])} AS VARCHAR)"
    parts = ", ".join(f"CAST({quote_identifier(c)} AS VARCHAR)" for c in primary_key)
    return f"CAST(to_json([{parts}]) AS VARCHAR)"


def required_columns(sync: SyncConfig, types: dict[str, str]) -> list[str]:
    """Columns a sync's messages depend on, in the relation's order."""
    wanted = set(sync.primary_key)
    if sync.key_column:
        wanted.add(sync.key_column)
    mapping = sync.message.field_to_column() if sync.message else None
    if sync.message is None:
        wanted.update(types)
    elif mapping is not None:
        wanted.update(mapping.values())
    elif sync.message.column:
        wanted.add(sync.message.column)
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
        error = (
            f"CASE WHEN {name} IS NULL THEN {is_null}"
            f" WHEN NOT json_valid({text}) THEN {not_json} END"
        )
        return text, error
    mapping = sync.message.field_to_column() if sync.message else None
    if mapping is None:
        mapping = {column: column for column in types}
    require_columns(model, types, list(mapping.values()), "message.columns")
    pairs = ", ".join(
        f"{quote_literal(field)}, {json_value(column, types[column])}"
        for field, column in mapping.items()
    )
    return f"CAST(json_object({pairs}) AS VARCHAR)", "NULL::VARCHAR"
