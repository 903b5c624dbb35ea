"""Exactly-once delivery: each change reaches read_committed consumers once, and only once."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import duckdb
import local_servers.kafka as local_kafka
import pytest
from confluent_kafka import Producer
from harness import Kafka, Project, change_seeds
from test_safety import BIG_MODEL, REFUSED_ROWS, ROWS, refused_model, wait_until

from dbt_kafka_sync import faults

EXACTLY_ONCE_STATES = ["duckdb", "duckdb+warehouse", "postgres+warehouse"]


def use_exactly_once(project: Project, kafka: Kafka) -> str:
    """Switch the project's output to exactly-once, with a progress topic of its own."""
    progress = kafka.create_topic()
    project.set_output(delivery="exactly_once", progress_topic=progress)
    return progress


@pytest.mark.parametrize("project", EXACTLY_ONCE_STATES, indirect=True)
def test_each_change_is_seen_once_by_read_committed_consumers(
    project: Project, kafka: Kafka
) -> None:
    topic = project.build(kafka, ("customers",)) + "customers"
    progress = use_exactly_once(project, kafka)

    first = project.sync("--select", "customers")
    assert first.returncode == 0, first.stdout + first.stderr
    change_seeds(project)
    second = project.sync("--select", "customers")
    assert second.returncode == 0, second.stdout + second.stderr

    records = kafka.consume_committed(topic)
    seen = Counter((r.headers["dbt-kafka-sync-event"], r.key) for r in records)
    assert max(seen.values()) == 1
    assert sorted(seen) == sorted(
        [("added", k) for k in ("1", "2", "3", "4", "5", "6")]
        + [("changed", "2"), ("removed", "4")]
    )
    assert len(kafka.consume_committed(progress)) == 2  # one marker per transaction
    plan = project.sync("plan", "--select", "customers")
    assert "0 added, 0 changed, 0 removed" in plan.stdout, plan.stdout


def test_row_errors_stay_out_of_the_transaction(project: Project, kafka: Kafka) -> None:
    rows = project.read_seed("raw_customers")
    rows[2]["full_name"] = "x" * 3000  # customer 3: too large for message.max.bytes below
    project.write_seed("raw_customers", rows)
    topic = project.build(kafka, ("customers",)) + "customers"
    use_exactly_once(project, kafka)
    project.set_producer({"message.max.bytes": 1000})

    first = project.sync("--select", "customers")

    assert first.returncode == 1
    assert "5 added, 0 changed, 0 removed; 4 delivered, 1 failed" in first.stdout, first.stdout
    assert sorted(r.key or "" for r in kafka.consume_committed(topic)) == ["1", "2", "4", "5"]
    project.set_producer({})
    second = project.sync("--select", "customers")
    assert second.returncode == 0, second.stdout + second.stderr
    assert sorted(r.key or "" for r in kafka.consume_committed(topic)) == ["1", "2", "3", "4", "5"]


SMALL_REFUSED_ROWS = 60


def small_refused_model(label_length: int) -> str:
    """60 keyed rows; every 50th (0 and 50) has a label of `label_length` characters."""
    return refused_model(label_length, keyed=True).replace(
        f"series({REFUSED_ROWS})", f"series({SMALL_REFUSED_ROWS})"
    )


def test_a_message_the_broker_refuses_aborts_the_transaction(
    project: Project, kafka: Kafka
) -> None:
    project.write_model("refused", small_refused_model(3000))
    topic = project.build(kafka, ()) + "refused"
    local_kafka.create_topic(
        kafka.bootstrap_servers, topic, 3, config={"max.message.bytes": "2000"}
    )
    project.set_producer({"batch.num.messages": 1, "compression.type": "none"})
    use_exactly_once(project, kafka)

    first = project.sync("--select", "refused")

    assert first.returncode == 1, first.stdout + first.stderr
    assert "the sync's transaction was aborted" in first.stdout, first.stdout
    assert kafka.consume_committed(topic) == []  # nothing of the aborted transaction
    assert local_kafka.message_count(kafka.bootstrap_servers, topic) > 0  # it was sent, aborted
    with duckdb.connect(str(project.path / ".dbt_kafka_sync/state.duckdb"), read_only=True) as db:
        outcomes = db.execute("SELECT outcome, count(*) FROM sent_messages GROUP BY 1").fetchall()
    assert outcomes == [("failed", SMALL_REFUSED_ROWS)]  # the debugger: none of it delivered
    project.write_model("refused", small_refused_model(10))
    project.rebuild()
    second = project.sync("--select", "refused")
    assert second.returncode == 0, second.stdout + second.stderr
    ids = sorted(int(r.key or "") for r in kafka.consume_committed(topic))
    assert ids == list(range(SMALL_REFUSED_ROWS))  # each once


def test_a_fenced_run_commits_nothing_and_the_next_run_sends_each_change_once(
    project: Project, kafka: Kafka
) -> None:
    project.write_model("big", BIG_MODEL)
    topic = project.build(kafka, ("big",)) + "big"
    progress = use_exactly_once(project, kafka)
    # The run stops itself with its transaction open and its commit prepared.
    paused = subprocess.Popen(
        [sys.executable, "-m", "dbt_kafka_sync", "--select", "big", "--project-dir", "."],
        cwd=project.path,
        env={**project.env, faults.FAULT_ENV: f"{faults.BEFORE_KAFKA_COMMIT}:stop"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until(lambda: _stopped(paused.pid), timeout=120, what="the run to stop")
        # A second producer with the sync's transactional id: the paused run is a zombie now.
        sync = "dev:model.dbt_kafka_sync_integration_tests.big:default"
        successor = Producer(
            {
                "bootstrap.servers": kafka.bootstrap_servers,
                "transactional.id": f"dbt-kafka-sync:{sync}",
            }
        )
        successor.init_transactions(30)
        paused.send_signal(signal.SIGCONT)
        out, err = paused.communicate(timeout=300)
    finally:
        paused.kill()
    assert paused.returncode == 1, out + err
    assert "PRODUCER_FENCED" in out + err or "FENCED" in out + err, out + err
    assert "Traceback" not in err
    assert kafka.consume_committed(topic) == []
    assert kafka.consume_committed(progress) == []

    rerun = project.sync("--select", "big")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "before its Kafka transaction committed" in rerun.stderr, rerun.stderr
    keys = Counter(r.key for r in kafka.consume_committed(topic))
    assert len(keys) == ROWS and max(keys.values()) == 1


def _stopped(pid: int) -> bool:
    """The process is stopped by a signal (state T in /proc)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] == "T"


def test_another_producers_open_transaction_delays_the_settling_and_never_voids_it(
    project: Project, kafka: Kafka
) -> None:
    topic = project.build(kafka, ("customers",)) + "customers"
    progress = use_exactly_once(project, kafka)
    # Another producer's transaction, open on the progress partition before the run's marker.
    other = Producer(
        {
            "bootstrap.servers": kafka.bootstrap_servers,
            "transactional.id": "other",
            "transaction.timeout.ms": 300_000,
        }
    )
    other.init_transactions(30)
    other.begin_transaction()
    other.produce(progress, b"{}", b"other", 0)
    other.flush(30)
    killed = project.sync(
        "--select", "customers", env={faults.FAULT_ENV: faults.AFTER_KAFKA_COMMIT}
    )
    assert killed.returncode == -signal.SIGKILL

    waiting = project.sync("--select", "customers")  # cannot read past the open transaction

    assert waiting.returncode == 1, waiting.stdout + waiting.stderr
    assert "a transaction of another producer is open on it" in waiting.stdout, waiting.stdout
    other.commit_transaction(30)
    settled = project.sync("--select", "customers")
    assert settled.returncode == 0, settled.stdout + settled.stderr
    assert "after its Kafka transaction committed" in settled.stderr, settled.stderr
    keys = Counter(r.key for r in kafka.consume_committed(topic))
    assert sorted(str(k) for k in keys) == ["1", "2", "3", "4", "5"] and max(keys.values()) == 1
