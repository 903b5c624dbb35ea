"""PagerDuty Events API v2: one event per alert, `trigger` for a problem, `resolve` after it.

A sync's trigger and its later recovery share a dedup_key (decide.dedup_key), so the
resolve closes the incident the trigger opened.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dbt_kafka_sync.alerts import text
from dbt_kafka_sync.alerts.decide import Alert, RunFacts
from dbt_kafka_sync.alerts.http import json_body, post
from dbt_kafka_sync.config.alerts import PagerDutyChannel

NAME = "PagerDuty"
MAX_SUMMARY_CHARS = 1024  # the Events API's limit


def event(channel: PagerDutyChannel, facts: RunFacts, alert: Alert) -> dict[str, Any]:
    """The Events API v2 body of one alert (the routing key included)."""
    base = {
        "routing_key": channel.routing_key.get_secret_value(),
        "dedup_key": alert.dedup_key,
    }
    if alert.resolves:
        return {**base, "event_action": "resolve"}
    line = text.alert_line(alert)
    summary = f"{facts.project}/{facts.target}: {line}"[:MAX_SUMMARY_CHARS]
    return {
        **base,
        "event_action": "trigger",
        "payload": {
            "summary": summary,
            "source": f"dbt-kafka-sync/{facts.project}/{facts.target}",
            "severity": channel.severity,
            "component": alert.sync.model if alert.sync else "run",
            "group": facts.project,
            "class": alert.trigger,
            "custom_details": {
                "run_id": facts.run_id,
                "show_command": facts.show_command,
                "reasons": list(alert.reasons),
                "details": text.body(facts, [alert]),
            },
        },
    }


def send(
    channel: PagerDutyChannel, facts: RunFacts, alerts: Sequence[Alert], timeout: float
) -> str:
    """Send one event per alert, in order; return what was sent, for the summary."""
    for alert in alerts:
        post(channel.events_url, json_body(event(channel, facts, alert)), NAME, timeout)
    resolved = sum(alert.resolves for alert in alerts)
    return f"{len(alerts) - resolved} trigger(s), {resolved} resolve(s)"
