"""Change detection inside DuckDB: current rows against the snapshot, by primary key and hash.

The diff runs in two steps so that the join over every row carries only keys and
hashes; the full columns are fetched afterwards for the few rows that changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from dbt_kafka_sync.errors import SyncError
from dbt_kafka_sync.messages import row_key_expression
from dbt_kafka_sync.sql import quote_identifier
from dbt_kafka_sync.state import ROW_HASH

if TYPE_CHECKING:
    import duckdb

# A change's sequence number: its row id in CHANGES, which is never modified. A model with
# a column named rowid hides DuckDB's row id; its changes are numbered in SEQ_COLUMN.
ROW_ID = "rowid"
SEQ_COLUMN = "__dks_seq"
EVENT = "__dks_event"
PREVIOUS = "__dks_previous"
CHANGES = "dks_changes"  # temp table of the sync being processed
MATCHED = "__dks_matched"  # in the changed keys: the key is in both the model and the snapshot
MAX_REPORTED_KEYS = 10


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


@dataclass(frozen=True)
class DiffInput:
    """What to compare: the model's rows and the columns kept in the snapshot.

    Attributes:
        relation: qualified name of the model's relation.
        primary_key: the primary key columns.
        columns: stored column -> DuckDB type (primary key included).
        compare_columns: the columns whose change makes a row `changed`.
    """

    relation: str
    primary_key: list[str]
    columns: dict[str, str]
    compare_columns: list[str]

    @property
    def seq(self) -> str:
        """The column of CHANGES holding each change's sequence number."""
        return SEQ_COLUMN if any(c.lower() == ROW_ID for c in self.columns) else ROW_ID

    def row_hash(self) -> str:
        """Return SQL hashing the compared columns of a current row."""
        return row_hash(self.compare_columns, self.columns)

    def key_not_null(self) -> str:
        """Return the condition: no primary key column is NULL."""
        return " AND ".join(f"{quote_identifier(c)} IS NOT NULL" for c in self.primary_key)

    def key_join(self, left: str, right: str) -> str:
        """Return the join condition on the primary key between two aliases."""
        return " AND ".join(
            f"{left}.{quote_identifier(c)} = {right}.{quote_identifier(c)}"
            for c in self.primary_key
        )


@dataclass(frozen=True)
class ChangeCounts:
    """How many rows of each kind the diff found."""

    added: int = 0
    changed: int = 0
    removed: int = 0

    @property
    def total(self) -> int:
        """All changes together."""
        return self.added + self.changed + self.removed


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
        CREATE OR REPLACE TEMP TABLE {CHANGES} AS
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
