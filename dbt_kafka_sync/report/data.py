"""Everything the HTML report shows of one run, gathered before it is drawn."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from dbt_kafka_sync.state.history import RunDetails
from dbt_kafka_sync.state.message_log import SentMessage, StageTiming, Throughput


@dataclass(frozen=True)
class ReportData:
    """One run: its history and what the message log recorded of it.

    Attributes:
        details: the run, each sync's outcome and (some of) the rows that failed.
        messages: a sample of the messages sent, failed ones first.
        timings: each sync's time per stage.
        throughput: messages handed to the producer per second, per sync.
        generated_at: when the report was made.
    """

    details: RunDetails
    generated_at: datetime
    messages: Sequence[SentMessage] = ()
    timings: Sequence[StageTiming] = ()
    throughput: Sequence[Throughput] = ()
