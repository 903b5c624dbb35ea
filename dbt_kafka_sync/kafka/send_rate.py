"""When a sync's messages were handed to the producer: its send rate, and its send and flush times.

The send loop ticks every POLL_EVERY messages and after each batch, so the cost is one
clock read per thousand messages, and the rate is exact to that many messages.
"""

from __future__ import annotations

import time
from array import array


class SendClock:
    """Ticks of (time, messages handed to the producer so far) for one sync's send."""

    def __init__(self) -> None:
        self.started = 0.0  # monotonic time of the first batch, 0 before it
        self.sent = 0.0  # the last message was handed over; the flush begins
        self.flushed = 0.0  # every message delivered or failed
        self._times = array("d")
        self._counts = array("q")

    def start(self) -> None:
        """The first batch is here: the send begins (once)."""
        if not self.started:
            self.started = time.monotonic()

    def tick(self, produced: int) -> None:
        """Note how many messages were handed to the producer by now."""
        self._times.append(time.monotonic())
        self._counts.append(produced)

    def per_second(self) -> list[tuple[int, int]]:
        """(second since the first batch, messages handed over in it); idle seconds left out."""
        buckets: dict[int, int] = {}
        before = 0
        for at, produced in zip(self._times, self._counts, strict=True):
            if produced > before:
                second = int(at - self.started)
                buckets[second] = buckets.get(second, 0) + produced - before
                before = produced
        return sorted(buckets.items())
