"""Change detection and the commit rule, on real DuckDB tables (no broker needed)."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from dbt_kafka_sync.changes.diff import CHANGES, EVENT, compute_changes, keys_may_repeat
from dbt_kafka_sync.changes.input import ChangeCounts, DiffInput
from dbt_kafka_sync.changes.keys import check_duplicate_keys, null_key_rows
from dbt_kafka_sync.errors import SyncError
from dbt_kafka_sync.state.history import SyncOutcome
from dbt_kafka_sync.state.local_file import local_bookkeeping, open_state
from dbt_kafka_sync.state.snapshot import SnapshotView, commit, conversion_notes, snapshot_view
from dbt_kafka_sync.state.store import SyncIdentity, SyncRecord, load_sync

IDENTITY = SyncIdentity(
    sync_id="t:model.p.m:default",
    target="t",
    model_unique_id="model.p.m",
    sync_name="default",
    topic="topic",
    fingerprint="f",
    hash_version=duckdb.__version__,
)


@pytest.fixture
def connection(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    open_state(con, tmp_path / "state.duckdb", read_only=False)
    yield con
    con.close()


def make_model(con: duckdb.DuckDBPyConnection, rows: list[tuple[Any, ...]]) -> None:
    con.execute("CREATE OR REPLACE TABLE model (tenant VARCHAR, id INTEGER, name VARCHAR)")
    if rows:
        con.executemany("INSERT INTO model VALUES (?, ?, ?)", rows)


DIFF = DiffInput(
    relation="model",
    primary_key=["tenant", "id"],
    columns={"tenant": "VARCHAR", "id": "INTEGER", "name": "VARCHAR"},
    compare_columns=["name"],
)


def diff_and_commit(
    con: duckdb.DuckDBPyConnection,
    delivered: list[int] | None = None,
    resend: bool = False,
    diff: DiffInput = DIFF,
    unpublished: tuple[str, ...] = (),
) -> list[tuple[Any, ...]]:
    """Diff the model against the snapshot, then commit (by default every change).

    `delivered`: positions (from 1) in the returned changes of the rows delivered; rows of
    `unpublished` events are never sent, so never failed.
    """
    found, view, record = only_diff(con, resend, diff)
    columns = ", ".join(diff.columns)
    seqs = con.execute(
        f"SELECT {diff.seq}, {EVENT} FROM {CHANGES} ORDER BY {EVENT}, {columns}"
    ).fetchall()
    failed = [
        seq
        for position, (seq, event) in enumerate(seqs, 1)
        if delivered is not None and position not in delivered and event not in unpublished
    ]
    outcome = SyncOutcome("m", "default", "topic", ChangeCounts())
    commit(
        con,
        diff,
        view,
        record,
        pa.array(failed, type=pa.int64()),
        IDENTITY,
        "run",
        outcome,
    )
    return found


def only_diff(
    con: duckdb.DuckDBPyConnection, resend: bool = False, diff: DiffInput = DIFF
) -> tuple[list[tuple[Any, ...]], SnapshotView | None, SyncRecord | None]:
    """Diff without committing, as `plan` does."""
    record = load_sync(local_bookkeeping(con), IDENTITY.sync_id)
    view = snapshot_view("m", diff, record, duckdb.__version__) if record else None
    compute_changes(con, diff, view.sql if view else None, resend, model="m")
    columns = ", ".join(diff.columns)
    found = con.execute(f"SELECT {EVENT}, {columns} FROM {CHANGES} ORDER BY ALL").fetchall()
    return found, view, record


def test_added_changed_removed_with_a_composite_key(
    connection: duckdb.DuckDBPyConnection,
) -> None:
    make_model(connection, [("a", 1, "x"), ("a", 2, "y"), ("b", 1, "z"), ("b", 2, None)])
    assert [c[0] for c in diff_and_commit(connection)] == ["added"] * 4

    make_model(connection, [("a", 1, "x"), ("a", 2, "Y"), ("b", 2, "now set"), ("c", 1, "new")])

    assert diff_and_commit(connection) == [
        ("added", "c", 1, "new"),
        ("changed", "a", 2, "Y"),
        ("changed", "b", 2, "now set"),  # NULL -> value is a change
        ("removed", "b", 1, "z"),  # removed rows keep their last known values
    ]
    assert diff_and_commit(connection) == []  # nothing changed since


def test_value_to_null_is_a_change(connection: duckdb.DuckDBPyConnection) -> None:
    make_model(connection, [("a", 1, "x")])
    diff_and_commit(connection)
    make_model(connection, [("a", 1, None)])
    assert diff_and_commit(connection) == [("changed", "a", 1, None)]


def test_undelivered_rows_are_found_again(connection: duckdb.DuckDBPyConnection) -> None:
    make_model(connection, [("a", 1, "x"), ("a", 2, "y"), ("a", 3, "z")])
    first = diff_and_commit(connection, delivered=[2])  # only the second was confirmed
    confirmed = first[1]

    second = diff_and_commit(connection)

    assert confirmed not in second
    assert sorted(second) == sorted(row for row in first if row != confirmed)
    assert diff_and_commit(connection) == []


def test_undelivered_removal_is_sent_again(connection: duckdb.DuckDBPyConnection) -> None:
    make_model(connection, [("a", 1, "x"), ("a", 2, "y")])
    diff_and_commit(connection)
    make_model(connection, [("a", 1, "x")])
    assert diff_and_commit(connection, delivered=[]) == [("removed", "a", 2, "y")]
    assert diff_and_commit(connection) == [("removed", "a", 2, "y")]
    assert diff_and_commit(connection) == []


def test_resend_all_marks_every_current_row_added(connection: duckdb.DuckDBPyConnection) -> None:
    make_model(connection, [("a", 1, "x"), ("a", 2, "y")])
    diff_and_commit(connection)
    make_model(connection, [("a", 1, "x")])
    assert diff_and_commit(connection, resend=True) == [
        ("added", "a", 1, "x"),
        ("removed", "a", 2, "y"),
    ]


def test_a_failed_commit_changes_nothing(connection: duckdb.DuckDBPyConnection) -> None:
    make_model(connection, [("a", 1, "x")])
    compute_changes(connection, DIFF, None, False, model="m")
    outcome = SyncOutcome("m", "default", "topic", ChangeCounts())
    # Fails half-way: after the snapshot table was created and filled, before the history.
    broken = dataclasses.replace(outcome, counts=None)  # type: ignore[arg-type]
    with pytest.raises(AttributeError):
        commit(connection, DIFF, None, None, pa.array([], type=pa.int64()), IDENTITY, "run", broken)
    assert load_sync(local_bookkeeping(connection), IDENTITY.sync_id) is None
    tables = connection.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE 'snapshot_%'"
    ).fetchall()
    assert tables == [(0,)]


def test_duplicate_keys_are_named_with_counts(connection: duckdb.DuckDBPyConnection) -> None:
    make_model(
        connection,
        [("a", 1, "x"), ("a", 1, "y"), ("a", 1, "z"), ("b", 2, "w"), ("b", 2, "v"), ("c", 3, "ok")],
    )
    with pytest.raises(SyncError) as raised:
        check_duplicate_keys(connection, "m", DIFF)
    message = raised.value.render()
    assert message.startswith("model 'm', column 'tenant, id': primary key tenant, id")
    assert '["a","1"] (3 rows), ["b","2"] (2 rows)' in message


@pytest.mark.parametrize(
    ("rows", "resend", "repeats"),
    [
        ([("a", 1, "x"), ("a", 2, "new"), ("b", 9, "added")], False, False),
        ([("a", 1, "x"), ("a", 2, "y"), ("b", 9, "added")], True, False),  # --full-refresh
        ([("a", 1, "x"), ("a", 1, "x"), ("a", 2, "y")], False, True),  # unchanged twice
        ([("a", 1, "x"), ("a", 2, "y"), ("a", 2, "Y")], False, True),  # changed twice
        ([("a", 1, "x"), ("c", 5, "p"), ("c", 5, "q")], False, True),  # added twice
        ([("a", 1, "x"), ("a", 1, "x"), ("a", 1, "x")], True, True),
        ([("a", 1, "x"), (None, 1, "n"), (None, 1, "n")], False, False),  # NULL keys: rejected
    ],
)
def test_repeated_keys_are_told_from_the_diff_before_changes_are_fetched(
    connection: duckdb.DuckDBPyConnection,
    rows: list[tuple[Any, ...]],
    resend: bool,
    repeats: bool,
) -> None:
    make_model(connection, [("a", 1, "x"), ("a", 2, "y"), ("a", 3, "z")])
    diff_and_commit(connection)
    make_model(connection, rows)
    connection.execute(f"DROP TABLE {CHANGES}")

    if not repeats:
        only_diff(connection, resend)
        return
    with pytest.raises(SyncError, match="is not unique"):
        only_diff(connection, resend)
    # Refused after the join of keys, before repeated keys could multiply fetched rows.
    assert not connection.execute(
        f"SELECT * FROM duckdb_tables() WHERE table_name = '{CHANGES}'"
    ).fetchall()


def test_repeated_keys_on_a_first_run(connection: duckdb.DuckDBPyConnection) -> None:
    make_model(connection, [("a", 1, "x"), ("a", 2, "y")])
    only_diff(connection)
    assert not keys_may_repeat(connection, DIFF, None)

    make_model(connection, [("a", 1, "x"), ("a", 1, "y")])
    with pytest.raises(SyncError, match=r'\["a","1"\] \(2 rows\)'):
        only_diff(connection)


def test_a_model_column_named_rowid_gets_its_own_sequence_numbers(
    connection: duckdb.DuckDBPyConnection,
) -> None:
    connection.execute("CREATE TABLE extract AS SELECT 'AAAx' AS RowId, 7 AS n")
    diff = DiffInput("extract", ["n"], {"RowId": "VARCHAR", "n": "INTEGER"}, ["RowId"])
    assert diff.seq == "__dks_seq"

    found = diff_and_commit(connection, delivered=[], diff=diff)  # the one row failed

    assert found == [("added", "AAAx", 7)]
    assert diff_and_commit(connection, diff=diff) == [("added", "AAAx", 7)]  # sent again
    assert diff_and_commit(connection, diff=diff) == []


def test_null_keys_are_counted_with_examples(connection: duckdb.DuckDBPyConnection) -> None:
    make_model(connection, [("a", None, "x"), (None, 2, "y"), ("c", 3, "ok")])
    count, examples = null_key_rows(connection, DIFF)
    assert count == 2
    assert sorted(examples) == [
        '{"tenant":"a","id":null,"name":"x"}',
        '{"tenant":null,"id":2,"name":"y"}',
    ]
    counts = compute_changes(connection, DIFF, None, False, model="m")
    assert counts == ChangeCounts(added=1)  # rows without a key never reach the diff


def test_full_refresh_keeps_real_events_so_the_events_filter_loses_nothing(
    connection: duckdb.DuckDBPyConnection,
) -> None:
    make_model(connection, [("a", 1, "x"), ("a", 2, "y")])
    diff_and_commit(connection)
    make_model(connection, [("a", 1, "x"), ("a", 2, "Y")])

    # events: [changed, removed] with --full-refresh: row 1 is resent as `added`, which is
    # not published but harmless; row 2 really changed and must stay `changed`.
    found = diff_and_commit(connection, resend=True, delivered=[2], unpublished=("added",))

    assert found == [("added", "a", 1, "x"), ("changed", "a", 2, "Y")]
    assert diff_and_commit(connection) == []


NESTED = DiffInput(
    relation="nested",
    primary_key=["id"],
    columns={"id": "INTEGER", "tags": "VARCHAR[]", "address": "STRUCT(city VARCHAR)"},
    compare_columns=["tags", "address"],
)


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param("NULL", "[]", id="null-list-to-empty"),
        pytest.param("[]", "[NULL]", id="empty-list-to-list-of-null"),
    ],
)
def test_nested_values_that_hash_alike_in_duckdb_are_told_apart(
    connection: duckdb.DuckDBPyConnection, before: str, after: str
) -> None:
    def make(tags: str, address: str) -> None:
        connection.execute(
            f"CREATE OR REPLACE TABLE nested AS SELECT 1 AS id, {tags}::VARCHAR[] AS tags,"
            f" {address}::STRUCT(city VARCHAR) AS address"
        )

    make(before, "NULL")
    diff_and_commit(connection, diff=NESTED)
    make(after, "NULL")
    assert [row[0] for row in diff_and_commit(connection, diff=NESTED)] == ["changed"]
    make(after, "{'city': NULL}")  # NULL struct -> struct of NULLs
    assert [row[0] for row in diff_and_commit(connection, diff=NESTED)] == ["changed"]


def test_enum_label_change_at_the_same_position_is_a_change(
    connection: duckdb.DuckDBPyConnection,
) -> None:
    def model(labels: str, value: str) -> DiffInput:
        connection.execute(
            f"CREATE OR REPLACE TABLE e AS SELECT 1 AS id, '{value}'::ENUM({labels}) AS mood"
        )
        return DiffInput("e", ["id"], {"id": "INTEGER", "mood": f"ENUM({labels})"}, ["mood"])

    diff_and_commit(connection, diff=model("'sad', 'ok'", "sad"))
    changed = model("'happy', 'ok'", "happy")  # DuckDB hashes both as position 0
    assert diff_and_commit(connection, diff=changed) == [("changed", 1, "happy")]
    assert diff_and_commit(connection, diff=changed) == []


def test_type_change_resends_once_and_undelivered_rows_stay_pending(
    connection: duckdb.DuckDBPyConnection,
) -> None:
    def model(kind: str, values: list[str]) -> DiffInput:
        rows = " UNION ALL ".join(
            f"SELECT {i} AS id, {v}::{kind} AS a" for i, v in enumerate(values, 1)
        )
        connection.execute(f"CREATE OR REPLACE TABLE typed AS {rows}")
        return DiffInput("typed", ["id"], {"id": "INTEGER", "a": kind}, ["a"])

    diff_and_commit(connection, diff=model("DOUBLE", ["2.25", "7"]))
    rounded = model("DECIMAL(10,1)", ["2.3", "7"])  # the type changed: same hashes mean little

    found = diff_and_commit(connection, diff=rounded, delivered=[2])  # row 1 fails
    assert [row[0] for row in found] == ["changed", "changed"]

    # Narrowing compare columns rehashes the snapshot, but the failed row stays pending.
    narrowed = DiffInput("typed", ["id"], rounded.columns, ["a", "id"])
    assert [row[:2] for row in only_diff(connection, diff=narrowed)[0]] == [("changed", 1)]
    assert [row[:2] for row in diff_and_commit(connection, diff=narrowed)] == [("changed", 1)]
    assert diff_and_commit(connection, diff=narrowed) == []


def test_compare_columns_change_is_rehashed_the_same_in_plan_and_run(
    connection: duckdb.DuckDBPyConnection,
) -> None:
    make_model(connection, [("a", 1, "x")])
    wide = DiffInput("model", ["tenant", "id"], DIFF.columns, ["name", "tenant"])
    diff_and_commit(connection, diff=wide)

    assert only_diff(connection)[0] == []  # plan: nothing to send
    assert diff_and_commit(connection) == []  # run: the same


def test_primary_key_change_is_an_error_with_a_way_out(
    connection: duckdb.DuckDBPyConnection,
) -> None:
    make_model(connection, [("a", 1, "x")])
    diff_and_commit(connection)
    by_id = DiffInput("model", ["id"], DIFF.columns, ["name"])

    with pytest.raises(SyncError) as raised:
        only_diff(connection, diff=by_id)

    message = raised.value.render()
    assert "the primary key changed since the last run (tenant VARCHAR, id INTEGER -> id" in (
        message
    )
    assert "dbt-kafka-sync reset m" in message


def test_a_type_change_keeps_values_that_convert_and_names_those_that_do_not(
    connection: duckdb.DuckDBPyConnection,
) -> None:
    def model(kind: str, rows: list[str]) -> DiffInput:
        connection.execute(f"CREATE OR REPLACE TABLE coded (id INTEGER, code {kind})")
        connection.execute(f"INSERT INTO coded VALUES {', '.join(rows)}")
        return DiffInput("coded", ["id"], {"id": "INTEGER", "code": kind}, ["code"])

    stored = ["(1, 'abc')", "(2, '5')", "(3, NULL)", "(4, 'x1')", "(5, '7')"]
    diff_and_commit(connection, diff=model("VARCHAR", stored))
    retyped = model("INTEGER", ["(2, 5)", "(3, NULL)"])  # 1, 4 and 5 removed
    record = load_sync(local_bookkeeping(connection), IDENTITY.sync_id)
    assert record is not None

    assert conversion_notes(connection, retyped, record) == [
        "column 'code' changed type (VARCHAR -> INTEGER): 2 row(s) of the snapshot hold a"
        " value the new type cannot hold (e.g. row key '1'); the snapshot keeps NULL for"
        " them, so a removed row's message (and a template's `previous`) carries null for"
        " this column instead of its last sent value"
    ]
    removed = [row for row in only_diff(connection, diff=retyped)[0] if row[0] == "removed"]
    assert removed == [("removed", 1, None), ("removed", 4, None), ("removed", 5, 7)]
    assert conversion_notes(connection, model("VARCHAR", ["(1, 'abc')"]), record) == []
