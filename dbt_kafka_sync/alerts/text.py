"""An alert in words: one title and one body for every channel, so each one reads the same."""

from __future__ import annotations

from collections.abc import Sequence

from dbt_kafka_sync.alerts.decide import Alert, RunFacts
from dbt_kafka_sync.state.history import SyncOutcome

_HEADLINES = {"failure": "FAILED", "failed_rows": "FAILED ROWS", "recovery": "RECOVERED"}


def title(facts: RunFacts, alerts: Sequence[Alert]) -> str:
    """One line: the project, the target and what happened."""
    problems = [alert for alert in alerts if not alert.resolves]
    if any(alert.sync is None for alert in alerts):
        what = "the run failed"
    elif problems:
        what = f"{len(problems)} sync(s) failed"
    else:
        what = f"{len(alerts)} sync(s) recovered"
    return f"dbt-kafka-sync: {what} (project {facts.project}, target {facts.target})"


def sync_name(sync: SyncOutcome) -> str:
    """The model, with the sync's name when the model has several."""
    return sync.model + ("" if sync.sync == "default" else f" [{sync.sync}]")


def counts(sync: SyncOutcome) -> str:
    """What the sync found and what became of its messages."""
    found = sync.counts
    return (
        f"{found.added} added, {found.changed} changed, {found.removed} removed;"
        f" {sync.published} published, {sync.delivered} delivered,"
        f" {sync.failed} failed, {sync.rejected} rejected"
    )


def alert_line(alert: Alert) -> str:
    """One alert as one line: what happened to which sync."""
    headline = _HEADLINES[alert.trigger]
    if alert.sync is None:
        return f"{headline} the run"
    return f"{headline} {sync_name(alert.sync)} -> {alert.sync.topic}: {counts(alert.sync)}"


def body(facts: RunFacts, alerts: Sequence[Alert]) -> str:
    """Every alert with its first reasons, then the run and how to see it."""
    lines: list[str] = []
    for alert in alerts:
        lines.append(alert_line(alert))
        lines += ["    " + reason.replace("\n", "\n    ") for reason in alert.reasons]
    lines.append(f"Run {facts.run_id}: {facts.show_command}")
    return "\n".join(lines)
