"""Progress of a long sync, so that a large backfill is never silent.

On a terminal (stderr is a TTY) a bar is redrawn in place a few times a second; elsewhere
(CI logs) a line is logged every few seconds, since redrawn lines would only pile up there.
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
from types import TracebackType
from typing import TextIO

log = logging.getLogger("dbt_kafka_sync.sync")

EVERY_S = 10.0  # between log lines
REDRAW_S = 0.25  # between redraws of the bar
BAR_WIDTH = 30
MIN_BAR_WIDTH = 10
CLEAR_LINE = "\r\x1b[K"


class Progress:
    """Counts the messages handed to the producer and shows how far a sync has come.

    Use it as a context manager: on a terminal, leaving it draws the bar's last state and
    ends its line.
    """

    def __init__(
        self, label: str, total: int, every_s: float = EVERY_S, stream: TextIO | None = None
    ) -> None:
        self.label = label
        self.total = total
        self.stream = stream or sys.stderr
        self.live = total > 0 and _is_terminal(self.stream)
        self.every_s = REDRAW_S if self.live else every_s
        self.started = time.monotonic()
        self.sent = 0
        self._next_report = self.started if self.live else self.started + every_s
        self._bar_shown = False
        self._guard = _ClearBeforeLogging(self)

    def __enter__(self) -> Progress:
        if self.live:
            self._guard.install()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not self.live:
            return
        self._guard.remove()
        self._draw(time.monotonic())
        self.stream.write("\n")
        self.stream.flush()

    def __call__(self, sent: int) -> None:
        """Called after each batch with the messages sent so far."""
        self.sent = sent
        now = time.monotonic()
        if now < self._next_report:
            return
        self._next_report = now + self.every_s
        if self.live:
            self._draw(now)
        else:
            self._log(now)

    def clear(self) -> None:
        """Take the bar off its line, for a log line to be written there."""
        if self._bar_shown:
            self.stream.write(CLEAR_LINE)
            self.stream.flush()
            self._bar_shown = False

    def _log(self, now: float) -> None:
        share = f" ({self.sent / self.total:.0%})" if self.total else ""
        log.info(
            "%s: %s of %s messages sent%s, %s msg/s",
            self.label,
            f"{self.sent:,}",
            f"{self.total:,}",
            share,
            f"{self._rate(now):,.0f}",
        )

    def _draw(self, now: float) -> None:
        line = bar_line(self.label, self.sent, self.total, self._rate(now), _columns(self.stream))
        self.stream.write(CLEAR_LINE + line)
        self.stream.flush()
        self._bar_shown = True

    def _rate(self, now: float) -> float:
        return self.sent / max(now - self.started, 1e-9)


def bar_line(label: str, sent: int, total: int, rate: float, columns: int = 80) -> str:
    """`label [#####.....]  50% 500/1,000 msg, 250 msg/s, ETA 0:00:02`, within `columns`.

    The bar narrows, then the label is cut, so that the line never wraps (a wrapped line
    could not be redrawn in place).
    """
    share = min(sent / total, 1.0) if total else 1.0
    eta = _duration((total - sent) / rate) if rate > 0 else "-"
    figures = f"] {share:4.0%} {sent:,}/{total:,} msg, {rate:,.0f} msg/s, ETA {eta}"
    room = columns - 1 - len(figures) - 2  # the last column wraps; " [" before the bar
    width = max(MIN_BAR_WIDTH, min(BAR_WIDTH, room - len(label)))
    label = label[: max(room - width, 0)]
    filled = round(share * width)
    return f"{label} [{'#' * filled}{'.' * (width - filled)}{figures}"[: columns - 1]


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _columns(stream: TextIO) -> int:
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (OSError, ValueError):
        columns = 0
    return columns or shutil.get_terminal_size().columns  # 0 when the terminal tells none


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or file-less stream
        return False


class _ClearBeforeLogging(logging.Filter):
    """Clears the bar before any log line is written, so that the two never share a line.

    A handler's filters run just before it writes; the bar is drawn again on the next batch.
    """

    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress
        self.handlers: list[logging.Handler] = []

    def filter(self, record: logging.LogRecord) -> bool:
        self.progress.clear()
        return True

    def install(self) -> None:
        self.handlers = list(logging.getLogger().handlers)
        for handler in self.handlers:
            handler.addFilter(self)

    def remove(self) -> None:
        for handler in self.handlers:
            handler.removeFilter(self)
