"""Primary keys: as text for messages and errors, and the checks that they are unique and set."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dbt_kafka_sync.errors import SyncError
from dbt_kafka_sync.sql import quote_identifier

if TYPE_CHECKING:
    import duckdb

    from dbt_kafka_sync.changes.input import DiffInput

MAX_REPORTED_KEYS = 10


def row_key_expression(primary_key: list[str]) -> str:
    """Return the primary key as text: the value itself, or a JSON array for a composite key."""
    if len(primary_key) == 1:
        return f"CAST({quote_identifier(primary_key[0])} AS VARCHAR)"
    parts = ", ".join(f"CAST({quote_identifier(c)} AS VARCHAR)" for c in primary_key)
    return f"CAST(to_json([{parts}]) AS VARCHAR)"


def check_duplicate_keys(
    connection: duckdb.DuckDBPyConnection, model: str, diff: DiffInput
) -> None:
    """Fail the sync before publishing when the primary key is not unique.

    Raises:
        SyncError: naming up to ten duplicate keys and how often each occurs.
    """
    keys = ", ".join(quote_identifier(c) for c in diff.primary_key)
    duplicates = connection.execute(
        f"SELECT {row_key_expression(diff.primary_key)}, count(*) AS n FROM {diff.relation}"
        f" WHERE {diff.key_not_null()} GROUP BY {keys} HAVING count(*) > 1"
        f" ORDER BY n DESC, 1 LIMIT {MAX_REPORTED_KEYS + 1}"
    ).fetchall()
    if not duplicates:
        return
    shown = ", ".join(f"{key} ({count} rows)" for key, count in duplicates[:MAX_REPORTED_KEYS])
    more = " and more" if len(duplicates) > MAX_REPORTED_KEYS else ""
    raise SyncError(
        f"primary key {', '.join(diff.primary_key)} is not unique: {shown}{more};"
        " nothing was published for this model and its state is unchanged",
        model=model,
        column=", ".join(diff.primary_key),
        hint="fix the model so each key appears once, or choose another primary_key",
    )


def null_key_rows(connection: duckdb.DuckDBPyConnection, diff: DiffInput) -> tuple[int, list[str]]:
    """Count rows whose primary key has a NULL, with a few of them as JSON examples."""
    condition = " OR ".join(f"{quote_identifier(c)} IS NULL" for c in diff.primary_key)
    [(count,)] = connection.execute(
        f"SELECT count(*) FROM {diff.relation} WHERE {condition}"
    ).fetchall()
    if not count:
        return 0, []
    examples = connection.execute(
        f"SELECT left(CAST(to_json(t) AS VARCHAR), 200) FROM {diff.relation} t"
        f" WHERE {condition} LIMIT 3"
    ).fetchall()
    return int(count), [str(row[0]) for row in examples]
