"""What a recovery is measured by: each sync's status in its target's previous run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from dbt_kafka_sync.state import history
from dbt_kafka_sync.state.history import SyncOutcome
from dbt_kafka_sync.state.local_file import local_bookkeeping, open_state
from dbt_kafka_sync.state.tables import Bookkeeping


@pytest.fixture
def book(tmp_path: Path) -> Iterator[Bookkeeping]:
    connection = duckdb.connect()
    open_state(connection, tmp_path / "state.duckdb", read_only=False)
    yield local_bookkeeping(connection)
    connection.close()


def record(book: Bookkeeping, run_id: str, target: str, **statuses: str) -> None:
    history.begin_run(book, run_id, "run", target)
    for model, status in statuses.items():
        outcome = SyncOutcome(model, "default", "t", error="boom" if status == "error" else None)
        outcome.skipped = "its last dbt run ended in error" if status == "skipped" else None
        assert outcome.status == status
        history.record_outcome(book, run_id, f"{target}:{model}", outcome)
    history.finish_run(book, run_id, "success", None)


def test_the_latest_earlier_run_of_the_same_target_counts(book: Bookkeeping) -> None:
    record(book, "20260101T000001-aaaaaa", "dev", customers="error", orders="error")
    record(book, "20260101T000002-bbbbbb", "dev", customers="success")
    record(book, "20260101T000003-cccccc", "prod", customers="error")
    history.begin_run(book, "20260101T000004-dddddd", "run", "dev")  # the run asking

    found = history.previous_statuses(book, "dev", "20260101T000004-dddddd")

    assert found == {("customers", "default"): "success", ("orders", "default"): "error"}


def test_a_first_run_has_no_previous_status(book: Bookkeeping) -> None:
    history.begin_run(book, "20260101T000001-aaaaaa", "run", "dev")
    assert history.previous_statuses(book, "dev", "20260101T000001-aaaaaa") == {}


def test_a_run_that_skipped_the_sync_does_not_count(book: Bookkeeping) -> None:
    record(book, "20260101T000001-aaaaaa", "dev", customers="error")
    record(book, "20260101T000002-bbbbbb", "dev", customers="skipped")  # dbt did not build it
    history.begin_run(book, "20260101T000003-cccccc", "run", "dev")

    found = history.previous_statuses(book, "dev", "20260101T000003-cccccc")

    assert found == {("customers", "default"): "error"}  # its recovery is still to come
