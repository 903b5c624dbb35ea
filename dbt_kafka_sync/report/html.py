"""The run report: one self-contained HTML page (inline CSS, SVG and script) for a run.

A pure function of ReportData. Keys, values, model names and errors are user data:
every one goes through `escape`; no data ever goes into the script.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import asdict
from datetime import datetime
from html import escape
from importlib.resources import files

from dbt_kafka_sync.report.charts import Series, StackedRow, line_chart, stacked_bars
from dbt_kafka_sync.report.data import ReportData
from dbt_kafka_sync.state.history import FailedRow, RunSummary, SyncOutcome
from dbt_kafka_sync.state.message_log import SentMessage

EVENTS = ("added", "changed", "removed")
MAX_VALUE_CHARS = 1_000  # of a message's value in the sample table
# Records a script error into the page, where a headless browser's DOM dump shows it.
ERROR_RECORDER = (
    "window.onerror=function(message,source,line){var page=document.documentElement;"
    "page.setAttribute('data-js-errors',(page.getAttribute('data-js-errors')||'')"
    "+message+' (line '+line+')\\n');};"
)


def render_report(data: ReportData) -> str:
    """The whole page."""
    run = data.details.run
    body = [
        _header(run, data.generated_at),
        _totals(data.details.syncs),
        _section("Syncs", _syncs_table(data.details.syncs)),
        _section("Events per kind", _events_chart(data.details.syncs)),
        _section("Time per stage (seconds)", _stages_chart(data)),
        _section("Messages per second", _throughput_chart(data)),
        _search(),
        _section("Failed rows", _failed_table(data.details.syncs)),
        _section("Messages (a sample)", _messages_table(data.messages)),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>dbt-kafka-sync run {escape(run.run_id)}</title>"
        f"<script>{ERROR_RECORDER}</script><style>{_asset('page.css')}</style></head>"
        f"<body>{''.join(body)}<script>{_asset('page.js')}</script></body></html>\n"
    )


def sync_label(model: str, sync: str) -> str:
    """How the report names a sync: the model, and the sync's name unless `default`."""
    return model if sync == "default" else f"{model} [{sync}]"


def _asset(name: str) -> str:
    return files("dbt_kafka_sync.report").joinpath(name).read_text(encoding="utf-8")


def _header(run: RunSummary, generated_at: datetime) -> str:
    finished = f"{run.finished_at:%Y-%m-%d %H:%M:%S}" if run.finished_at else "-"
    took = ""
    if run.finished_at is not None:
        took = f", took {(run.finished_at - run.started_at).total_seconds():.1f} s"
    error = f'<p class="error" data-field="run-error">{escape(run.error)}</p>' if run.error else ""
    return (
        f"<h1>Run {escape(run.run_id)}</h1>"
        f'<p class="meta">{escape(run.command)}, target {escape(run.target)}: '
        f'<b class="status-{escape(run.status)}" data-field="run-status">{escape(run.status)}</b>'
        f" &middot; started {run.started_at:%Y-%m-%d %H:%M:%S}, finished {finished}{took}"
        f" (UTC) &middot; report made {generated_at:%Y-%m-%d %H:%M:%S}</p>{error}"
    )


def _numbers(sync: SyncOutcome) -> dict[str, int]:
    return {**asdict(sync.counts), **sync.message_counts()}


def _totals(syncs: Sequence[SyncOutcome]) -> str:
    totals = dict.fromkeys(_numbers(SyncOutcome("", "", "")), 0)
    for sync in syncs:
        for name, value in _numbers(sync).items():
            totals[name] += value
    cards = "".join(
        f'<div><b data-total="{name}">{value:,}</b>{name}</div>' for name, value in totals.items()
    )
    return f'<div class="totals">{cards}</div>'


def _section(title: str, content: str) -> str:
    return f"<h2>{escape(title)}</h2>{content}"


def _table(headings: Sequence[str], rows: Iterable[str], numeric: set[str]) -> str:
    head = "".join(
        f'<th class="n">{escape(name)}</th>' if name in numeric else f"<th>{escape(name)}</th>"
        for name in headings
    )
    body = "".join(rows)
    if not body:
        return '<p class="empty">none</p>'
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: object, field: str = "", numeric: bool = False) -> str:
    text = "" if value is None else f"{value:,}" if isinstance(value, int) else str(value)
    attributes = (' class="n"' if numeric else "") + (f' data-field="{field}"' if field else "")
    return f"<td{attributes}>{escape(text)}</td>"


def _syncs_table(syncs: Sequence[SyncOutcome]) -> str:
    rows = []
    for sync in syncs:
        numbers = _numbers(sync)
        rows.append(
            f'<tr data-sync="{escape(sync_label(sync.model, sync.sync))}">'
            + _cell(sync_label(sync.model, sync.sync))
            + _cell(sync.topic)
            + f'<td class="status-{escape(sync.status)}">{escape(sync.status)}</td>'
            + "".join(_cell(value, name, numeric=True) for name, value in numbers.items())
            + _cell(sync.error or sync.skipped or sync.nothing_sent, "error")
            + "</tr>"
        )
    numeric = list(_numbers(SyncOutcome("", "", "")))
    return _table(["sync", "topic", "status", *numeric, "error or reason"], rows, set(numeric))


def _events_chart(syncs: Sequence[SyncOutcome]) -> str:
    rows = [
        StackedRow(
            sync_label(sync.model, sync.sync),
            (sync.counts.added, sync.counts.changed, sync.counts.removed),
        )
        for sync in syncs
    ]
    return stacked_bars(rows, EVENTS, "rows")


def _stages_chart(data: ReportData) -> str:
    stages = list(dict.fromkeys(timing.stage for timing in data.timings))
    seconds: dict[str, dict[str, float]] = {}
    for timing in data.timings:
        by_stage = seconds.setdefault(sync_label(timing.model, timing.sync), {})
        by_stage[timing.stage] = by_stage.get(timing.stage, 0.0) + timing.seconds
    rows = [
        StackedRow(label, [by_stage.get(stage, 0.0) for stage in stages])
        for label, by_stage in seconds.items()
    ]
    return stacked_bars(rows, stages, "s")


def _throughput_chart(data: ReportData) -> str:
    labels = {timing.sync_id: sync_label(timing.model, timing.sync) for timing in data.timings}
    labels |= {
        message.sync_id: sync_label(message.model, message.sync) for message in data.messages
    }
    points: dict[str, list[tuple[float, float]]] = {}
    for second in sorted(data.throughput, key=lambda item: item.second):
        points.setdefault(second.sync_id, []).append((second.second, second.messages))
    series = [Series(labels.get(sync_id, sync_id), line) for sync_id, line in points.items()]
    return line_chart(series, "s", "messages/s")


def _search() -> str:
    return (
        '<h2>Find a key</h2><p class="search"><label>Key contains '
        '<input id="key-search" type="search" autocomplete="off"></label> '
        '<span id="key-count"></span></p>'
    )


def _failed_table(syncs: Sequence[SyncOutcome]) -> str:
    def row(sync: SyncOutcome, failed: FailedRow) -> str:
        return (
            f'<tr data-key="{escape(failed.row_key or "")}">'
            + _cell(sync_label(sync.model, sync.sync))
            + _cell(failed.row_key, "key")
            + _cell(failed.event)
            + _cell(failed.reason, "reason")
            + "</tr>"
        )

    rows = [row(sync, failed) for sync in syncs for failed in sync.recorded_failures()]
    return _table(["sync", "key", "event", "reason"], rows, set())


def _messages_table(messages: Sequence[SentMessage]) -> str:
    def row(message: SentMessage) -> str:
        value = message.value
        if value is not None and len(value) > MAX_VALUE_CHARS:
            value = value[:MAX_VALUE_CHARS] + "…"
        shown = "null (tombstone or not recorded)" if value is None else value
        return (
            f'<tr data-key="{escape(message.key or message.row_key or "")}">'
            + _cell(sync_label(message.model, message.sync))
            + _cell(message.seq, numeric=True)
            + _cell(message.event)
            + _cell(message.key, "key")
            + _cell(message.topic)
            + _cell(message.partition, numeric=True)
            + _cell(message.offset, numeric=True)
            + _cell(message.outcome)
            + _cell(message.reason, "reason")
            + f'<td data-field="value"><code>{escape(shown)}</code></td></tr>'
        )

    headings = ["sync", "seq", "event", "key", "topic", "partition", "offset", "outcome"]
    return _table(
        [*headings, "reason", "value"], map(row, messages), {"seq", "partition", "offset"}
    )
