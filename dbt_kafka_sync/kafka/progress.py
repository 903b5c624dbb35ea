"""Progress of a long sync, logged every few seconds so a large backfill is never silent."""

from __future__ import annotations

import logging
import time

log = logging.getLogger("dbt_kafka_sync.sync")

EVERY_S = 10.0


class Progress:
    """Counts the messages handed to the producer and logs how far a sync has come."""

    def __init__(self, label: str, total: int, every_s: float = EVERY_S) -> None:
        self.label = label
        self.total = total
        self.every_s = every_s
        self.started = time.monotonic()
        self._next_report = self.started + every_s

    def __call__(self, sent: int) -> None:
        """Called after each batch with the messages sent so far."""
        now = time.monotonic()
        if now < self._next_report:
            return
        self._next_report = now + self.every_s
        rate = sent / (now - self.started)
        share = f" ({sent / self.total:.0%})" if self.total else ""
        log.info(
            "%s: %s of %s messages sent%s, %s msg/s",
            self.label,
            f"{sent:,}",
            f"{self.total:,}",
            share,
            f"{rate:,.0f}",
        )
