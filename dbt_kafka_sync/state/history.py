"""The run history: each run, each sync's outcome in it, and the rows that failed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from dbt_kafka_sync.changes.input import ChangeCounts
from dbt_kafka_sync.state.message_log import SentLog
from dbt_kafka_sync.state.tables import Bookkeeping

MAX_RECORDED_ROWS = 1_000  # failed rows kept per sync and run; the counts are always exact


@dataclass(frozen=True)
class FailedRow:
    """A row that did not reach Kafka, as the run summary and history name it."""

    row_key: str | None
    event: str
    reason: str


@dataclass(frozen=True)
class Sample:
    """A message as `plan` shows it: its value, or why it could not be sent."""

    event: str
    key: str | None
    value: str | None


@dataclass
class SyncOutcome:
    """What one sync of a run did: printed in the summary, kept in the run history."""

    model: str
    sync: str
    topic: str
    counts: ChangeCounts = field(default_factory=ChangeCounts)
    published: int = 0
    delivered: int = 0
    failed: int = 0
    rejected: int = 0
    failures: list[FailedRow] = field(default_factory=list)  # stored: MAX_RECORDED_ROWS
    rejected_examples: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)  # `plan` only
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    skipped: str | None = None  # why it was left out (its state kept as it was)
    unique_id: str = ""  # the model's; not kept in the history
    nothing_sent: str | None = None  # why nothing was sent on purpose (initial_sync: skip)
    # A template sync: "DuckDB", or "Liquid: <why DuckDB cannot build its messages>".
    template_builder: str | None = None
    started_at: datetime | None = None  # when the sync began, in this process only
    seconds: float | None = None  # how long it took, in this process only
    log: SentLog | None = None  # the debugger's records, written with the commit

    @property
    def ok(self) -> bool:
        """True when every message was delivered and no row was rejected."""
        return self.error is None and self.failed == 0 and self.rejected == 0

    @property
    def status(self) -> str:
        """`success`, `partial` (some rows failed or were rejected), `error` or `skipped`."""
        if self.error is not None:
            return "error"
        if self.skipped is not None:
            return "skipped"
        return "success" if self.ok else "partial"

    @property
    def result_status(self) -> str:
        """The status, or `skipped` for a sync that sent nothing on purpose."""
        return "skipped" if self.nothing_sent and self.status == "success" else self.status

    def message_counts(self) -> dict[str, int]:
        """The messages published, delivered and failed, and the rows rejected."""
        return {
            "published": self.published,
            "delivered": self.delivered,
            "failed": self.failed,
            "rejected": self.rejected,
        }

    def recorded_failures(self) -> list[FailedRow]:
        """The failed rows the history keeps: failed messages, then rejected rows."""
        rejected = [
            FailedRow(None, "rejected", f"primary key is NULL: {example}")
            for example in self.rejected_examples
        ]
        return (self.failures + rejected)[:MAX_RECORDED_ROWS]


@dataclass(frozen=True)
class RunSummary:
    """One run of the history with its totals."""

    run_id: str
    command: str
    target: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    error: str | None
    delivered: int
    failed: int
    rejected: int


@dataclass(frozen=True)
class RunDetails:
    """One run and the outcome of each of its syncs, with (some of) the rows that failed."""

    run: RunSummary
    syncs: list[SyncOutcome]


def begin_run(book: Bookkeeping, run_id: str, command: str, target: str) -> None:
    """Record a run as started; mark runs that never finished as interrupted.

    This run holds the state's lock, so any other run still `running` was killed.
    """
    runs = book.table("runs")
    book.execute(f"UPDATE {runs} SET status = 'interrupted' WHERE status = 'running'")
    book.execute(
        f"INSERT INTO {runs} (run_id, command, target, started_at, status)"
        " VALUES ($1, $2, $3, now(), 'running')",
        [run_id, command, target],
    )


def finish_run(book: Bookkeeping, run_id: str, status: str, error: str | None) -> None:
    """Record how a run ended."""
    book.execute(
        f"UPDATE {book.table('runs')} SET finished_at = now(), status = $1, error = $2"
        " WHERE run_id = $3",
        [status, error, run_id],
    )


def record_outcome(book: Bookkeeping, run_id: str, sync_id: str, outcome: SyncOutcome) -> None:
    """Write one sync's line of the run history and its failed rows."""
    counts = outcome.counts
    book.execute(
        f"INSERT INTO {book.table('run_syncs')} VALUES"
        " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        [
            run_id,
            sync_id,
            outcome.model,
            outcome.sync,
            outcome.topic,
            counts.added,
            counts.changed,
            counts.removed,
            outcome.published,
            outcome.delivered,
            outcome.failed,
            outcome.rejected,
            outcome.status,
            outcome.error if outcome.skipped is None else outcome.skipped,  # the why, either way
        ],
    )
    failures = outcome.recorded_failures()  # at most MAX_RECORDED_ROWS
    if failures:
        book.execute_many(
            f"INSERT INTO {book.table('failed_rows')} VALUES ($1, $2, $3, $4, $5, $6)",
            [
                [run_id, sync_id, outcome.model, row.row_key, row.event, row.reason]
                for row in failures
            ],
        )


def previous_statuses(book: Bookkeeping, target: str, run_id: str) -> dict[tuple[str, str], str]:
    """Each (model, sync) of the target's earlier runs: its status in the latest of them.

    Runs that skipped the sync (dbt did not build its model) say nothing of its health.
    """
    query = f"""
        SELECT model, sync_name, status FROM (
            SELECT s.model, s.sync_name, s.status, row_number() OVER (
                PARTITION BY s.sync_id ORDER BY r.started_at DESC, r.run_id DESC) AS newest
            FROM {book.table("run_syncs")} s JOIN {book.table("runs")} r ON r.run_id = s.run_id
            WHERE r.target = $1 AND r.run_id <> $2 AND r.command = 'run'
              AND s.status <> 'skipped'
        ) latest
        WHERE newest = 1
    """
    return {
        (row["model"], row["sync_name"]): row["status"]
        for row in book.records(query, [target, run_id])
    }


def _runs_query(book: Bookkeeping, where: str) -> str:
    return f"""
        SELECT r.run_id, r.command, r.target, r.started_at, r.finished_at, r.status, r.error,
               COALESCE(sum(s.delivered), 0) AS delivered, COALESCE(sum(s.failed), 0) AS failed,
               COALESCE(sum(s.rejected), 0) AS rejected
        FROM {book.table("runs")} r LEFT JOIN {book.table("run_syncs")} s
          ON s.run_id = r.run_id
        {where}
        GROUP BY r.run_id, r.command, r.target, r.started_at, r.finished_at, r.status, r.error
    """


def recent_runs(book: Bookkeeping, limit: int) -> list[RunSummary]:
    """The latest runs with their totals, newest first."""
    query = _runs_query(book, "") + " ORDER BY r.started_at DESC LIMIT $1"
    return [_summary(row) for row in book.records(query, [limit])]


def run_details(book: Bookkeeping, run_id: str, max_rows: int) -> RunDetails | None:
    """One run, its syncs and up to max_rows of its failed rows; None for an unknown run."""
    runs = book.records(_runs_query(book, "WHERE r.run_id = $1"), [run_id])
    if not runs:
        return None
    syncs = {
        row["sync_id"]: _outcome(row)
        for row in book.records(
            f"SELECT * FROM {book.table('run_syncs')} WHERE run_id = $1 ORDER BY model, sync_name",
            [run_id],
        )
    }
    failed_rows = book.records(
        f"SELECT * FROM {book.table('failed_rows')} WHERE run_id = $1"
        " ORDER BY model, row_key LIMIT $2",
        [run_id, max_rows],
    )
    for row in failed_rows:
        if row["sync_id"] in syncs:
            failure = FailedRow(row["row_key"], row["event"], row["error"])
            syncs[row["sync_id"]].failures.append(failure)
    return RunDetails(_summary(runs[0]), list(syncs.values()))


def _summary(row: dict[str, Any]) -> RunSummary:
    totals = {name: int(row[name]) for name in ("delivered", "failed", "rejected")}
    return RunSummary(**{**row, **totals})


def _outcome(row: dict[str, Any]) -> SyncOutcome:
    return SyncOutcome(
        model=row["model"],
        sync=row["sync_name"],
        topic=row["topic"],
        counts=ChangeCounts(row["added"], row["changed"], row["removed"]),
        published=row["published"],
        delivered=row["delivered"],
        failed=row["failed"],
        rejected=row["rejected"],
        error=None if row["status"] == "skipped" else row["error"],
        skipped=row["error"] if row["status"] == "skipped" else None,
    )
