"""The debugger's tables on a real DuckDB: saved in bulk, queried with filters, pruned."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

import duckdb
import pytest

from dbt_kafka_sync.sql import DuckDBRunner
from dbt_kafka_sync.state import debugger
from dbt_kafka_sync.state.message_log import MessageFilter, StageTiming, Throughput
from dbt_kafka_sync.state.tables import Bookkeeping


@pytest.fixture
def book() -> Iterator[Bookkeeping]:
    connection = duckdb.connect()
    book = Bookkeeping(DuckDBRunner(connection), '"memory"."main"')
    book.create_tables()
    yield book
    connection.close()


def _log_run(
    book: Bookkeeping, run_id: str, started: datetime, rows: list[tuple[object, ...]]
) -> None:
    book.execute(
        f"INSERT INTO {book.table('runs')} (run_id, started_at, status) VALUES ($1, $2, 'success')",
        [run_id, started],
    )
    book.execute(
        "CREATE OR REPLACE TEMP TABLE log_rows ("
        + ", ".join(f"{c} {t}" for c, t in zip(debugger.LOG_COLUMNS, _TYPES, strict=True))
        + ")"
    )
    book.execute_many(f"INSERT INTO log_rows VALUES ({', '.join('?' * 12)})", rows)
    debugger.save_log(book, run_id, "s1", ("customers", "default"), "log_rows")


_TYPES = [
    "BIGINT",
    "TEXT",
    "TEXT",
    "TEXT",
    "TEXT",
    "BIGINT",  # a partition column's value, as the message query gives it
    "BIGINT",
    "BIGINT",
    "TEXT",
    "TEXT",
    "TEXT",
    "TIMESTAMPTZ",
]


def _row(seq: int, key: str, event: str, outcome: str, at: datetime) -> tuple[object, ...]:
    reason = None if outcome == "delivered" else "too large"
    return (seq, event, key, key, "t", None, None, 3, outcome, reason, '{"a":1}', at)


def test_filters_follow_a_key_and_prune(book: Bookkeeping) -> None:
    now = datetime.now(timezone.utc)
    old = now - timedelta(days=10)
    _log_run(book, "r1", old, [_row(0, "42", "added", "delivered", old)])
    _log_run(
        book,
        "r2",
        now,
        [_row(0, "42", "changed", "delivered", now), _row(1, "7", "added", "failed", now)],
    )
    assert [m.seq for m in debugger.sent_messages(book, "r2", MessageFilter())] == [0, 1]
    assert [m.key for m in debugger.sent_messages(book, "r2", MessageFilter(failed_only=True))] == [
        "7"
    ]
    assert [m.seq for m in debugger.sent_messages(book, "r2", MessageFilter(event="changed"))] == [
        0
    ]
    assert debugger.sent_messages(book, "r2", MessageFilter(model="orders")) == []
    assert [m.run_id for m in debugger.messages_for_key(book, "42")] == ["r2", "r1"]
    debugger.save_timings(book, "r2", [StageTiming("s1", "customers", "default", "diff", 0.5)])
    debugger.save_rates(book, "r2", [Throughput("s1", 0, 2)])
    assert debugger.stage_timings(book, "r2")[0].seconds == 0.5
    assert debugger.throughput(book, "r2") == [Throughput("s1", 0, 2)]

    debugger.prune(book, retention_days=7)

    assert [m.run_id for m in debugger.messages_for_key(book, "42")] == ["r2"]


def test_a_partition_out_of_the_int_range_is_logged(book: Bookkeeping) -> None:
    # A partition column may hold any BIGINT: the producer refuses the message, and the
    # log must record it rather than fail the sync's commit.
    now = datetime.now(timezone.utc)
    row = (0, "added", "1", "1", "t", 3_000_000_000, None, 3, "refused", "out of range", "{}", now)
    _log_run(book, "r1", now, [row])
    assert [m.partition for m in debugger.sent_messages(book, "r1", MessageFilter())] == [
        3_000_000_000
    ]
