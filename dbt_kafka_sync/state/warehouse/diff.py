"""The diff inside the warehouse, and the commit of its delivered changes.

The join over every row carries keys and hashes only (into a work table of changed
keys); the changed rows with their columns (a second work table, numbered) are the
only rows that leave the warehouse. After delivery, the failed numbers go up in bulk and
one transaction advances the snapshot from the work table. Work tables are temporary
tables of the warehouse session: a killed run's die with its session.

Every statement here runs on DuckDB and PostgreSQL alike; the row hash, a value's text
and temp table names come from the Warehouse.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dbt_kafka_sync.changes.diff import CHANGES, EVENT, PREVIOUS
from dbt_kafka_sync.changes.hashing import PENDING, ROW_HASH
from dbt_kafka_sync.changes.input import SEQ_COLUMN, ChangeCounts, DiffInput
from dbt_kafka_sync.changes.keys import MAX_REPORTED_KEYS
from dbt_kafka_sync.errors import StateError, SyncError
from dbt_kafka_sync.sql import arrow_batches, quote_identifier
from dbt_kafka_sync.state.snapshot import check_same_key, unconverted_note
from dbt_kafka_sync.state.store import SyncRecord, snapshot_name
from dbt_kafka_sync.state.tables import Bookkeeping

if TYPE_CHECKING:
    import duckdb

    from dbt_kafka_sync.sources.base import SourceColumn, Warehouse
    from dbt_kafka_sync.state.base import ChangeRequest

# Temp tables of the warehouse session, and of the run's session.
KEYS = "dks_wh_keys"  # changed keys with their event
WORK = "dks_wh_work"  # the changed rows, numbered by SEQ_COLUMN
FAILED = "dks_wh_failed"  # numbers of the changes whose message failed
PENDING_KEYS = "dks_wh_pending"  # keys another store had not published (copying a state)
FETCHED = "dks_wh_fetched"  # (session) the work table's rows
FETCHED_PREVIOUS = "dks_wh_previous"  # (session) snapshot values of changed rows
MATCHED = "__dks_matched"
NULL_MARKER = "~"  # a NULL's text in the row hash: no length-prefixed text starts with it


@dataclass(frozen=True)
class WarehouseSnapshot:
    """The stored snapshot as this run's diff sees it, and whether the commit must rewrite it.

    Attributes:
        sql: a subquery with the diff's columns and the row hash, over the stored table.
        rewrite: the stored table differs from that view (columns, types or hashes).
        notes: what the difference means for this run, for the log.
    """

    sql: str
    rewrite: bool
    notes: list[str]


def row_hash(warehouse: Warehouse, columns: list[SourceColumn], alias: str) -> str:
    """SQL: the row hash of `alias` over these columns.

    The canonical text is each value's text prefixed by its length and a colon, or the
    NULL marker: no two different rows give the same text.
    """
    parts = []
    for column in columns:
        text = warehouse.text(column, alias)
        parts.append(f"COALESCE(CAST(length({text}) AS VARCHAR) || ':' || {text}, '{NULL_MARKER}')")
    return warehouse.hash_of_text(" || ".join(parts))


def snapshot_view(
    warehouse: Warehouse,
    request: ChangeRequest,
    record: SyncRecord,
    table: str,
) -> WarehouseSnapshot:
    """Present the stored snapshot as the current config and model columns expect it.

    Columns the snapshot did not keep yet read as NULL. A kept column whose type changed
    (in the session, or in the warehouse: varchar(10) to text) is converted where its value
    converts, and a note says how many stored values do not (they read as NULL); the commit
    rewrites the table with the model's types. Stored hashes are reused when they cover
    the same columns the same way; computed anew from the stored values when only the
    compared columns changed; PENDING (every row sent once, as changed) when a compared
    column is new or retyped, or the hash changed.
    """
    diff = request.diff
    check_same_key(request.model.name, diff, record)
    by_name = {column.name: column for column in request.read}
    stored = warehouse.column_types(table)
    same = [
        c
        for c in diff.columns
        if record.columns.get(c) == diff.columns[c] and stored.get(c) == by_name[c].warehouse_type
    ]
    unknown = [c for c in diff.compare_columns if c not in same]
    converted = {
        c: warehouse.convert(f"s.{quote_identifier(c)}", by_name[c])
        for c in diff.columns
        if c in stored and c not in same
    }
    notes = unconverted_notes(warehouse, request, table, stored, converted)
    if record.hash_version != warehouse.hash_version:
        hash_sql = f"CAST({PENDING} AS {warehouse.hash_type})"
        notes.append(
            f"the row hash changed ({record.hash_version} -> {warehouse.hash_version}):"
            " every row is published as changed once"
        )
    elif unknown:
        hash_sql = f"CAST({PENDING} AS {warehouse.hash_type})"
        notes.append(
            f"compared column(s) {', '.join(unknown)} are new or changed type since the last"
            " run: every row is published as changed once"
        )
    elif record.compare_columns != diff.compare_columns:
        fresh = row_hash(warehouse, [by_name[c] for c in diff.compare_columns], "s")
        hash_sql = f"CASE WHEN s.{ROW_HASH} = {PENDING} THEN s.{ROW_HASH} ELSE {fresh} END"
    else:
        hash_sql = f"s.{ROW_HASH}"
    columns = [
        f"s.{quote_identifier(c)}"
        if c in same
        else f"{converted.get(c, f'CAST(NULL AS {by_name[c].warehouse_type})')}"
        f" AS {quote_identifier(c)}"
        for c in diff.columns
    ]
    return WarehouseSnapshot(
        sql=f"(SELECT {', '.join(columns)}, {hash_sql} AS {ROW_HASH} FROM {table} s)",
        rewrite=hash_sql != f"s.{ROW_HASH}" or record.columns != diff.columns,
        notes=notes,
    )


def unconverted_notes(
    warehouse: Warehouse,
    request: ChangeRequest,
    table: str,
    stored: dict[str, str],
    converted: dict[str, str],
) -> list[str]:
    """Per converted column: how many stored values do not convert, with an example key.

    `stored` holds the stored table's column types; `converted`, column -> its conversion.
    """
    by_name = {column.name: column for column in request.read}
    key = request.diff.primary_key
    texts = ", ".join(f"{warehouse.text(by_name[c], 's')} AS k{i}" for i, c in enumerate(key))
    notes: list[str] = []
    for column, conversion in converted.items():
        rows = warehouse.records(
            f"SELECT {texts}, count(*) OVER () AS n FROM {table} s"
            f" WHERE s.{quote_identifier(column)} IS NOT NULL AND ({conversion}) IS NULL"
            f" ORDER BY {', '.join(f'k{i}' for i in range(len(key)))} LIMIT 1"
        )
        if rows:
            types = f"{stored[column]} -> {by_name[column].warehouse_type}"
            example = _key_text([rows[0][f"k{i}"] for i in range(len(key))])
            notes.append(unconverted_note(column, types, int(rows[0]["n"]), example))
    return notes


def empty_snapshot(warehouse: Warehouse, request: ChangeRequest) -> str:
    """A snapshot with the diff's columns and no row, for a sync's first run."""
    columns = ", ".join(
        f"CAST(NULL AS {column.warehouse_type}) AS {quote_identifier(column.name)}"
        for column in request.read
    )
    return f"(SELECT {columns}, CAST(NULL AS {warehouse.hash_type}) AS {ROW_HASH} WHERE 1 = 0)"


def _keys(diff: DiffInput, alias: str = "") -> str:
    prefix = f"{alias}." if alias else ""
    return ", ".join(f"{prefix}{quote_identifier(c)}" for c in diff.primary_key)


def _key_null(diff: DiffInput, alias: str) -> str:
    return " OR ".join(f"{alias}.{quote_identifier(c)} IS NULL" for c in diff.primary_key)


def _temp(warehouse: Warehouse, name: str) -> str:
    return warehouse.temp_table(name)


def find_changed_keys(
    warehouse: Warehouse, request: ChangeRequest, relation: str, snapshot: str
) -> None:
    """The join over every row: keys and hashes only, into the KEYS work table."""
    diff = request.diff
    compared = [c for c in request.read if c.name in diff.compare_columns]
    compared.sort(key=lambda column: diff.compare_columns.index(column.name))
    coalesced = ", ".join(
        f"COALESCE(c.{name}, s.{name}) AS {name}"
        for name in (quote_identifier(c) for c in diff.primary_key)
    )
    keys = _keys(diff)
    not_null = " AND ".join(f"r.{quote_identifier(c)} IS NOT NULL" for c in diff.primary_key)
    warehouse.create_temp(
        KEYS,
        f"""
        SELECT {coalesced},
               CASE WHEN s.{ROW_HASH} IS NULL THEN 'added'
                    WHEN c.{ROW_HASH} IS NULL THEN 'removed'
                    WHEN c.{ROW_HASH} <> s.{ROW_HASH} THEN 'changed'
                    ELSE 'added' END AS {EVENT},
               s.{ROW_HASH} IS NOT NULL AS {MATCHED}
        FROM (SELECT {_keys(diff, "r")}, {row_hash(warehouse, compared, "r")} AS {ROW_HASH}
              FROM {relation} r WHERE {not_null}) c
        FULL OUTER JOIN (SELECT {keys}, {ROW_HASH} FROM {snapshot} s0) s
          ON {diff.key_join("c", "s")}
        WHERE {"1 = 1" if request.resend_all else "1 = 0"}
           OR c.{ROW_HASH} IS DISTINCT FROM s.{ROW_HASH}
        """,
    )


@dataclass(frozen=True)
class ModelCounts:
    """Rows of the model with a NULL in the primary key, and with none."""

    rejected: int
    keyed: int


def count_model(warehouse: Warehouse, diff: DiffInput, relation: str) -> ModelCounts:
    """Count the model's rows with and without a NULL in the primary key (one scan)."""
    null = _key_null(diff, "r")
    [row] = warehouse.records(
        f"SELECT count(CASE WHEN {null} THEN 1 END) AS rejected,"
        f" count(CASE WHEN NOT ({null}) THEN 1 END) AS keyed FROM {relation} r"
    )
    return ModelCounts(int(row["rejected"]), int(row["keyed"]))


def null_key_examples(warehouse: Warehouse, diff: DiffInput, relation: str) -> list[str]:
    """A few rows whose primary key has a NULL, as JSON."""
    rows = warehouse.records(
        f"SELECT {warehouse.row_json('r')} AS example FROM {relation} r"
        f" WHERE {_key_null(diff, 'r')} LIMIT 3"
    )
    return [str(row["example"]) for row in rows]


def keys_may_repeat(warehouse: Warehouse, diff: DiffInput, keyed_rows: int, snapshot: str) -> bool:
    """After find_changed_keys: whether the model's key may repeat (see changes.diff)."""
    [snap] = warehouse.records(f"SELECT count(*) AS n FROM {snapshot} s")
    [found] = warehouse.records(
        f"SELECT count(CASE WHEN {EVENT} = 'added' AND NOT {MATCHED} THEN 1 END) AS added,"
        f" count(CASE WHEN {EVENT} = 'removed' THEN 1 END) AS removed,"
        f" (SELECT count(*) FROM (SELECT {_keys(diff)} FROM {_temp(warehouse, KEYS)}"
        f"  GROUP BY {_keys(diff)} HAVING count(*) > 1) d) AS repeated"
        f" FROM {_temp(warehouse, KEYS)}"
    )
    expected = int(snap["n"]) - int(found["removed"]) + int(found["added"])
    return bool(found["repeated"]) or keyed_rows != expected


def check_duplicate_keys(warehouse: Warehouse, request: ChangeRequest, relation: str) -> None:
    """Fail the sync before anything leaves the warehouse when the primary key repeats."""
    diff = request.diff
    by_name = {column.name: column for column in request.read}
    texts = [warehouse.text(by_name[c], "r") for c in diff.primary_key]
    selected = ", ".join(f"{text} AS k{i}" for i, text in enumerate(texts))
    not_null = " AND ".join(f"r.{quote_identifier(c)} IS NOT NULL" for c in diff.primary_key)
    # Grouped by the values (as the joins compare them), shown as text.
    rows = warehouse.records(
        f"SELECT {selected}, count(*) AS n FROM {relation} r WHERE {not_null}"
        f" GROUP BY {_keys(diff, 'r')} HAVING count(*) > 1"
        f" ORDER BY n DESC LIMIT {MAX_REPORTED_KEYS + 1}"
    )
    if not rows:
        return
    shown = ", ".join(
        f"{_key_text([row[f'k{i}'] for i in range(len(texts))])} ({row['n']} rows)"
        for row in rows[:MAX_REPORTED_KEYS]
    )
    more = " and more" if len(rows) > MAX_REPORTED_KEYS else ""
    raise SyncError(
        f"primary key {', '.join(diff.primary_key)} is not unique: {shown}{more};"
        " nothing was published for this model and its state is unchanged",
        model=request.model.name,
        column=", ".join(diff.primary_key),
        hint="fix the model so each key appears once, or choose another primary_key",
    )


def _key_text(values: list[object]) -> str:
    """A key as row keys are shown: the value, or a JSON array of a composite key's texts."""
    if len(values) == 1:
        return str(values[0])
    return json.dumps([None if v is None else str(v) for v in values], separators=(",", ":"))


def build_work_table(
    warehouse: Warehouse, request: ChangeRequest, relation: str, snapshot: str
) -> None:
    """The changed rows with the columns messages need, numbered, into the WORK table.

    A current row's hash is computed again from the values copied, so that what is
    committed is exactly what was sent. A removed row takes its values from the snapshot.
    """
    diff = request.diff
    compared = sorted(
        (c for c in request.read if c.name in diff.compare_columns),
        key=lambda column: diff.compare_columns.index(column.name),
    )
    keys = _temp(warehouse, KEYS)
    current = ", ".join(f"r.{quote_identifier(c)}" for c in diff.columns)
    stored = ", ".join(f"s.{quote_identifier(c)}" for c in diff.columns)
    warehouse.create_temp(
        WORK,
        f"""
        SELECT row_number() OVER () AS {SEQ_COLUMN}, u.* FROM (
            SELECT k.{EVENT}, {current}, {row_hash(warehouse, compared, "r")} AS {ROW_HASH}
            FROM {keys} k JOIN {relation} r ON {diff.key_join("k", "r")}
            WHERE k.{EVENT} <> 'removed'
            UNION ALL
            SELECT k.{EVENT}, {stored}, CAST(NULL AS {warehouse.hash_type}) AS {ROW_HASH}
            FROM {keys} k JOIN {snapshot} s ON {diff.key_join("k", "s")}
            WHERE k.{EVENT} = 'removed'
        ) u
        """,
    )


def fetch_changes(
    warehouse: Warehouse,
    session: duckdb.DuckDBPyConnection,
    request: ChangeRequest,
    snapshot: str,
    rows: bool = True,
) -> ChangeCounts:
    """Bring the WORK table's rows into the session's table of changes; count them.

    With rows=False (nothing of them will be published) the table of changes is left
    empty, with its columns; the commit takes the rows from WORK all the same.
    """
    work = _temp(warehouse, WORK)
    passthrough = [SEQ_COLUMN, EVENT, ROW_HASH]
    fetched = f"SELECT * FROM {work}" + ("" if rows else " WHERE 1 = 0")
    warehouse.fetch(session, request.model, fetched, request.read, passthrough, FETCHED)
    diff = request.diff
    columns = ", ".join(f"f.{quote_identifier(c)}" for c in diff.columns)
    previous, previous_join = "", ""
    if request.with_previous:
        stored = ", ".join(f"s.{quote_identifier(c)}" for c in diff.columns)
        warehouse.fetch(
            session,
            request.model,
            f"SELECT w.{SEQ_COLUMN}, {stored} FROM {work} w JOIN {snapshot} s"
            f" ON {diff.key_join('w', 's')} WHERE w.{EVENT} = 'changed'",
            request.read,
            [SEQ_COLUMN],
            FETCHED_PREVIOUS,
        )
        fields = ", ".join(
            f"{quote_identifier(c)} := p.{quote_identifier(c)}" for c in diff.columns
        )
        previous = f", CASE WHEN f.{EVENT} = 'changed' THEN struct_pack({fields}) END AS {PREVIOUS}"
        previous_join = f"LEFT JOIN {FETCHED_PREVIOUS} p ON p.{SEQ_COLUMN} = f.{SEQ_COLUMN}"
    session.execute(
        f"""
        CREATE OR REPLACE TABLE {CHANGES} AS
        SELECT f.{SEQ_COLUMN}, f.{EVENT}, {columns}, f.{ROW_HASH}{previous}
        FROM {FETCHED} f {previous_join}
        """
    )
    if rows:
        found = session.execute(f"SELECT {EVENT}, count(*) FROM {CHANGES} GROUP BY 1").fetchall()
    else:
        query = f"SELECT {EVENT} AS e, count(*) AS n FROM {work} GROUP BY {EVENT}"
        found = [(row["e"], row["n"]) for row in warehouse.records(query)]
    counts = {str(event): int(count) for event, count in found}
    return ChangeCounts(counts.get("added", 0), counts.get("changed", 0), counts.get("removed", 0))


def advance_snapshot(
    book: Bookkeeping,
    warehouse: Warehouse,
    diff: DiffInput,
    snapshot: WarehouseSnapshot | None,
    record: SyncRecord | None,
    sync: str,
    prepared: str | None = None,
) -> str:
    """Inside the commit's transaction: apply the delivered changes; return the table's name.

    The changes are the WORK table's, but for the failed ones (their numbers in the
    FAILED table), which leave their rows as they were; or all those of a `prepared`
    table (exactly-once: the delivered changes, kept while Kafka decided).
    """
    work = prepared or _temp(warehouse, WORK)
    stored = ", ".join(quote_identifier(c) for c in diff.columns)
    table = record.snapshot_table if record else snapshot_name(sync)
    if record is None:
        warehouse.execute(
            f"CREATE TABLE {book.table(table)} AS SELECT {stored}, {ROW_HASH}"
            f" FROM {work} WHERE 1 = 0"
        )
    elif snapshot is not None and snapshot.rewrite:
        # A new table from the view, then the old one dropped: one transaction.
        old, table = table, f"{snapshot_name(sync)}_{secrets.token_hex(3)}"
        warehouse.execute(f"CREATE TABLE {book.table(table)} AS SELECT * FROM {snapshot.sql} v")
        warehouse.execute(f"DROP TABLE {book.table(old)}")
    target = book.table(table)
    delivered = "1 = 1" if prepared else _not_failed(warehouse)
    warehouse.execute(
        f"DELETE FROM {target} t USING {work} w WHERE {diff.key_join('t', 'w')} AND {delivered}"
    )
    warehouse.execute(
        f"INSERT INTO {target} ({stored}, {ROW_HASH}) SELECT {stored}, {ROW_HASH}"
        f" FROM {work} w WHERE w.{EVENT} <> 'removed' AND {delivered}"
    )
    return table


def _not_failed(warehouse: Warehouse) -> str:
    """The condition on a WORK row `w`: its change's message did not fail."""
    # An anti-join, not NOT IN: it stays a hash join however many messages failed.
    failed = _temp(warehouse, FAILED)
    return f"NOT EXISTS (SELECT 1 FROM {failed} f WHERE f.seq = w.{SEQ_COLUMN})"


def keep_delivered(book: Bookkeeping, warehouse: Warehouse, table: str) -> None:
    """Inside a transaction: the WORK table's delivered changes into a table of the state."""
    warehouse.execute(
        f"CREATE TABLE {book.table(table)} AS SELECT * FROM {_temp(warehouse, WORK)} w"
        f" WHERE {_not_failed(warehouse)}"
    )


def upload_pending(
    warehouse: Warehouse, session: duckdb.DuckDBPyConnection, diff: DiffInput
) -> None:
    """Send the keys of the session's unpublished changes up, as text, into PENDING_KEYS."""
    texts = ", ".join(
        f"CAST({quote_identifier(c)} AS VARCHAR) AS k{i}" for i, c in enumerate(diff.primary_key)
    )
    query = f"SELECT {texts}, {EVENT} FROM {CHANGES} WHERE {EVENT} IN ('added', 'changed')"
    pending = arrow_batches(session, query, 100_000).read_all()
    warehouse.upload(session, pending, PENDING_KEYS)


def adopt_snapshot(
    book: Bookkeeping,
    warehouse: Warehouse,
    request: ChangeRequest,
    relation: str,
    sync: str,
) -> str:
    """Inside a transaction: the model's rows, less the pending ones, as a new snapshot.

    The pending keys arrived as text; each is read back as its column's warehouse type.
    """
    diff = request.diff
    by_name = {column.name: column for column in request.read}
    compared = [by_name[c] for c in diff.compare_columns]
    columns = ", ".join(f"c.{quote_identifier(c)}" for c in diff.columns)
    current = ", ".join(f"r.{quote_identifier(c)}" for c in diff.columns)
    join = " AND ".join(
        f"c.{quote_identifier(c)} = CAST(p.k{i} AS {by_name[c].warehouse_type})"
        for i, c in enumerate(diff.primary_key)
    )
    not_null = " AND ".join(f"r.{quote_identifier(c)} IS NOT NULL" for c in diff.primary_key)
    table = snapshot_name(sync)
    [unmatched] = warehouse.records(
        f"SELECT count(*) AS n, min(p.k0) AS example FROM {_temp(warehouse, PENDING_KEYS)} p"
        f" WHERE NOT EXISTS (SELECT 1 FROM {relation} c WHERE {join})"
    )
    if unmatched["n"]:
        raise StateError(
            f"{unmatched['n']} unpublished key(s) of the model (e.g. {unmatched['example']})"
            " are not found in the warehouse by their text: nothing was copied for this sync",
            model=request.model.name,
            column=", ".join(diff.primary_key),
            hint="run dbt-kafka-sync with the current state first, so nothing is pending",
        )
    warehouse.execute(
        f"""
        CREATE TABLE {book.table(table)} AS
        SELECT {columns},
               CASE WHEN p.{EVENT} = 'changed' THEN CAST({PENDING} AS {warehouse.hash_type})
                    ELSE c.{ROW_HASH} END AS {ROW_HASH}
        FROM (SELECT {current}, {row_hash(warehouse, compared, "r")} AS {ROW_HASH}
              FROM {relation} r WHERE {not_null}) c
        LEFT JOIN {_temp(warehouse, PENDING_KEYS)} p ON {join}
        WHERE p.{EVENT} IS NULL OR p.{EVENT} = 'changed'
        """
    )
    return table


def model_fingerprint(warehouse: Warehouse, request: ChangeRequest, relation: str) -> str:
    """The model's row count and the sum of its keyed row hashes: equal twice, it did not change.

    A copy of the state reads the model twice (for the diff, then for the new snapshot);
    comparing this before and after tells that both reads saw the same rows.
    """
    diff = request.diff
    by_name = {column.name: column for column in request.read}
    keyed = [by_name[c] for c in [*diff.primary_key, *diff.compare_columns]]
    [row] = warehouse.records(
        f"SELECT count(*) AS n, sum({row_hash(warehouse, keyed, 'r')}) AS total FROM {relation} r"
    )
    return f"{row['n']}:{row['total']}"
