"""What the debugger keeps of a run: the messages sent, each stage's time, the send rate."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class SentMessage:
    """One message of a run as the debugger recorded it.

    Attributes:
        seq: the message's place in its sync's run (0, 1, ...).
        partition: the partition chosen or reported; None when the producer placed the key
            and did not report where.
        offset: the offset the broker gave it, when the producer reported it.
        size: the value's length in bytes (0 for a tombstone).
        outcome: `delivered`, `failed` (the broker or client gave up) or `refused` (never
            sent: a template error, a NULL topic, a partition out of range...).
        value: the message's value; None when recording values is switched off (PII) or
            for a tombstone.
        row_key: the row's primary key as text (a JSON array for a composite key).
    """

    run_id: str
    sync_id: str
    model: str
    sync: str
    seq: int
    event: str
    key: str | None
    topic: str | None
    partition: int | None
    offset: int | None
    size: int
    outcome: str
    reason: str | None
    value: str | None
    sent_at: datetime | None
    row_key: str | None = None


@dataclass(frozen=True)
class StageTiming:
    """How long one stage of a sync took (diff, render, send, flush, commit...)."""

    sync_id: str
    model: str
    sync: str
    stage: str
    seconds: float


@dataclass(frozen=True)
class Throughput:
    """Messages a sync handed to the producer in one second of its send."""

    sync_id: str
    second: int  # since the sync's first message
    messages: int


@dataclass
class SentLog:
    """A sync's debugger records as its commit writes them into the state.

    Attributes:
        rows: a relation of the run's session holding the messages with their outcome
            (state.debugger.LOG_COLUMNS); None when the sync recorded none.
        timings: the stages so far; the commit adds its own.
        rates: the send rate, second by second.
        commit_started: monotonic time the commit began, to time it.
        undelivered: the messages not delivered, as a pyarrow table of seq, outcome and
            reason (for a log written before the deliveries were known); None when none.
        rendered: the messages Liquid rendered in a template DuckDB builds but for a few
            rows, as a pyarrow table of seq, size and message_value, for a log written
            before the deliveries were known (`rows` has them already); None otherwise.
    """

    rows: str | None = None
    timings: list[StageTiming] = field(default_factory=list)
    rates: list[Throughput] = field(default_factory=list)
    commit_started: float = 0.0
    undelivered: Any = None
    rendered: Any = None


@dataclass(frozen=True)
class MessageFilter:
    """Which of a run's recorded messages to list, by model, sync and seq.

    `key` matches the message key or the primary key as text (a JSON array of the values
    as text for a composite key); `failed_only` keeps failed and refused ones.
    """

    key: str | None = None
    event: str | None = None
    failed_only: bool = False
    model: str | None = None
    limit: int = 100
