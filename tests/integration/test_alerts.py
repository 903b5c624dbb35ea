"""Alerts from real runs: the CLI against the test broker, alerts into local receivers.

The syncs fail through customer_events' template file, which dbt-kafka-sync reads at
run time: missing (the sync ends in error), then rendering invalid JSON for one row (a
failed row), then put back (the sync recovers). Every run logs at debug level, and no
secret may appear in what it prints.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import socket
import subprocess
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from harness import Project
from local_servers.alert_receivers import HttpReceiver, SmtpReceiver, http_receiver, smtp_receiver

SLACK_PATH = "/services/T0/B0/it-slack-token-7e6d5c"
ROUTING_KEY = "it-routing-key-4b3a29"
HMAC_SECRET = "it-hmac-secret-18f7e6"
SMTP_PASSWORD = "it-smtp-password-d5c4b3"
SECRETS = (SLACK_PATH, ROUTING_KEY, HMAC_SECRET, SMTP_PASSWORD)
PROJECT = "dbt_kafka_sync_integration_tests"
TEMPLATE = Path("templates") / "customer_event.json.liquid"
BROKEN_FOR_ROW_3 = '{"id": {{ row.id | json }}{% if row.id == 3 %}, broken{% endif %}}'
RUN_ID = re.compile(r"run (\d{8}T\d{6}-[0-9a-f]{6})")


@pytest.fixture(scope="module")
def receiver() -> Iterator[HttpReceiver]:
    with http_receiver() as server:
        yield server


@pytest.fixture(scope="module")
def smtp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpReceiver]:
    tls_dir = tmp_path_factory.mktemp("smtp") / "tls"
    with smtp_receiver(tls_dir, "alerts", SMTP_PASSWORD) as server:
        yield server


@pytest.fixture
def template(built_project: Project) -> Iterator[Path]:
    """customer_events' template file, put back as it was after the test."""
    path = built_project.path / TEMPLATE
    original = path.read_text()
    try:
        yield path
    finally:
        path.write_text(original)


def add_output(project: Project, name: str, alerts: dict[str, Any]) -> None:
    bootstrap = "{{ env_var('KAFKA_BOOTSTRAP_SERVERS') }}"
    project.add_kafka_output(name, {"bootstrap_servers": bootstrap, "alerts": alerts})


def sync(project: Project, target: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the CLI at debug level; nothing it prints may hold a secret."""
    result = project.sync("--target", target, "--log-level", "debug", *args)
    printed = result.stdout + result.stderr
    assert [secret for secret in SECRETS if secret in printed] == [], printed
    return result


def run_id(result: subprocess.CompletedProcess[str]) -> str:
    found = RUN_ID.search(result.stdout)
    assert found, result.stdout
    return found[1]


def show(run: str) -> str:
    return f"Run {run}: dbt-kafka-sync show {run}"


def test_a_failing_sync_alerts_every_channel_then_its_recovery_resolves(
    built_project: Project, receiver: HttpReceiver, smtp: SmtpReceiver, template: Path
) -> None:
    add_output(
        built_project,
        "alerts",
        {
            "slack": {"webhook_url": receiver.url + SLACK_PATH},
            "pagerduty": {"routing_key": ROUTING_KEY, "events_url": receiver.url + "/pd"},
            "webhook": {"url": receiver.url + "/hook", "secret": HMAC_SECRET},
            "email": {
                "host": smtp.host,
                "port": smtp.port,
                "username": smtp.username,
                "password": SMTP_PASSWORD,
                "from": "dbt@example.com",
                "to": ["oncall@example.com"],
                "ca_file": str(smtp.ca_file),
            },
            "failed_share_above": 0.1,
        },
    )
    topic = built_project.prefix + "customer_events"
    dedup_key = f"dbt-kafka-sync/{PROJECT}/alerts/customer_events/default"
    template.rename(template.with_suffix(".aside"))

    failed = sync(built_project, "alerts", "--select", "customer_events")

    assert failed.returncode == 1, failed.stderr
    for channel in ("slack", "pagerduty", "webhook", "email"):
        assert f"alert sent to {channel}" in failed.stdout
    title = f"dbt-kafka-sync: 1 sync(s) failed (project {PROJECT}, target alerts)"
    body = (
        f"FAILED customer_events -> {topic}: 0 added, 0 changed, 0 removed;"
        " 0 published, 0 delivered, 0 failed, 0 rejected\n"
        f"    model 'customer_events': template_file {TEMPLATE} not found"
        f" (looked at {template})\n"
        "      hint: template_file is relative to the dbt project folder\n" + show(run_id(failed))
    )
    [slack] = receiver.received(SLACK_PATH)
    assert json.loads(slack.body) == {"text": f"{title}\n{body}"}
    [hook] = receiver.received("/hook")
    signature = hmac.new(HMAC_SECRET.encode(), hook.body, hashlib.sha256).hexdigest()
    assert hook.headers["X-Dbt-Kafka-Sync-Signature"] == f"sha256={signature}"
    payload = json.loads(hook.body)
    assert (payload["title"], payload["text"], payload["run_id"]) == (title, body, run_id(failed))
    assert [(a["trigger"], a["model"], a["status"]) for a in payload["alerts"]] == [
        ("failure", "customer_events", "error")
    ]
    [mail] = smtp.mails
    parsed = message_from_bytes(mail.content, policy=policy.default)
    assert (mail.login, parsed["Subject"], parsed["To"]) == ("alerts", title, "oncall@example.com")
    text = parsed.get_payload(decode=True)
    assert isinstance(text, bytes) and text.decode().replace("\r\n", "\n") == body + "\n"

    # One row of five fails: 20 %, above failed_share_above.
    template.write_text(BROKEN_FOR_ROW_3)
    partial = sync(built_project, "alerts", "--select", "customer_events")

    assert partial.returncode == 1, partial.stderr
    [trigger, failed_rows] = [json.loads(event.body) for event in receiver.received("/pd")]
    assert (trigger["event_action"], trigger["dedup_key"]) == ("trigger", dedup_key)
    reason = re.search(r"row key '3' \(added\): (.*)", partial.stdout)
    assert reason, partial.stdout
    line = (
        f"FAILED ROWS customer_events -> {topic}: 5 added, 0 changed, 0 removed;"
        " 4 published, 4 delivered, 1 failed, 0 rejected"
    )
    assert failed_rows == {
        "routing_key": ROUTING_KEY,
        "dedup_key": dedup_key,
        "event_action": "trigger",
        "payload": {
            "summary": f"{PROJECT}/alerts: {line}",
            "source": f"dbt-kafka-sync/{PROJECT}/alerts",
            "severity": "error",
            "component": "customer_events",
            "group": PROJECT,
            "class": "failed_rows",
            "custom_details": {
                "run_id": run_id(partial),
                "show_command": f"dbt-kafka-sync show {run_id(partial)}",
                "reasons": [f"row key '3' (added): {reason[1]}"],
                "details": f"{line}\n    row key '3' (added): {reason[1]}\n{show(run_id(partial))}",
            },
        },
    }

    # Put back: the failed row is sent again and the sync recovers. Slack is down
    # meanwhile: the exit code stays 0 and the summary says so.
    template.with_suffix(".aside").rename(template)
    receiver.statuses[SLACK_PATH] = 500
    recovered = sync(built_project, "alerts", "--select", "customer_events")

    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert (
        "ALERT NOT SENT to slack: the Slack webhook answered HTTP 500 Internal Server Error:"
        " no such hook: **********" in recovered.stdout
    )
    assert "alert sent to pagerduty: 0 trigger(s), 1 resolve(s)" in recovered.stdout
    assert json.loads(receiver.received("/pd")[-1].body) == {
        "routing_key": ROUTING_KEY,
        "dedup_key": dedup_key,
        "event_action": "resolve",
    }
    assert "RECOVERED customer_events" in json.loads(receiver.received("/hook")[-1].body)["text"]


def test_a_fatal_error_alerts_and_an_unreachable_channel_changes_nothing(
    built_project: Project, receiver: HttpReceiver
) -> None:
    path = "/fatal" + SLACK_PATH
    state = built_project.path / "damaged.duckdb"
    state.write_bytes(b"this is no DuckDB file" * 1000)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        unreachable = f"http://127.0.0.1:{closed.getsockname()[1]}/hook"
        add_output(
            built_project,
            "fatal",
            {"slack": {"webhook_url": receiver.url + path}, "webhook": {"url": unreachable}},
        )
        result = sync(built_project, "fatal", "--select", "customers", "--state-path", str(state))

    assert result.returncode == 1, result.stdout + result.stderr  # as without alerts
    assert f"the state file {state} looks damaged" in result.stderr
    assert "alert sent to slack" in result.stdout
    assert (
        "ALERT NOT SENT to webhook: the alert webhook could not be reached: Connection refused"
        in result.stdout
    )
    assert "alert not delivered to webhook" in result.stderr  # logged too
    [slack] = receiver.received(path)
    text = json.loads(slack.body)["text"]
    assert text.startswith(
        f"dbt-kafka-sync: the run failed (project {PROJECT}, target fatal)\nFAILED the run\n"
        f"    the state file {state} looks damaged"
    )
    assert re.search(r"\nRun (\S+): dbt-kafka-sync show \1$", text), text
