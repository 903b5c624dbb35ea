"""Send a run's alerts to every configured channel; a channel that fails changes nothing else.

Each failure is logged and returned for the run summary, with every configured secret
masked in its text (a server may echo a token back in its answer).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr

from dbt_kafka_sync.alerts import email, pagerduty, slack, webhook
from dbt_kafka_sync.alerts.decide import Alert, RunFacts, decide
from dbt_kafka_sync.alerts.delivery import Delivery, DeliveryFailed
from dbt_kafka_sync.config.alerts import AlertChannel, AlertsConfig
from dbt_kafka_sync.errors import masked

log = logging.getLogger(__name__)

# Each channel module's send(channel, facts, alerts, timeout) -> what was sent.
Send = Callable[[Any, RunFacts, Sequence[Alert], float], str]


def _configured(config: AlertsConfig) -> list[tuple[str, AlertChannel, Send]]:
    """(name, settings, send) of each channel the config sets up."""
    every: list[tuple[str, AlertChannel | None, Send]] = [
        ("slack", config.slack, slack.send),
        ("pagerduty", config.pagerduty, pagerduty.send),
        ("webhook", config.webhook, webhook.send),
        ("email", config.email, email.send),
    ]
    return [(name, channel, send) for name, channel, send in every if channel is not None]


def send_alerts(config: AlertsConfig, facts: RunFacts) -> list[Delivery]:
    """Decide what the run calls for and tell each channel what it asked to hear."""
    alerts = decide(config, facts)
    deliveries: list[Delivery] = []
    for name, channel, send in _configured(config):
        chosen = [alert for alert in alerts if alert.trigger in channel.triggers]
        if not chosen:
            continue
        try:
            detail = send(channel, facts, chosen, config.timeout_seconds)
        except Exception as exc:  # an alert never changes the outcome
            failure = _failure(exc, config)
            log.warning("alert not delivered to %s: %s", name, failure)
            deliveries.append(Delivery(name, False, failure))
            continue
        log.info("alert delivered to %s: %s", name, detail)
        deliveries.append(Delivery(name, True, detail))
    return deliveries


def _failure(exc: Exception, config: AlertsConfig) -> str:
    if isinstance(exc, DeliveryFailed):
        return mask_secrets(str(exc), config)
    # No traceback, not even at debug level: its frames' text may quote a URL or a key.
    return f"unexpected error ({type(exc).__name__}): {mask_secrets(str(exc), config)}"


def mask_secrets(message: str, config: AlertsConfig) -> str:
    """The message with every secret of the alerts config replaced by a mask."""
    return masked(message, _secrets(config))


def _secrets(config: AlertsConfig) -> list[str]:
    values = [
        getattr(channel, name)
        for _, channel, _ in _configured(config)
        for name in type(channel).model_fields
    ]
    secrets = [value.get_secret_value() for value in values if isinstance(value, SecretStr)]
    return [part for secret in secrets for part in _secret_parts(secret)]


def _secret_parts(secret: str) -> list[str]:
    """The secret, and for a URL also its path and query (where Slack keeps its token)."""
    url = urlsplit(secret)
    if url.scheme not in ("http", "https"):
        return [secret]
    tail = url.path + (f"?{url.query}" if url.query else "")
    return [secret, tail] if len(tail) > 1 else [secret]
