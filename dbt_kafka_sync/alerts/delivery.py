"""Whether an alert reached its channel: the record the run summary prints."""

from __future__ import annotations

from dataclasses import dataclass


class DeliveryFailed(Exception):
    """An alert did not reach its channel; the message names the channel, never its secrets."""


@dataclass(frozen=True)
class Delivery:
    """What one channel did with the run's alerts."""

    channel: str  # slack, pagerduty, webhook, email
    ok: bool
    detail: str  # what was sent, or why it was not
