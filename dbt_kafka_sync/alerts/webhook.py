"""A generic webhook: the run's alerts as documented JSON, optionally signed (HMAC-SHA256).

The signature header holds `sha256=<hex digest>` of the exact body bytes, keyed with the
channel's secret; the receiver recomputes it over the raw body and compares in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import asdict
from typing import Any

from dbt_kafka_sync.alerts import text
from dbt_kafka_sync.alerts.decide import Alert, RunFacts
from dbt_kafka_sync.alerts.http import json_body, post
from dbt_kafka_sync.config.alerts import WebhookChannel
from dbt_kafka_sync.state.history import SyncOutcome

NAME = "the alert webhook"
PAYLOAD_VERSION = 1


def payload(facts: RunFacts, alerts: Sequence[Alert]) -> dict[str, Any]:
    """The documented payload (README, "Alerts")."""
    return {
        "version": PAYLOAD_VERSION,
        "project": facts.project,
        "target": facts.target,
        "run_id": facts.run_id,
        "show_command": facts.show_command,
        "error": facts.error,
        "title": text.title(facts, alerts),
        "text": text.body(facts, alerts),
        "alerts": [_alert(alert) for alert in alerts],
    }


def _alert(alert: Alert) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "trigger": alert.trigger,
        "dedup_key": alert.dedup_key,
        "reasons": list(alert.reasons),
    }
    return fields | (_sync(alert.sync) if alert.sync else {"model": None})


def _sync(sync: SyncOutcome) -> dict[str, Any]:
    return {
        "model": sync.model,
        "sync": sync.sync,
        "topic": sync.topic,
        "status": sync.status,
        **asdict(sync.counts),
        **sync.message_counts(),
        "error": sync.error,
    }


def signature(secret: str, body: bytes) -> str:
    """The signature header's value: sha256=<hex HMAC-SHA256 of the body>."""
    return "sha256=" + hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


def send(channel: WebhookChannel, facts: RunFacts, alerts: Sequence[Alert], timeout: float) -> str:
    """Post the run's alerts as one JSON document; return what was sent, for the summary."""
    body = json_body(payload(facts, alerts))
    headers = {}
    if channel.secret is not None:
        headers[channel.signature_header] = signature(channel.secret.get_secret_value(), body)
    post(channel.url.get_secret_value(), body, NAME, timeout, headers)
    return f"{len(alerts)} alert(s)" + (", signed" if headers else "")
