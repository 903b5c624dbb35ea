"""Alerts: what a run calls for, and each channel's payload as a real local server gets it."""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from local_servers.alert_receivers import HttpReceiver, SmtpReceiver, http_receiver, smtp_receiver
from pydantic import ValidationError

from dbt_kafka_sync.alerts.decide import RunFacts, decide
from dbt_kafka_sync.alerts.dispatch import send_alerts
from dbt_kafka_sync.changes.input import ChangeCounts
from dbt_kafka_sync.config.alerts import AlertsConfig, EmailChannel, SlackChannel
from dbt_kafka_sync.config.kafka import KafkaTarget
from dbt_kafka_sync.dbt.profiles import kafka_target
from dbt_kafka_sync.debug import masked_profile
from dbt_kafka_sync.errors import ProfileError
from dbt_kafka_sync.state.history import FailedRow, SyncOutcome

SLACK_PATH = "/services/T0/B0/slack-token-1f2e3d"
ROUTING_KEY = "pd-routing-key-8c7b6a"
HMAC_SECRET = "hmac-secret-5d4c3b"
SMTP_PASSWORD = "smtp-password-2a1b0c"
SECRETS = (SLACK_PATH, ROUTING_KEY, HMAC_SECRET, SMTP_PASSWORD)
ECHO = "no such hook: "  # an error answer of the receiver: this, then the path


def alerts_config(**fields: Any) -> AlertsConfig:
    return AlertsConfig.model_validate(fields)


def outcome(**fields: Any) -> SyncOutcome:
    base: dict[str, Any] = {
        "model": "customers",
        "sync": "default",
        "topic": "t.customers",
        "counts": ChangeCounts(5, 0, 0),
        "published": 5,
        "delivered": 5,
    }
    return SyncOutcome(**(base | fields))


FAILED_ROW = outcome(
    delivered=4,
    failed=1,
    failures=[FailedRow("3", "added", "column 'payload' is not valid JSON")],
)


def facts(*syncs: SyncOutcome, error: str | None = None, previous: str | None = None) -> RunFacts:
    earlier = {(sync.model, sync.sync): previous for sync in syncs if previous}
    return RunFacts("shop", "prod", "20261201T060000-abcdef", syncs, error, earlier)


@pytest.mark.parametrize(
    ("config", "run", "expected"),
    [
        ({}, facts(outcome()), []),
        ({}, facts(outcome(error="topic(s) 't' do not exist")), ["failure"]),
        ({}, facts(error="the broker cannot be reached"), ["failure"]),
        ({}, facts(FAILED_ROW), ["failed_rows"]),
        ({}, facts(outcome(rejected=2)), ["failed_rows"]),
        ({"failed_rows_above": 1}, facts(FAILED_ROW), []),
        ({"failed_rows_above": 0}, facts(FAILED_ROW), ["failed_rows"]),
        ({"failed_share_above": 0.2}, facts(FAILED_ROW), []),  # 1 of 5 is not above 20%
        ({"failed_share_above": 0.1}, facts(FAILED_ROW), ["failed_rows"]),
        ({"failed_rows_above": 9, "failed_share_above": 0.1}, facts(FAILED_ROW), ["failed_rows"]),
        ({}, facts(outcome(), previous="error"), ["recovery"]),
        ({}, facts(outcome(), previous="partial"), ["recovery"]),
        ({}, facts(outcome(), previous="success"), []),
        ({}, facts(FAILED_ROW, previous="error"), ["failed_rows"]),
        ({}, facts(outcome(published=0, skipped="dbt failed it"), previous="error"), []),
    ],
    ids=[
        "success",
        "sync-error",
        "run-error",
        "failed-row",
        "rejected-rows",
        "count-not-above",
        "count-above",
        "share-not-above",
        "share-above",
        "either-threshold",
        "recovered-from-error",
        "recovered-from-partial",
        "success-again",
        "still-failing",
        "skipped-is-no-recovery",
    ],
)
def test_what_a_run_alerts_about(
    config: dict[str, Any], run: RunFacts, expected: list[str]
) -> None:
    assert [alert.trigger for alert in decide(alerts_config(**config), run)] == expected


def test_a_sync_and_its_recovery_share_a_dedup_key() -> None:
    [failed] = decide(alerts_config(), facts(outcome(error="boom")))
    [recovered] = decide(alerts_config(), facts(outcome(), previous="error"))
    assert failed.dedup_key == recovered.dedup_key == "dbt-kafka-sync/shop/prod/customers/default"


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    with http_receiver() as server:
        yield server


def http_config(receiver: HttpReceiver, **extra: Any) -> AlertsConfig:
    return alerts_config(
        slack={"webhook_url": receiver.url + SLACK_PATH},
        pagerduty={"routing_key": ROUTING_KEY, "events_url": receiver.url + "/pd"},
        webhook={"url": receiver.url + "/hook", "secret": HMAC_SECRET},
        **extra,
    )


SHOW = "Run 20261201T060000-abcdef: dbt-kafka-sync show 20261201T060000-abcdef"
FAILED_ROW_LINE = (
    "FAILED ROWS customers -> t.customers: 5 added, 0 changed, 0 removed;"
    " 5 published, 4 delivered, 1 failed, 0 rejected"
)
REASON = "row key '3' (added): column 'payload' is not valid JSON"
TITLE = "dbt-kafka-sync: 1 sync(s) failed (project shop, target prod)"


def test_http_channels_get_the_exact_payloads(receiver: HttpReceiver) -> None:
    deliveries = send_alerts(http_config(receiver), facts(FAILED_ROW))

    assert [(d.channel, d.ok) for d in deliveries] == [
        ("slack", True),
        ("pagerduty", True),
        ("webhook", True),
    ]
    [slack] = receiver.received(SLACK_PATH)
    assert json.loads(slack.body) == {"text": f"{TITLE}\n{FAILED_ROW_LINE}\n    {REASON}\n{SHOW}"}
    [pd] = receiver.received("/pd")
    assert json.loads(pd.body) == {
        "routing_key": ROUTING_KEY,
        "dedup_key": "dbt-kafka-sync/shop/prod/customers/default",
        "event_action": "trigger",
        "payload": {
            "summary": f"shop/prod: {FAILED_ROW_LINE}",
            "source": "dbt-kafka-sync/shop/prod",
            "severity": "error",
            "component": "customers",
            "group": "shop",
            "class": "failed_rows",
            "custom_details": {
                "run_id": "20261201T060000-abcdef",
                "show_command": "dbt-kafka-sync show 20261201T060000-abcdef",
                "reasons": [REASON],
                "details": f"{FAILED_ROW_LINE}\n    {REASON}\n{SHOW}",
            },
        },
    }
    [hook] = receiver.received("/hook")
    expected = hmac.new(HMAC_SECRET.encode(), hook.body, hashlib.sha256).hexdigest()
    assert hook.headers["X-Dbt-Kafka-Sync-Signature"] == f"sha256={expected}"
    assert json.loads(hook.body)["alerts"] == [
        {
            "trigger": "failed_rows",
            "dedup_key": "dbt-kafka-sync/shop/prod/customers/default",
            "reasons": [REASON],
            "model": "customers",
            "sync": "default",
            "topic": "t.customers",
            "status": "partial",
            "added": 5,
            "changed": 0,
            "removed": 0,
            "published": 5,
            "delivered": 4,
            "failed": 1,
            "rejected": 0,
            "error": None,
        }
    ]


def test_slack_blocks_and_channel_triggers(receiver: HttpReceiver) -> None:
    config = alerts_config(
        slack={"webhook_url": receiver.url + SLACK_PATH, "blocks": True},
        pagerduty={
            "routing_key": ROUTING_KEY,
            "events_url": receiver.url + "/pd",
            "triggers": ["failure"],
        },
    )
    send_alerts(config, facts(FAILED_ROW))

    assert receiver.received("/pd") == []  # it hears of failures only
    [slack] = receiver.received(SLACK_PATH)
    assert [block["type"] for block in json.loads(slack.body)["blocks"]] == [
        "header",
        "section",
        "context",
    ]


def test_recovery_resolves_the_incident(receiver: HttpReceiver) -> None:
    send_alerts(http_config(receiver), facts(outcome(), previous="error"))

    [pd] = receiver.received("/pd")
    assert json.loads(pd.body) == {
        "routing_key": ROUTING_KEY,
        "dedup_key": "dbt-kafka-sync/shop/prod/customers/default",
        "event_action": "resolve",
    }


def test_an_error_answer_is_reported_with_its_secrets_masked(receiver: HttpReceiver) -> None:
    receiver.statuses[SLACK_PATH] = 404
    receiver.statuses["/pd"] = 500

    deliveries = send_alerts(http_config(receiver), facts(FAILED_ROW))

    assert [(d.channel, d.ok, d.detail) for d in deliveries] == [
        # The server echoed the path, where Slack's token is: masked.
        ("slack", False, "the Slack webhook answered HTTP 404 Not Found: no such hook: **********"),
        (
            "pagerduty",
            False,
            "PagerDuty answered HTTP 500 Internal Server Error: no such hook: /pd",
        ),
        ("webhook", True, "1 alert(s), signed"),
    ]


def test_an_unreachable_or_silent_endpoint_fails_within_the_timeout() -> None:
    with socket.socket() as closed, socket.socket() as silent:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: the connection is refused
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # accepts into the backlog, never answers
        config = alerts_config(
            slack={"webhook_url": f"http://127.0.0.1:{closed.getsockname()[1]}{SLACK_PATH}"},
            webhook={"url": f"http://127.0.0.1:{silent.getsockname()[1]}/hook"},
            timeout_seconds=0.5,
        )
        deliveries = send_alerts(config, facts(FAILED_ROW))

    assert [(d.channel, d.ok, d.detail) for d in deliveries] == [
        ("slack", False, "the Slack webhook could not be reached: Connection refused"),
        ("webhook", False, "the alert webhook did not answer within 0.5 s"),
    ]


def test_a_secret_in_a_query_string_is_masked(receiver: HttpReceiver) -> None:
    path = f"/hook?token={HMAC_SECRET}"
    receiver.statuses[path] = 403
    config = alerts_config(webhook={"url": receiver.url + path})

    [delivery] = send_alerts(config, facts(FAILED_ROW))

    assert (
        delivery.detail == "the alert webhook answered HTTP 403 Forbidden: no such hook: **********"
    )


@pytest.fixture(scope="module")
def smtp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpReceiver]:
    with smtp_receiver(tmp_path_factory.mktemp("smtp") / "tls", "alerts", SMTP_PASSWORD) as server:
        yield server


def email_config(smtp: SmtpReceiver, password: str = SMTP_PASSWORD) -> AlertsConfig:
    return alerts_config(
        email={
            "host": smtp.host,
            "port": smtp.port,
            "username": smtp.username,
            "password": password,
            "from": "dbt@example.com",
            "to": ["oncall@example.com", "data@example.com"],
            "ca_file": str(smtp.ca_file),
        }
    )


def test_email_over_starttls_with_auth(smtp: SmtpReceiver) -> None:
    before = len(smtp.mails)
    [delivery] = send_alerts(email_config(smtp), facts(FAILED_ROW))

    assert delivery.ok, delivery.detail
    [mail] = smtp.mails[before:]
    assert (mail.login, mail.sender, mail.recipients) == (
        "alerts",
        "dbt@example.com",
        ["oncall@example.com", "data@example.com"],
    )
    parsed: Message = message_from_bytes(mail.content, policy=policy.default)
    assert parsed["Subject"] == TITLE
    payload = parsed.get_payload(decode=True)
    assert isinstance(payload, bytes)
    body = payload.decode().replace("\r\n", "\n")
    assert body == f"{FAILED_ROW_LINE}\n    {REASON}\n{SHOW}\n"


def test_email_refused_login_is_reported_without_the_password(smtp: SmtpReceiver) -> None:
    [delivery] = send_alerts(email_config(smtp, "wrong-password"), facts(FAILED_ROW))

    assert not delivery.ok
    assert delivery.detail.startswith(f"the SMTP server {smtp.host}:{smtp.port} refused the login")
    assert "wrong-password" not in delivery.detail


def test_email_refuses_a_password_without_tls() -> None:
    with pytest.raises(ValidationError, match="only sent over TLS"):
        EmailChannel.model_validate(
            {"host": "mail", "from": "a@b.c", "to": ["d@e.f"]}
            | {"username": "u", "password": "p", "starttls": False}
        )


@pytest.mark.parametrize(
    ("url", "complaint"),
    [
        (f"file:///etc{SLACK_PATH}", "must start with https://"),
        (f"https://hooks.example.com{SLACK_PATH}\nX-Injected: 1", "must not contain spaces"),
    ],
    ids=["not-http", "control-character"],
)
def test_a_url_that_cannot_be_used_is_refused_without_showing_it(url: str, complaint: str) -> None:
    output = {"bootstrap_servers": "localhost:9092", "alerts": {"slack": {"webhook_url": url}}}
    profiles = {"kafka_sync": {"target": "dev", "outputs": {"dev": output}}}
    with pytest.raises(ProfileError) as caught:
        kafka_target(profiles, None, Path("profiles.yml"))
    message = caught.value.render()
    assert f"alerts.slack.webhook_url: Value error, {complaint}" in message
    assert SLACK_PATH not in message


def test_a_url_read_with_a_trailing_newline_is_used_without_it() -> None:
    url = "https://hooks.example.com" + SLACK_PATH
    channel = SlackChannel.model_validate({"webhook_url": url + "\n"})
    assert channel.webhook_url.get_secret_value() == url


def test_debug_masks_every_alert_secret(receiver: HttpReceiver) -> None:
    target = KafkaTarget.model_validate(
        {
            "bootstrap_servers": "localhost:9092",
            "alerts": {
                "slack": {"webhook_url": receiver.url + SLACK_PATH},
                "pagerduty": {"routing_key": ROUTING_KEY},
                "webhook": {"url": receiver.url + "/hook", "secret": HMAC_SECRET},
                "email": {
                    "host": "mail",
                    "username": "u",
                    "password": SMTP_PASSWORD,
                    "from": "a@b.c",
                    "to": ["d@e.f"],
                },
            },
        }
    )
    shown = json.dumps(masked_profile(target))
    assert [secret for secret in SECRETS if secret in shown] == []
    assert "pagerduty" in shown and "**********" in shown
