"""The row hash: what tells a changed row from an unchanged one."""

from __future__ import annotations

from dbt_kafka_sync.sql import quote_identifier

ROW_HASH = "__dks_row_hash"  # internal column names carry a prefix no model should use

# A snapshot row whose hash is PENDING differs from every current row, so the next run
# sends it again (a real hash of 0 has a chance of 2**-64; it would only cause a resend).
PENDING = 0


def row_hash(columns: list[str], types: dict[str, str]) -> str:
    """SQL hashing a row's compared columns, given their DuckDB types.

    DuckDB's hash() does not tell apart some nested values (a NULL list and an empty
    one, a NULL struct and one of NULL fields) and hashes an enum by its position, so
    those columns are hashed through their JSON or text form.
    """
    parts = []
    for column in columns:
        name, kind = quote_identifier(column), types[column].upper()
        if kind.startswith("ENUM"):
            parts.append(f"CAST({name} AS VARCHAR)")
        elif "[" in kind or kind.startswith(("STRUCT", "MAP", "UNION")):
            parts.append(f"CAST(to_json({name}) AS VARCHAR)")
        else:
            parts.append(name)
    return f"hash({', '.join(parts)})"
