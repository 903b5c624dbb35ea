"""A sync's snapshot: the rows as last delivered, read for the diff and advanced on commit.

The snapshot advances, once the producer is flushed, for every change but the rows whose
message failed, in one transaction with the run history: a failed row, or any row of a run
interrupted before its commit, is found again by the next run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dbt_kafka_sync import faults
from dbt_kafka_sync.changes.diff import CHANGES, EVENT
from dbt_kafka_sync.changes.hashing import PENDING, ROW_HASH, row_hash
from dbt_kafka_sync.changes.input import DiffInput
from dbt_kafka_sync.changes.keys import row_key_expression
from dbt_kafka_sync.errors import SyncError
from dbt_kafka_sync.session import STATE_DATABASE as ALIAS
from dbt_kafka_sync.sql import quote_identifier, registered
from dbt_kafka_sync.state.debugger import mark_undelivered, patch_rendered, save_log, save_sent
from dbt_kafka_sync.state.history import SyncOutcome, record_outcome
from dbt_kafka_sync.state.local_file import local_bookkeeping
from dbt_kafka_sync.state.prepared import (
    PreparedCommit,
    drop_prepared,
    mark_discarded,
    save_prepared,
)
from dbt_kafka_sync.state.staging import StagedLog
from dbt_kafka_sync.state.store import (
    SyncIdentity,
    SyncRecord,
    load_sync,
    save_sync,
    snapshot_name,
)

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from dbt_kafka_sync.state.tables import Bookkeeping


@dataclass(frozen=True)
class SnapshotView:
    """The snapshot seen with the diff's columns, and whether the commit must rewrite it.

    Attributes:
        sql: a subquery with exactly the diff's columns and the row hash.
        rewrite: the stored table differs from that view (columns, types or hashes).
        notes: what the difference means for this run, for the log.
    """

    sql: str
    rewrite: bool
    notes: list[str]


def snapshot_view(
    model: str, diff: DiffInput, record: SyncRecord, duckdb_version: str
) -> SnapshotView:
    """Present the stored snapshot as the current config and model columns expect it.

    Columns the snapshot did not keep yet read as NULL and columns whose type changed
    are cast where their value converts (NULL where not: see conversion_notes). Stored
    hashes are reused when they cover the same columns, computed anew when only the
    compared columns or DuckDB changed, and marked PENDING (every row sent once) when the
    snapshot cannot tell: a compared column is new or changed its type.

    Raises:
        SyncError: when the primary key or its types changed; the snapshot's rows
            could not be matched to the model's any more.
    """
    check_same_key(model, diff, record)
    table = qualified(record.snapshot_table)
    changed_types = retyped_columns(diff, record)
    unknown = [c for c in diff.compare_columns if c not in record.columns or c in changed_types]
    hashed_again = record.compare_columns != diff.compare_columns
    hashed_again |= record.hash_version != duckdb_version
    notes: list[str] = []
    if unknown:
        hash_sql = f"{PENDING}::UBIGINT"
        notes.append(
            f"compared column(s) {', '.join(unknown)} are new or changed type since the last"
            " run: every row is published as changed once"
        )
    elif hashed_again:
        fresh = row_hash(diff.compare_columns, record.columns)
        hash_sql = f"CASE WHEN {ROW_HASH} = {PENDING} THEN {PENDING} ELSE {fresh} END"
    else:
        hash_sql = ROW_HASH
    columns = [_stored_column(c, t, record) for c, t in diff.columns.items()]
    return SnapshotView(
        sql=f"(SELECT {', '.join(columns)}, {hash_sql} AS {ROW_HASH} FROM {table})",
        rewrite=hash_sql != ROW_HASH or record.columns != diff.columns,
        notes=notes,
    )


def _stored_column(name: str, column_type: str, record: SyncRecord) -> str:
    quoted = quote_identifier(name)
    if name not in record.columns:
        return f"NULL::{column_type} AS {quoted}"
    if record.columns[name] != column_type:
        return f"TRY_CAST({quoted} AS {column_type}) AS {quoted}"
    return quoted


def retyped_columns(diff: DiffInput, record: SyncRecord) -> list[str]:
    """The kept columns whose type changed since the snapshot was written."""
    return [c for c in diff.columns if c in record.columns and record.columns[c] != diff.columns[c]]


def conversion_notes(
    connection: duckdb.DuckDBPyConnection, diff: DiffInput, record: SyncRecord
) -> list[str]:
    """Say, per retyped column, how many stored values do not convert to the new type.

    Those read as NULL from the snapshot (see _stored_column), in the messages of removed
    rows and in `previous`, and stay NULL once the commit rewrites the snapshot.
    """
    notes: list[str] = []
    table = qualified(record.snapshot_table)
    for column in retyped_columns(diff, record):
        quoted, new_type = quote_identifier(column), diff.columns[column]
        [(rows, example)] = connection.execute(
            f"SELECT count(*), min({row_key_expression(record.primary_key)}) FROM {table}"
            f" WHERE {quoted} IS NOT NULL AND TRY_CAST({quoted} AS {new_type}) IS NULL"
        ).fetchall()
        if rows:
            before = f"{record.columns[column]} -> {new_type}"
            notes.append(unconverted_note(column, before, int(rows), str(example)))
    return notes


def unconverted_note(column: str, types: str, rows: int, example: str) -> str:
    """The note on stored values that a column's new type cannot hold (every backend)."""
    return (
        f"column '{column}' changed type ({types}): {rows} row(s) of the snapshot hold a"
        f" value the new type cannot hold (e.g. row key {example!r}); the snapshot keeps"
        " NULL for them, so a removed row's message (and a template's `previous`) carries"
        " null for this column instead of its last sent value"
    )


def qualified(table: str) -> str:
    """Name a table of the state file."""
    return f"{ALIAS}.main.{quote_identifier(table)}"


def check_same_key(model: str, diff: DiffInput, record: SyncRecord) -> None:
    """Refuse a snapshot whose primary key (names or types) is not the model's any more."""
    before = {c: record.columns.get(c) for c in record.primary_key}
    now = {c: diff.columns[c] for c in diff.primary_key}
    if before != now:
        raise SyncError(
            f"the primary key changed since the last run ({_describe_key(before)} ->"
            f" {_describe_key(now)}); the snapshot cannot be matched to the model any more",
            model=model,
            column=", ".join(diff.primary_key),
            hint=f"run `dbt-kafka-sync reset {model}` and then `dbt-kafka-sync --select"
            f" {model} --full-refresh` to start this sync anew",
        )


def _describe_key(key: Mapping[str, str | None]) -> str:
    return ", ".join(f"{column} {kind}" for column, kind in key.items())


@dataclass(frozen=True)
class Staging:
    """What a staged commit wrote before the deliveries were known (see state/staging.py).

    Attributes:
        snapshot: the new snapshot table of a first run holds every change; the commit
            removes the failed ones.
        log: the message log holds every message as delivered; the commit marks the
            failed ones.
    """

    snapshot: bool
    log: bool


def stage(
    connection: duckdb.DuckDBPyConnection,
    diff: DiffInput,
    record: SyncRecord | None,
    sync_id: str,
    run_id: str,
    staged_log: StagedLog | None,
) -> Staging:
    """In the open transaction of `connection`: write what does not depend on the deliveries.

    A first run's snapshot is a new table: it takes every change now, and the commit
    removes the failed ones. Later runs change the snapshot at the commit, as without
    staging (undoing a change of a failed row would need its previous values).
    """
    first = record is None
    if first:
        table = qualified(snapshot_name(sync_id))
        _shape_table(connection, diff, None, snapshot_name(sync_id))
        _insert_changes(connection, diff, table, CHANGES)
    if staged_log is not None:
        save_log(local_bookkeeping(connection), run_id, sync_id, staged_log.names, staged_log.rows)
    faults.reached(faults.DURING_STAGING)
    return Staging(snapshot=first, log=staged_log is not None)


def commit(
    connection: duckdb.DuckDBPyConnection,
    diff: DiffInput,
    view: SnapshotView | None,
    record: SyncRecord | None,
    failed: pa.Array,
    identity: SyncIdentity,
    run_id: str,
    outcome: SyncOutcome,
    staging: Staging | None = None,
) -> None:
    """Advance the snapshot for every change but the failed rows; record the run's outcome.

    Called once publishing is over: each change was then delivered, failed (its seq is in
    `failed`), or of an event the sync does not publish. One transaction: on any error
    nothing of it is kept. With `staging`, that transaction is the connection's open one,
    which stage() began to fill while the messages were sent.
    """
    table = record.snapshot_table if record else snapshot_name(identity.sync_id)
    book = local_bookkeeping(connection)
    with _transaction(book, staging):
        if staging is not None and staging.snapshot:
            _remove_failed(connection, diff, qualified(table), failed)
        else:
            with _delivered_changes(connection, diff, failed) as delivered:
                _shape_table(connection, diff, view, table)
                _apply_changes(connection, diff, qualified(table), delivered)
        save_sync(book, identity, table, diff)
        record_outcome(book, run_id, identity.sync_id, outcome)
        if staging is not None and staging.log and outcome.log is not None:
            log = outcome.log
            _update_log(connection, patch_rendered, book, run_id, identity.sync_id, log.rendered)
            _update_log(
                connection, mark_undelivered, book, run_id, identity.sync_id, log.undelivered
            )
            save_sent(book, run_id, identity.sync_id, outcome, None)
        else:
            save_sent(book, run_id, identity.sync_id, outcome, _log_rows(outcome))
        faults.reached(faults.DURING_STATE_COMMIT)


@contextmanager
def _transaction(book: Bookkeeping, staging: Staging | None) -> Iterator[None]:
    """The commit's transaction: a new one, or the one a staged commit began."""
    if staging is None:
        with book.transaction():
            yield
        return
    try:
        yield
    except BaseException:
        book.execute("ROLLBACK")
        raise
    book.execute("COMMIT")


def _update_log(
    connection: duckdb.DuckDBPyConnection,
    update: Callable[[Bookkeeping, str, str, str], None],
    book: Bookkeeping,
    run_id: str,
    sync_id: str,
    rows: pa.Table | None,
) -> None:
    """Update a log written before the deliveries were known, from a few rows by seq.

    `update` is debugger.patch_rendered (the values Liquid rendered) or
    debugger.mark_undelivered (the outcomes of the messages that failed).
    """
    if rows is None or not rows.num_rows:
        return
    with registered(connection, "dks_log_update", rows) as relation:
        update(book, run_id, sync_id, relation)


def _remove_failed(
    connection: duckdb.DuckDBPyConnection, diff: DiffInput, table: str, failed: pa.Array
) -> None:
    """Take the rows of the failed changes out of a snapshot that took every change."""
    if not len(failed):
        return
    import pyarrow as pa

    keys = ", ".join(quote_identifier(c) for c in diff.primary_key)
    with registered(connection, "dks_failed", pa.table({"seq": failed})) as failed_seqs:
        connection.execute(
            f"DELETE FROM {table} s USING (SELECT {keys} FROM {CHANGES}"
            f" WHERE {diff.seq} IN (SELECT seq FROM {failed_seqs})) f"
            f" WHERE {diff.key_join('s', 'f')}"
        )


def prepare(
    connection: duckdb.DuckDBPyConnection,
    failed: pa.Array,
    prepared: PreparedCommit,
    outcome: SyncOutcome,
) -> None:
    """Keep the delivered changes as a prepared commit, and the outcome; one transaction."""
    book = local_bookkeeping(connection)
    diff = prepared.diff
    columns = ", ".join(quote_identifier(c) for c in diff.columns)
    with _delivered_changes(connection, diff, failed) as delivered, book.transaction():
        connection.execute(
            f"CREATE TABLE {qualified(prepared.table)} AS"
            f" SELECT {columns}, {ROW_HASH}, {EVENT} FROM {delivered}"
        )
        save_prepared(book, prepared)
        record_outcome(book, prepared.run_id, prepared.sync_id, outcome)
        save_sent(book, prepared.run_id, prepared.sync_id, outcome, _log_rows(outcome))
        faults.reached(faults.DURING_PREPARE)


def _log_rows(outcome: SyncOutcome) -> str | None:
    """The session relation holding the sync's recorded messages: the file reads it directly."""
    return outcome.log.rows if outcome.log is not None else None


def complete(connection: duckdb.DuckDBPyConnection, prepared: PreparedCommit) -> None:
    """Apply a prepared commit to the snapshot and forget it; one transaction."""
    book = local_bookkeeping(connection)
    record = load_sync(book, prepared.sync_id)
    table = record.snapshot_table if record else snapshot_name(prepared.sync_id)
    view = None
    if prepared.view_sql is not None:
        view = SnapshotView(prepared.view_sql, prepared.view_rewrite, [])
    with book.transaction():
        _shape_table(connection, prepared.diff, view, table)
        _apply_changes(connection, prepared.diff, qualified(table), qualified(prepared.table))
        save_sync(book, prepared.identity, table, prepared.diff)
        drop_prepared(book, prepared)
        faults.reached(faults.DURING_STATE_COMMIT)


def discard(connection: duckdb.DuckDBPyConnection, prepared: PreparedCommit, reason: str) -> None:
    """Forget a prepared commit whose transaction did not commit; its changes stay to send."""
    book = local_bookkeeping(connection)
    with book.transaction():
        drop_prepared(book, prepared)
        mark_discarded(book, prepared, reason)


@contextmanager
def _delivered_changes(
    connection: duckdb.DuckDBPyConnection, diff: DiffInput, failed: pa.Array
) -> Iterator[str]:
    """A temp table of the session's changes but the failed ones."""
    import pyarrow as pa

    with registered(connection, "dks_failed", pa.table({"seq": failed})) as failed_seqs:
        done = f"SELECT * FROM {CHANGES} WHERE {diff.seq} NOT IN (SELECT seq FROM {failed_seqs})"
        connection.execute(f"CREATE OR REPLACE TEMP TABLE dks_done AS {done}")
    yield "dks_done"


def _shape_table(
    connection: duckdb.DuckDBPyConnection, diff: DiffInput, view: SnapshotView | None, table: str
) -> None:
    if view is None:
        columns = ", ".join(f"{quote_identifier(c)} {t}" for c, t in diff.columns.items())
        connection.execute(f"CREATE TABLE {qualified(table)} ({columns}, {ROW_HASH} UBIGINT)")
    elif view.rewrite:
        # DuckDB reads the old table fully before replacing it, inside the transaction.
        connection.execute(
            f"CREATE OR REPLACE TABLE {qualified(table)} AS SELECT * FROM {view.sql}"
        )


def _apply_changes(
    connection: duckdb.DuckDBPyConnection, diff: DiffInput, table: str, delivered: str
) -> None:
    """Apply delivered changes (key, columns, hash and event) to the snapshot table."""
    connection.execute(f"DELETE FROM {table} s USING {delivered} d WHERE {diff.key_join('s', 'd')}")
    _insert_changes(connection, diff, table, delivered)


def _insert_changes(
    connection: duckdb.DuckDBPyConnection, diff: DiffInput, table: str, changes: str
) -> None:
    """Insert the new rows (of every change but the removed ones) into the snapshot table."""
    columns = ", ".join(quote_identifier(c) for c in diff.columns)
    connection.execute(
        f"INSERT INTO {table} ({columns}, {ROW_HASH}) SELECT {columns}, {ROW_HASH}"
        f" FROM {changes} WHERE {EVENT} <> 'removed'"
    )
