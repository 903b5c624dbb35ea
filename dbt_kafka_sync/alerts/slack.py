"""Slack: a message to an incoming webhook, as text and, optionally, Block Kit blocks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from dbt_kafka_sync.alerts import text
from dbt_kafka_sync.alerts.decide import Alert, RunFacts
from dbt_kafka_sync.alerts.http import json_body, post
from dbt_kafka_sync.config.alerts import SlackChannel

NAME = "the Slack webhook"  # the URL is the secret: messages name the channel only
MAX_SECTION_CHARS = 3000  # Slack's limit for a section's text


def payload(channel: SlackChannel, facts: RunFacts, alerts: Sequence[Alert]) -> dict[str, Any]:
    """The webhook's JSON: `text` always (notifications show it), `blocks` when asked."""
    message: dict[str, Any] = {"text": text.title(facts, alerts) + "\n" + text.body(facts, alerts)}
    if channel.blocks:
        message["blocks"] = _blocks(facts, alerts)
    return message


def _blocks(facts: RunFacts, alerts: Sequence[Alert]) -> list[dict[str, Any]]:
    header = {"type": "header", "text": {"type": "plain_text", "text": text.title(facts, alerts)}}
    sections = [_section("\n".join([text.alert_line(alert), *alert.reasons])) for alert in alerts]
    footer = {
        "type": "context",
        "elements": [{"type": "mrkdwn", "text": f"Run `{facts.run_id}`: `{facts.show_command}`"}],
    }
    return [header, *sections, footer]


def _section(content: str) -> dict[str, Any]:
    return {
        "type": "section",
        "text": {"type": "plain_text", "text": content[:MAX_SECTION_CHARS]},
    }


def send(channel: SlackChannel, facts: RunFacts, alerts: Sequence[Alert], timeout: float) -> str:
    """Post the run's alerts as one message; return what was sent, for the summary."""
    body = json_body(payload(channel, facts, alerts))
    post(channel.webhook_url.get_secret_value(), body, NAME, timeout)
    return f"{len(alerts)} alert(s) in one message"
