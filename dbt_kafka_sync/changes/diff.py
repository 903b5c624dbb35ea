"""Change detection inside DuckDB: current rows against the snapshot, by primary key and hash.

The diff runs in two steps so that the join over every row carries only keys and
hashes; the full columns are fetched afterwards for the few rows that changed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dbt_kafka_sync.changes.hashing import ROW_HASH
from dbt_kafka_sync.changes.input import SEQ_COLUMN, ChangeCounts, DiffInput
from dbt_kafka_sync.changes.keys import check_duplicate_keys
from dbt_kafka_sync.sql import quote_identifier

if TYPE_CHECKING:
    import duckdb

EVENT = "__dks_event"
PREVIOUS = "__dks_previous"
# The changes of the sync being processed: a table of the session's in-memory database, not a
# TEMP one, so that a cursor of the session (a commit staged while messages are sent) reads it.
CHANGES = "dks_changes"
MATCHED = "__dks_matched"  # in the changed keys: the key is in both the model and the snapshot


def keys_may_repeat(
    connection: duckdb.DuckDBPyConnection, diff: DiffInput, snapshot: str | None
) -> bool:
    """After compute_changes: tell cheaply whether the model's primary key may repeat.

    Snapshot keys are unique (a model with repeated keys is never committed). With unique
    model keys, each model row matches one snapshot row or is added, so the model has
    `snapshot - removed + added` rows. A repeated key that matches the snapshot breaks
    that count; one that does not shows as the same key added twice. False means the
    keys are unique; True calls for check_duplicate_keys.
    """
    keys = ", ".join(quote_identifier(c) for c in diff.primary_key)
    [(model_rows,)] = connection.execute(
        f"SELECT count(*) FROM {diff.relation} WHERE {diff.key_not_null()}"
    ).fetchall()
    snapshot_rows = 0
    if snapshot is not None:
        [(snapshot_rows,)] = connection.execute(f"SELECT count(*) FROM {snapshot}").fetchall()
    [(added, removed, repeated)] = connection.execute(
        f"""
        SELECT count(*) FILTER (WHERE {EVENT} = 'added' AND NOT {MATCHED}),
               count(*) FILTER (WHERE {EVENT} = 'removed'),
               (SELECT count(*) FROM (SELECT {keys} FROM dks_changed_keys
                                      GROUP BY ALL HAVING count(*) > 1))
        FROM dks_changed_keys
        """
    ).fetchall()
    return bool(repeated) or model_rows != snapshot_rows - removed + added


def compute_changes(
    connection: duckdb.DuckDBPyConnection,
    diff: DiffInput,
    snapshot: str | None,
    resend_all: bool,
    with_previous: bool = False,
    *,
    model: str,
) -> ChangeCounts:
    """Fill the temp table of changes; return how many of each kind there are.

    Args:
        connection: the run's DuckDB connection.
        diff: the model's rows and columns.
        snapshot: SQL of the snapshot's rows (see snapshot.snapshot_view), or None when
            there is none yet.
        resend_all: also send the current rows that did not change, as `added`
            (for --full-refresh; rows that did change keep their real event).
        with_previous: add the column PREVIOUS, a struct of a changed row's values in
            the snapshot (for templates that read `previous`).
        model: the model's name, for errors.

    Raises:
        SyncError: when the primary key is not unique, before the changes are fetched
            (repeated keys would multiply the rows fetched).
    """
    snapshot_rows = snapshot or _empty_snapshot(diff)
    _find_changed_keys(connection, diff, snapshot_rows, resend_all)
    if keys_may_repeat(connection, diff, snapshot):
        check_duplicate_keys(connection, model, diff)
    _fetch_changes(connection, diff, snapshot_rows, with_previous)
    counts = dict(
        connection.execute(f"SELECT {EVENT}, count(*) FROM {CHANGES} GROUP BY 1").fetchall()
    )
    return ChangeCounts(
        added=counts.get("added", 0),
        changed=counts.get("changed", 0),
        removed=counts.get("removed", 0),
    )


def _find_changed_keys(
    connection: duckdb.DuckDBPyConnection, diff: DiffInput, snapshot_rows: str, resend_all: bool
) -> None:
    """The join over every row: keys and hashes only, into dks_changed_keys."""
    keys = ", ".join(quote_identifier(c) for c in diff.primary_key)
    connection.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE dks_changed_keys AS
        SELECT {_coalesced_keys(diff)},
               CASE WHEN s.{ROW_HASH} IS NULL THEN 'added'
                    WHEN c.{ROW_HASH} IS NULL THEN 'removed'
                    WHEN c.{ROW_HASH} <> s.{ROW_HASH} THEN 'changed'
                    ELSE 'added' END AS {EVENT},
               c.{ROW_HASH}, s.{ROW_HASH} IS NOT NULL AS {MATCHED}
        FROM (SELECT {keys}, {diff.row_hash()} AS {ROW_HASH} FROM {diff.relation}
              WHERE {diff.key_not_null()}) c
        FULL OUTER JOIN (SELECT {keys}, {ROW_HASH} FROM {snapshot_rows}) s
          ON {diff.key_join("c", "s")}
        WHERE {"TRUE" if resend_all else "FALSE"}
           OR c.{ROW_HASH} IS DISTINCT FROM s.{ROW_HASH}
        """
    )


def _fetch_changes(
    connection: duckdb.DuckDBPyConnection, diff: DiffInput, snapshot_rows: str, with_previous: bool
) -> None:
    """The changed rows with the columns messages need, into CHANGES."""
    columns = ", ".join(f"r.{quote_identifier(c)}" for c in diff.columns)
    previous, previous_join = "", ""
    if with_previous:
        fields = ", ".join(
            f"{quote_identifier(c)} := p.{quote_identifier(c)}" for c in diff.columns
        )
        previous = f", CASE WHEN k.{EVENT} = 'changed' THEN struct_pack({fields}) END AS {PREVIOUS}"
        previous_join = f"LEFT JOIN {snapshot_rows} p ON {diff.key_join('k', 'p')}"
    numbered = f"row_number() OVER () AS {SEQ_COLUMN}, " if diff.seq == SEQ_COLUMN else ""
    connection.execute(
        f"""
        CREATE OR REPLACE TABLE {CHANGES} AS
        SELECT {numbered}* FROM (
            SELECT k.{EVENT}, {columns}, k.{ROW_HASH}{previous}
            FROM dks_changed_keys k JOIN {diff.relation} r ON {diff.key_join("k", "r")}
            {previous_join}
            WHERE k.{EVENT} <> 'removed'
            UNION ALL BY NAME
            SELECT k.{EVENT}, {columns}, NULL::UBIGINT AS {ROW_HASH}
            FROM dks_changed_keys k JOIN {snapshot_rows} r ON {diff.key_join("k", "r")}
            WHERE k.{EVENT} = 'removed'
        )
        """
    )


def _coalesced_keys(diff: DiffInput) -> str:
    # A key is on one side or both: take it from whichever side has it.
    return ", ".join(
        f"COALESCE(c.{name}, s.{name}) AS {name}"
        for name in (quote_identifier(c) for c in diff.primary_key)
    )


def _empty_snapshot(diff: DiffInput) -> str:
    columns = ", ".join(f"NULL::{diff.columns[c]} AS {quote_identifier(c)}" for c in diff.columns)
    return f"(SELECT {columns}, NULL::UBIGINT AS {ROW_HASH} WHERE FALSE)"
