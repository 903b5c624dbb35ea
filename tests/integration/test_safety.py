"""Nothing is lost: a killed run, a locked state and rows that Kafka refused."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import local_servers.kafka as local_kafka
import pytest
from harness import ENGINES, WAREHOUSE_STATE, Kafka, Project, on_both_engines

ROWS = 20_000
BIG_MODEL = f"""
{{{{ config(meta={{'kafka_sync': {{
    'primary_key': 'id',
    'topic': var('kafka_topic_prefix', 'demo.') ~ 'big',
    'key_column': 'id'}}}}) }}}}
select range as id, 'row ' || range as label from {{{{ series({ROWS}) }}}}
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
            lambda: local_kafka.message_count(kafka.bootstrap_servers, topic) > 0,
            timeout=120,
            what="the first published message",
        )
        concurrent = project.sync("--select", "big")
        assert concurrent.returncode == 1
        assert "is locked by another dbt-kafka-sync run" in concurrent.stderr
    finally:
        slow.send_signal(signal.SIGKILL)
        slow.wait()
    published = local_kafka.message_count(kafka.bootstrap_servers, topic)
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


@pytest.mark.parametrize("project", ENGINES + WAREHOUSE_STATE, indirect=True)
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
    assert local_kafka.message_count(kafka.bootstrap_servers, topic) == 4

    project.set_producer({})
    third = project.sync("--select", "customers")

    assert third.returncode == 0
    assert "1 added, 0 changed, 0 removed; 1 delivered, 0 failed" in third.stdout
    assert sorted(r.key or "" for r in kafka.consume_all(topic)) == ["1", "2", "3", "4", "5"]


REFUSED_ROWS = 600
BIG_EVERY = 50  # every 50th row is too large for the topic's max.message.bytes below


def refused_model(label_length: int, keyed: bool) -> str:
    key = "'key_column': 'id'," if keyed else ""
    return f"""
{{{{ config(meta={{'kafka_sync': {{
    'primary_key': 'id', {key}
    'topic': var('kafka_topic_prefix', 'demo.') ~ 'refused'}}}}) }}}}
select range as id,
       case when range % {BIG_EVERY} = 0 then repeat('x', {label_length}) else 'row ' || range end
         as label
from {{{{ series({REFUSED_ROWS}) }}}}
"""


@on_both_engines
@pytest.mark.parametrize("keyed", [True, False], ids=["keyed", "keyless"])
def test_rows_the_broker_refuses_are_resent_and_only_they(
    project: Project, kafka: Kafka, keyed: bool
) -> None:
    """The broker refuses some messages after they were queued: their delivery reports
    fail among successful ones, on every partition, and must reach the right rows."""
    project.write_model("refused", refused_model(3000, keyed))
    topic = project.build(kafka, ()) + "refused"
    local_kafka.create_topic(
        kafka.bootstrap_servers, topic, 3, config={"max.message.bytes": "2000"}
    )
    # One message per request, uncompressed: the broker refuses exactly the large ones.
    project.set_producer({"batch.num.messages": 1, "compression.type": "none"})
    big = {i for i in range(REFUSED_ROWS) if i % BIG_EVERY == 0}

    first = project.sync("--select", "refused")

    assert first.returncode == 1, first.stdout + first.stderr
    delivered = REFUSED_ROWS - len(big)
    assert f"{delivered} delivered, {len(big)} failed" in first.stdout, first.stdout
    assert "(MSG_SIZE_TOO_LARGE)" in first.stdout
    assert sorted(_ids(kafka.consume_all(topic))) == sorted(set(range(REFUSED_ROWS)) - big)

    project.write_model("refused", refused_model(10, keyed))
    project.rebuild()
    second = project.sync("--select", "refused")

    assert second.returncode == 0, second.stdout + second.stderr
    assert f"{len(big)} added, 0 changed, 0 removed; {len(big)} delivered" in second.stdout
    assert sorted(_ids(kafka.consume_all(topic))) == list(range(REFUSED_ROWS))  # each once


def _ids(records: list[local_kafka.Record]) -> list[int]:
    return [json.loads(record.value or "")["id"] for record in records]
