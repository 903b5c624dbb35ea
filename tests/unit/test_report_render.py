"""The results file and the HTML report, from records built by hand (no run, no browser)."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from dbt_kafka_sync.changes.input import ChangeCounts
from dbt_kafka_sync.report.charts import Series, StackedRow, line_chart, stacked_bars
from dbt_kafka_sync.report.data import ReportData
from dbt_kafka_sync.report.html import render_report
from dbt_kafka_sync.report.results import (
    MAX_FAILED_ROWS,
    RESULTS_FILE,
    Invocation,
    results_document,
    write_results,
)
from dbt_kafka_sync.state.history import FailedRow, RunDetails, RunSummary, SyncOutcome
from dbt_kafka_sync.state.message_log import SentMessage, StageTiming, Throughput

STARTED = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
HOSTILE = "<script>alert('x')</script>&\""


def outcome(**changes: object) -> SyncOutcome:
    sync = SyncOutcome("customers", "default", "crm.customers", unique_id="model.p.customers")
    sync.counts = ChangeCounts(3, 2, 1)
    sync.published, sync.delivered = 6, 6
    for name, value in changes.items():
        setattr(sync, name, value)
    return sync


def document(*outcomes: SyncOutcome, status: str = "success") -> dict[str, Any]:
    invocation = Invocation("r1", "run", "dev", {"select": ["customers"]}, STARTED)
    return results_document(invocation, outcomes, status, None, STARTED + timedelta(seconds=2))


def test_results_document_has_one_entry_per_sync_with_its_numbers() -> None:
    sync = outcome(started_at=STARTED, seconds=1.23456)

    found = document(sync)

    assert found["metadata"] == {
        "schema_version": "dbt-kafka-sync/results/v1",
        "dbt_kafka_sync_version": found["metadata"]["dbt_kafka_sync_version"],
        "generated_at": "2026-01-02T03:04:07Z",
        "run_id": "r1",
        "command": "run",
        "target": "dev",
        "args": {"select": ["customers"]},
    }
    assert found["elapsed_time"] == 2.0
    (entry,) = found["results"]
    assert entry["unique_id"] == "model.p.customers"
    assert entry["status"] == "success"
    assert entry["counts"] == {"added": 3, "changed": 2, "removed": 1}
    assert entry["messages"] == {"published": 6, "delivered": 6, "failed": 0, "rejected": 0}
    assert entry["timing"] == {"started_at": "2026-01-02T03:04:05Z", "elapsed_time": 1.235}
    assert entry["failed_rows"] == [] and entry["failed_rows_truncated"] is False


@pytest.mark.parametrize(
    ("changes", "status"),
    [
        ({}, "success"),
        ({"failed": 1}, "partial"),
        ({"error": "topic missing"}, "error"),
        ({"nothing_sent": "initial_sync: skip"}, "skipped"),
        ({"nothing_sent": "initial_sync: skip", "rejected": 1}, "partial"),
    ],
    ids=["success", "partial", "error", "skipped", "skipped-but-rejected"],
)
def test_each_sync_has_its_status(changes: dict[str, object], status: str) -> None:
    (entry,) = document(outcome(**changes))["results"]
    assert entry["status"] == status


def test_failed_rows_are_capped_and_say_so() -> None:
    failures = [FailedRow(str(key), "added", "too large") for key in range(MAX_FAILED_ROWS + 5)]
    sync = outcome(failed=len(failures), failures=failures)

    (entry,) = document(sync, status="failed")["results"]

    assert len(entry["failed_rows"]) == MAX_FAILED_ROWS
    assert entry["failed_rows"][0] == {"key": "0", "event": "added", "reason": "too large"}
    assert entry["failed_rows_truncated"] is True


def test_results_file_is_replaced_whole(tmp_path: Path) -> None:
    write_results(tmp_path / "target", {"status": "old"})

    path = write_results(tmp_path / "target", document(outcome()))

    assert path == tmp_path / "target" / RESULTS_FILE
    assert json.loads(path.read_text())["status"] == "success"
    assert [item.name for item in path.parent.iterdir()] == [RESULTS_FILE]  # no temp file left


def report(sync: SyncOutcome, **lists: object) -> str:
    run = RunSummary("r1", "run", "dev", STARTED, STARTED, "failed", None, 6, 1, 0)
    return render_report(ReportData(RunDetails(run, [sync]), STARTED, **lists))  # type: ignore[arg-type]


def message(key: str, value: str | None, outcome: str = "delivered") -> SentMessage:
    return SentMessage(
        "r1", "dev:model.p.customers:default", "customers", "default", 0, "added", key,
        "crm.customers", 0, 7, len(value or ""), outcome, None, value, STARTED,
    )  # fmt: skip


def test_user_data_is_escaped_everywhere() -> None:
    sync = outcome(
        model=HOSTILE,
        failed=1,
        failures=[FailedRow(HOSTILE, "added", HOSTILE)],
        error=HOSTILE,
    )
    page = report(sync, messages=[message(HOSTILE, HOSTILE)])

    assert "alert('x')</script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;&quot;" in page
    assert len(re.findall("<script>", page)) == 2  # the error recorder and the key filter


def test_the_page_shows_the_run_numbers() -> None:
    page = report(outcome(failed=1, failures=[FailedRow("42", "changed", "timed out")]))

    assert '<b data-total="delivered">6</b>' in page
    assert '<td class="n" data-field="removed">1</td>' in page
    assert '<tr data-key="42">' in page and "timed out" in page


def test_the_page_draws_stage_times_and_send_rate() -> None:
    sync_id = "dev:model.p.customers:default"
    page = report(
        outcome(),
        timings=[StageTiming(sync_id, "customers", "default", "send", 1.5)],
        throughput=[Throughput(sync_id, 0, 900), Throughput(sync_id, 1, 1200)],
    )

    assert "customers: send 1.50 s" in page
    assert "customers: 1,200 messages/s at 1 s" in page


def test_charts_without_data_say_so() -> None:
    assert "nothing recorded" in stacked_bars([], ["a"], "s")
    assert "nothing recorded" in line_chart([Series("x", [])], "s", "messages/s")


def test_chart_labels_are_escaped() -> None:
    svg = stacked_bars([StackedRow(HOSTILE, [1.0])], [HOSTILE], "rows")
    assert "<script>" not in svg and "&lt;script&gt;" in svg


def test_a_skipped_sync_says_why() -> None:
    reason = "its last dbt run ended in error: Runtime Error in model customers"
    page = report(outcome(published=0, delivered=0, skipped=reason))

    assert '<td class="status-skipped">skipped</td>' in page
    assert f'<td data-field="error">{reason}</td>' in page
