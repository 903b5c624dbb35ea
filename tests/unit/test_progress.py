"""A long sync says how far it has come."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterator
from typing import TextIO

import pytest
from terminal import open_terminal, read_pending, screen

from dbt_kafka_sync.kafka.progress import Progress, bar_line


def test_progress_names_the_sync_the_count_and_the_share(caplog: pytest.LogCaptureFixture) -> None:
    progress = Progress("customers -> crm.customers", 1_000_000, every_s=0)
    with caplog.at_level(logging.INFO, logger="dbt_kafka_sync"):
        progress(250_000)

    [record] = caplog.records
    assert record.getMessage().startswith(
        "customers -> crm.customers: 250,000 of 1,000,000 messages sent (25%), "
    )
    assert record.getMessage().endswith(" msg/s")


def test_progress_stays_quiet_between_reports(caplog: pytest.LogCaptureFixture) -> None:
    progress = Progress("orders -> t", 10, every_s=3600)
    with caplog.at_level(logging.INFO, logger="dbt_kafka_sync"):
        progress(5)

    assert caplog.records == []


@pytest.fixture
def terminal() -> Iterator[tuple[TextIO, int]]:
    """A real pseudo-terminal: the stream the bar writes to, and the fd to read it from."""
    reader, writer = open_terminal()
    stream = os.fdopen(writer, "w")
    try:
        yield stream, reader
    finally:
        stream.close()
        os.close(reader)


def test_on_a_terminal_a_bar_is_redrawn_in_place_and_never_shares_a_line_with_a_log(
    terminal: tuple[TextIO, int],
) -> None:
    stream, reader = terminal
    handler = logging.StreamHandler(stream)
    logging.getLogger().addHandler(handler)
    try:
        with Progress("customers -> crm", 1_000, stream=stream) as progress:
            progress(250)  # the first batch is drawn at once
            logging.getLogger("dbt_kafka_sync.test").warning("a warning in the middle")
            progress.every_s = 0  # each later batch redrawn (the real pace is REDRAW_S)
            progress(600)
            progress(1_000)
        logging.getLogger("dbt_kafka_sync.test").warning("after the sync")
    finally:
        logging.getLogger().removeHandler(handler)

    output = read_pending(reader)
    assert "\r" in output  # redrawn in place, not one line per redraw
    shown = screen(output)
    assert shown[0] == "a warning in the middle"
    assert shown[1].startswith("customers -> crm [" + "#" * 30 + "] 100% 1,000/1,000 msg, ")
    assert shown[1].endswith(" msg/s, ETA 0:00:00")
    assert shown[2:] == ["after the sync"]  # the bar ended its line


@pytest.mark.parametrize(
    ("columns", "expected"),
    [
        (100, f"orders -> t [{'#' * 15}{'.' * 15}]  50% 500/1,000 msg, 250 msg/s, ETA 0:00:02"),
        (68, f"orders -> t [{'#' * 5}{'.' * 5}]  50% 500/1,000 msg, 250 msg/s, ETA 0:00:02"),
        (63, f"orders [{'#' * 5}{'.' * 5}]  50% 500/1,000 msg, 250 msg/s, ETA 0:00:02"),
    ],
    ids=["wide", "narrow-bar", "cut-label"],
)
def test_the_bar_fits_the_line(columns: int, expected: str) -> None:
    line = bar_line("orders -> t", 500, 1_000, 250.0, columns)
    assert line == expected
    assert len(line) < columns


def test_without_a_terminal_nothing_is_drawn(caplog: pytest.LogCaptureFixture) -> None:
    stream = io.StringIO()
    with (
        caplog.at_level(logging.INFO, logger="dbt_kafka_sync"),
        Progress("orders -> t", 10, every_s=0, stream=stream) as progress,
    ):
        progress(5)
    assert stream.getvalue() == ""
    assert next(r.getMessage() for r in caplog.records).startswith("orders -> t: 5 of 10")
