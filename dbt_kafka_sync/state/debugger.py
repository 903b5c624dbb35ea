"""The debugger's tables: each run's sent messages, stage timings and send rate.

They live beside the run history (state/tables.py), in the local file or a warehouse
schema, and are written in the same transaction as the sync's commit. Rows arrive in bulk
from a relation the backend's connection can read (see save_log); every run prunes the
runs older than the retention.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from dbt_kafka_sync.state.history import SyncOutcome
from dbt_kafka_sync.state.message_log import MessageFilter, SentMessage, StageTiming, Throughput
from dbt_kafka_sync.state.tables import MESSAGES, RATES, TIMINGS, Bookkeeping

TABLES = (MESSAGES, TIMINGS, RATES)

# The relation save_log reads has these columns, in this order.
LOG_COLUMNS = (
    "seq",
    "event",
    "message_key",
    "row_key",
    "topic",
    "message_partition",
    "message_offset",
    "size",
    "outcome",
    "reason",
    "message_value",
    "sent_at",
)


def save_sent(
    book: Bookkeeping, run_id: str, sync_id: str, outcome: SyncOutcome, rows: str | None
) -> None:
    """Inside the commit's transaction: a sync's messages (from `rows`), timings and rate.

    The commit's own timing runs up to this point: all of it but the final COMMIT.
    """
    log = outcome.log
    if log is None:
        return
    if rows is not None:
        save_log(book, run_id, sync_id, (outcome.model, outcome.sync), rows)
    timings = list(log.timings)
    if log.commit_started:
        seconds = time.monotonic() - log.commit_started
        timings.append(StageTiming(sync_id, outcome.model, outcome.sync, "commit", seconds))
    save_timings(book, run_id, timings)
    save_rates(book, run_id, log.rates)


def save_log(
    book: Bookkeeping,
    run_id: str,
    sync_id: str,
    names: tuple[str, str],
    rows: str,
) -> None:
    """Copy a sync's messages into the log, in one statement.

    `names` are the model's and the sync's; `rows` is a relation with LOG_COLUMNS that
    the book's connection reads (a temp table of the session or of the warehouse).
    """
    model, sync = names
    columns = ", ".join(LOG_COLUMNS)
    book.execute(
        f"INSERT INTO {book.table(MESSAGES)} (run_id, sync_id, model, sync_name, {columns})"
        f" SELECT $1, $2, $3, $4, {columns} FROM {rows}",
        [run_id, sync_id, model, sync],
    )


def patch_rendered(book: Bookkeeping, run_id: str, sync_id: str, rendered: str) -> None:
    """Set the size and value of the messages logged before Liquid rendered them.

    `rendered` is a relation with seq, size and message_value that the book's connection
    reads (message_value NULL when values are not recorded).
    """
    book.execute(
        f"UPDATE {book.table(MESSAGES)} m SET size = r.size, message_value = r.message_value"
        f" FROM {rendered} r WHERE m.run_id = $1 AND m.sync_id = $2 AND m.seq = r.seq",
        [run_id, sync_id],
    )


def mark_undelivered(book: Bookkeeping, run_id: str, sync_id: str, outcomes: str) -> None:
    """Set the outcome of the messages that were logged as delivered before they failed.

    `outcomes` is a relation with seq, outcome and reason that the book's connection reads.
    """
    book.execute(
        f"UPDATE {book.table(MESSAGES)} m SET outcome = o.outcome, reason = o.reason"
        f" FROM {outcomes} o WHERE m.run_id = $1 AND m.sync_id = $2 AND m.seq = o.seq",
        [run_id, sync_id],
    )


def save_timings(
    book: Bookkeeping, run_id: str, timings: Sequence[StageTiming], start: int = 0
) -> None:
    """Record stage timings (a handful per sync); `start` numbers them on from earlier ones."""
    if timings:
        book.execute_many(
            f"INSERT INTO {book.table(TIMINGS)} VALUES ($1, $2, $3, $4, $5, $6, $7)",
            [
                [run_id, t.sync_id, t.model, t.sync, start + i, t.stage, t.seconds]
                for i, t in enumerate(timings)
            ],
        )


def save_rates(book: Bookkeeping, run_id: str, rates: Sequence[Throughput]) -> None:
    """Record a sync's send rate: one row per second of its send."""
    if rates:
        book.execute_many(
            f"INSERT INTO {book.table(RATES)} VALUES ($1, $2, $3, $4)",
            [[run_id, r.sync_id, r.second, r.messages] for r in rates],
        )


def prune(book: Bookkeeping, retention_days: int) -> None:
    """Delete the debugger's records of runs that started before the retention."""
    cutoff = datetime.now(timezone.utc) - timedelta(days=retention_days)
    old = f"SELECT run_id FROM {book.table('runs')} WHERE started_at < $1"
    with book.transaction():  # all or nothing: a failure leaves the connection usable
        for table in TABLES:
            book.execute(f"DELETE FROM {book.table(table)} WHERE run_id IN ({old})", [cutoff])


def sent_messages(book: Bookkeeping, run_id: str, wanted: MessageFilter) -> list[SentMessage]:
    """A run's messages, by model, sync and seq; filtered as asked."""
    where, params = ["run_id = $1"], [run_id]
    for column, value in (("event", wanted.event), ("model", wanted.model)):
        if value is not None:
            params.append(value)
            where.append(f"{column} = ${len(params)}")
    if wanted.key is not None:
        params.append(wanted.key)
        where.append(_key_match(len(params)))
    if wanted.failed_only:
        where.append("outcome <> 'delivered'")
    return _messages(book, " AND ".join(where), params, "model, sync_name, seq", wanted.limit)


def messages_for_key(
    book: Bookkeeping, key: str, *, model: str | None = None, limit: int = 100
) -> list[SentMessage]:
    """Every recorded message of one key (message key or primary key), newest first."""
    where, params = [_key_match(1)], [key]
    if model is not None:
        params.append(model)
        where.append(f"model = ${len(params)}")
    order = "sent_at DESC NULLS LAST, run_id DESC, seq DESC"
    return _messages(book, " AND ".join(where), params, order, limit)


def _key_match(position: int) -> str:
    # The Kafka key (key_column) or the primary key as text: a JSON array when composite.
    return f"(message_key = ${position} OR row_key = ${position})"


def _messages(
    book: Bookkeeping, where: str, params: list[Any], order: str, limit: int
) -> list[SentMessage]:
    params = [*params, limit]
    rows = book.records(
        f"SELECT * FROM {book.table(MESSAGES)} WHERE {where} ORDER BY {order} LIMIT ${len(params)}",
        params,
    )
    return [_sent_message(row) for row in rows]


def _sent_message(row: dict[str, Any]) -> SentMessage:
    return SentMessage(
        run_id=row["run_id"],
        sync_id=row["sync_id"],
        model=row["model"],
        sync=row["sync_name"],
        seq=int(row["seq"]),
        event=row["event"],
        key=row["message_key"],
        row_key=row["row_key"],
        topic=row["topic"],
        partition=_maybe_int(row["message_partition"]),
        offset=_maybe_int(row["message_offset"]),
        size=int(row["size"]),
        outcome=row["outcome"],
        reason=row["reason"],
        value=row["message_value"],
        sent_at=row["sent_at"],
    )


def _maybe_int(value: Any) -> int | None:
    return None if value is None else int(value)


def stage_timings(book: Bookkeeping, run_id: str) -> list[StageTiming]:
    """A run's stage timings, sync by sync, in the order the stages ran."""
    rows = book.records(
        f"SELECT sync_id, model, sync_name, stage, seconds FROM {book.table(TIMINGS)}"
        " WHERE run_id = $1 ORDER BY model, sync_name, position",
        [run_id],
    )
    return [
        StageTiming(r["sync_id"], r["model"], r["sync_name"], r["stage"], float(r["seconds"]))
        for r in rows
    ]


def throughput(book: Bookkeeping, run_id: str) -> list[Throughput]:
    """A run's send rate: messages handed to the producer per second, sync by sync."""
    rows = book.records(
        f"SELECT sync_id, second, messages FROM {book.table(RATES)}"
        " WHERE run_id = $1 ORDER BY sync_id, second",
        [run_id],
    )
    return [Throughput(r["sync_id"], int(r["second"]), int(r["messages"])) for r in rows]
