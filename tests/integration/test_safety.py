"""Nothing is lost: a killed run, a locked state and rows that Kafka refused."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import kafka_local
from harness import Kafka, Project

ROWS = 20_000
BIG_MODEL = f"""
{{{{ config(meta={{'kafka_sync': {{
    'primary_key': 'id',
    'topic': var('kafka_topic_prefix', 'demo.') ~ 'big',
    'key_column': 'id'}}}}) }}}}
select range as id, 'row ' || range as label from range({ROWS})
"""
# One message in flight at a time: slow enough to be killed halfway, on any machine.
ONE_AT_A_TIME = {"queue.buffering.max.messages": 1, "linger.ms": 0}


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)  # polling interval of a real readiness check


def test_killed_run_then_rerun_loses_nothing(project: Project, kafka: Kafka) -> None:
    project.write_model("big", BIG_MODEL)
    topic = project.build(kafka, ("big",)) + "big"
    project.set_producer(ONE_AT_A_TIME)
    slow = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dbt_kafka_sync",
            "--select",
            "big",
            "--project-dir",
            str(project.path),
        ],
        cwd=project.path,
        env=project.env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(
            lambda: kafka_local.message_count(kafka.bootstrap_servers, topic) > 0,
            timeout=120,
            what="the first published message",
        )
        concurrent = project.sync("--select", "big")
        assert concurrent.returncode == 1
        assert "is locked by another dbt-kafka-sync run" in concurrent.stderr
    finally:
        slow.send_signal(signal.SIGKILL)
        slow.wait()
    published = kafka_local.message_count(kafka.bootstrap_servers, topic)
    assert 0 < published < ROWS, "the run was not killed while publishing"

    project.set_producer({})
    rerun = project.sync("--select", "big")

    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    keys = [record.key for record in kafka.consume_all(topic)]
    assert set(keys) == {str(i) for i in range(ROWS)}  # every row at least once
    plan = project.sync("plan", "--select", "big")
    assert "0 added, 0 changed, 0 removed" in plan.stdout  # snapshot equals the model
    history = project.sync("runs")
    assert re.search(r"interrupted", history.stdout), history.stdout


def test_failed_rows_are_resent_and_delivered_rows_are_not(project: Project, kafka: Kafka) -> None:
    rows = project.read_seed("raw_customers")
    rows[2]["full_name"] = "x" * 3000  # customer 3: too large for message.max.bytes below
    project.write_seed("raw_customers", rows)
    topic = project.build(kafka, ("customers",)) + "customers"
    project.set_producer({"message.max.bytes": 1000})

    first = project.sync("--select", "customers")

    assert first.returncode == 1
    assert "5 added, 0 changed, 0 removed; 4 delivered, 1 failed" in first.stdout
    assert "row key '3' (added): Unable to produce message" in first.stdout
    run_id = re.search(r"show ([\w-]+)", first.stdout).group(1)  # type: ignore[union-attr]
    shown = project.sync("show", run_id)
    assert "customers row key '3' (added): Unable to produce message" in shown.stdout
    assert "4 delivered, 1 failed" in shown.stdout

    second = project.sync("--select", "customers")  # still too large: only row 3 again
    assert "1 added, 0 changed, 0 removed; 0 delivered, 1 failed" in second.stdout
    assert kafka_local.message_count(kafka.bootstrap_servers, topic) == 4

    project.set_producer({})
    third = project.sync("--select", "customers")

    assert third.returncode == 0
    assert "1 added, 0 changed, 0 removed; 1 delivered, 0 failed" in third.stdout
    assert sorted(r.key or "" for r in kafka.consume_all(topic)) == ["1", "2", "3", "4", "5"]
