"""The fault suite: runs killed at random moments and at each named step, a broker restart, a
full disk. After each fault a rerun must leave nothing lost; in exactly-once mode a
read_committed consumer must see each change once.

Scaled to fit the test command; `make faults` runs it whole: FAULT_KILLS (random kills per
phase and mode, default 2, there 20), FAULT_FULL=1 (every named step on PostgreSQL too,
not only the three that settle a commit there) and FAULT_ROWS (default 200,000).
FAULT_REPORT names a file the figures are appended to, one JSON line per scenario.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import local_servers.kafka as local_kafka
import pytest
from harness import Kafka, Project, copy_example

from dbt_kafka_sync import faults

KILLS = int(os.environ.get("FAULT_KILLS", "2"))
FULL = os.environ.get("FAULT_FULL") == "1"
ROWS = int(os.environ.get("FAULT_ROWS", "200000"))
SEED = int(os.environ.get("FAULT_SEED", "20261201"))
MODES = ["at_least_once", "exactly_once"]
STATE_FILE = ".dbt_kafka_sync/state.duckdb"


def model_sql(rows: int, version: int) -> str:
    """`big`: version 0 has every row; version 1 changes 9 rows in 10 and removes the 10th."""
    return f"""
{{{{ config(meta={{'kafka_sync': {{
    'primary_key': 'id',
    'topic': var('kafka_topic_prefix', 'demo.') ~ 'big',
    'key_column': 'id'}}}}) }}}}
select range as id, 'row ' || range || ' v{version}' as label from {{{{ series({rows}) }}}}
where {version} = 0 or range % 10 <> 0
"""


def expected(rows: int, version: int) -> set[tuple[str, str]]:
    """(event, key) of every change a run of `version` publishes after the one before."""
    if version == 0:
        return {("added", str(i)) for i in range(rows)}
    return {("removed" if i % 10 == 0 else "changed", str(i)) for i in range(rows)}


@dataclass
class Figures:
    """What one scenario did, for the README's Guarantees table."""

    scenario: str
    mode: str
    kills: int = 0  # runs SIGKILLed while still running
    killed_while_publishing: int = 0
    killed_after_publishing: int = 0
    lost: int = 0
    duplicates: int = 0
    stale_values: int = 0
    notes: list[str] = field(default_factory=list)

    def report(self) -> None:
        path = os.environ.get("FAULT_REPORT")
        if path:
            with open(path, "a") as handle:
                handle.write(json.dumps(asdict(self)) + "\n")


class Faulted:
    """A project whose `big` model is synced in one delivery mode, with runs to kill."""

    def __init__(self, project: Project, kafka: Kafka, mode: str, rows: int) -> None:
        self.project, self.kafka, self.mode, self.rows = project, kafka, mode, rows
        project.write_model("big", model_sql(rows, 0))
        self.topic = project.build(kafka, ("big",)) + "big"
        if mode == "exactly_once":
            project.set_output(delivery="exactly_once", progress_topic=kafka.create_topic())

    def start(self, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "dbt_kafka_sync", "--select", "big", "--project-dir", "."],
            cwd=self.project.path,
            env={**self.project.env, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def end_offset(self) -> int:
        return local_kafka.message_count(self.kafka.bootstrap_servers, self.topic)

    def messages(self, start: int) -> list[local_kafka.Record]:
        """What consumers see from `start`: read_committed in exactly-once mode."""
        if self.mode == "exactly_once":
            return self.kafka.consume_committed(self.topic, start=start)
        return self.kafka.consume_all(self.topic, start=start)

    def rerun(self) -> None:
        """A clean run; with the state in the warehouse, once the killed run's lease expired."""
        deadline = time.monotonic() + 60
        while True:
            done = self.project.sync("--select", "big")
            if "is in use by run" not in done.stderr or time.monotonic() > deadline:
                break
        assert done.returncode == 0, done.stdout + done.stderr

    def rerun_and_check(self, figures: Figures) -> None:
        """After a fault: a clean run, then every backfill row exactly where it belongs."""
        self.rerun()
        self.check(0, 0, figures)
        figures.report()
        assert figures.lost == 0, figures
        if self.mode == "exactly_once":
            assert figures.duplicates == 0, figures

    def check(self, start: int, version: int, figures: Figures) -> None:
        """Every change since `start` arrived with its value; count the duplicates."""
        records = self.messages(start)
        seen = Counter((r.headers["dbt-kafka-sync-event"], r.key or "") for r in records)
        wanted = expected(self.rows, version)
        figures.lost += len(wanted - set(seen))
        figures.duplicates += sum(seen.values()) - len(seen)
        label = f' v{version}"'
        figures.stale_values += len(
            [
                r
                for r in records
                if r.headers["dbt-kafka-sync-event"] != "removed" and label not in (r.value or "")
            ]
        )
        assert set(seen) <= wanted, f"unexpected messages: {sorted(set(seen) - wanted)[:5]}"
        plan = self.project.sync("plan", "--select", "big")
        assert "0 added, 0 changed, 0 removed" in plan.stdout, plan.stdout + plan.stderr

    def first_message(self, process: subprocess.Popen[bytes], before: int) -> bool:
        """Wait until the run's first message is in the topic; False if it ended first."""
        deadline = time.monotonic() + 120
        while self.end_offset() == before:
            if process.poll() is not None:
                return False
            assert time.monotonic() < deadline, "the run published nothing in 120 s"
            time.sleep(0.02)  # polling interval of a real readiness check
        return True

    def publishing_window(self) -> float:
        """A clean run: how long from its first message to its end."""
        process = self.start()
        assert self.first_message(process, self.end_offset())
        seen = time.monotonic()
        assert process.wait() == 0
        return time.monotonic() - seen

    def kill_at_random(self, rng: random.Random, window: float, figures: Figures) -> None:
        """Start a run and SIGKILL it at a random moment after its first message."""
        before = self.end_offset()
        process = self.start()
        if self.first_message(process, before):
            time.sleep(rng.uniform(0.0, window))  # the fault's random moment, not a wait
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait()
            figures.kills += 1
            sent = self.end_offset() - before
            if sent < len(expected(self.rows, 0)):
                figures.killed_while_publishing += 1
            else:
                figures.killed_after_publishing += 1
        else:
            process.wait()


@pytest.mark.parametrize("mode", MODES)
def test_random_kills_during_a_backfill_and_a_change_run(
    project: Project, kafka: Kafka, mode: str
) -> None:
    rng = random.Random(f"{SEED}-{mode}")
    faulted = Faulted(project, kafka, mode, ROWS)
    state = project.path / STATE_FILE
    backfill, change = (
        Figures("random kills, backfill", mode),
        Figures("random kills, change", mode),
    )

    # A clean backfill: how long its messages take, and the state a change run starts from.
    window = faulted.publishing_window()
    clean = state.with_name("clean.duckdb")
    shutil.copy(state, clean)
    for _ in range(KILLS):  # each kill on a backfill from scratch, then a rerun
        state.unlink()
        start = faulted.end_offset()
        faulted.kill_at_random(rng, window, backfill)
        faulted.rerun()
        faulted.check(start, 0, backfill)

    project.write_model("big", model_sql(ROWS, 1))
    project.rebuild()
    shutil.copy(clean, state)
    window = faulted.publishing_window()  # a change run takes a time of its own
    for _ in range(KILLS):  # each kill on the change run from the clean backfill's state
        shutil.copy(clean, state)
        start = faulted.end_offset()
        faulted.kill_at_random(rng, window, change)
        faulted.rerun()
        faulted.check(start, 1, change)

    for figures in (backfill, change):
        figures.report()
        assert figures.kills >= KILLS // 2, (
            f"too few runs were still running when killed: {figures}"
        )
        assert figures.lost == 0, figures
        assert figures.stale_values == 0, figures
        if mode == "exactly_once":
            assert figures.duplicates == 0, figures


NAMED_STEPS = {
    "at_least_once": [
        faults.DURING_STAGING,
        faults.AFTER_PUBLISH,
        faults.AFTER_FLUSH,
        faults.DURING_STATE_COMMIT,
    ],
    "exactly_once": [step for step in faults.STEPS if step != faults.DURING_STAGING],
}
# With the state in PostgreSQL, the steps where its commit is made, prepared or settled.
WAREHOUSE_STEPS = {
    ("at_least_once", faults.DURING_STATE_COMMIT),
    ("exactly_once", faults.BEFORE_KAFKA_COMMIT),
    ("exactly_once", faults.AFTER_KAFKA_COMMIT),
}
NAMED_CASES = [
    pytest.param(state, mode, step, id=f"{state}-{mode}-{step}")
    for state in ("duckdb", "postgres+warehouse")
    for mode in MODES
    for step in NAMED_STEPS[mode]
    if FULL or state == "duckdb" or (mode, step) in WAREHOUSE_STEPS
]
NAMED_ROWS = 2_000


@pytest.mark.parametrize(("project", "mode", "step"), NAMED_CASES, indirect=["project"])
def test_a_run_killed_at_each_named_step_loses_nothing(
    project: Project, kafka: Kafka, mode: str, step: str
) -> None:
    faulted = Faulted(project, kafka, mode, NAMED_ROWS)
    figures = Figures(f"killed at {step}", mode)

    killed = faulted.start({faults.FAULT_ENV: step})
    assert killed.wait(timeout=120) == -signal.SIGKILL, "the run did not reach the step"
    figures.kills = 1
    faulted.rerun_and_check(figures)


# (state, mode, step): where a state write fails; only the local state stages its commit.
WRITE_FAULTS = [
    (state, mode, faults.DURING_PREPARE if mode == "exactly_once" else faults.DURING_STATE_COMMIT)
    for state in ("duckdb", "postgres+warehouse")
    for mode in MODES
] + [("duckdb", "at_least_once", faults.DURING_STAGING)]


@pytest.mark.parametrize(
    ("project", "mode", "step"),
    [pytest.param(*case, id="-".join(case)) for case in WRITE_FAULTS],
    indirect=["project"],
)
def test_a_failed_state_write_commits_nothing(
    project: Project, kafka: Kafka, mode: str, step: str
) -> None:
    faulted = Faulted(project, kafka, mode, NAMED_ROWS)

    failed = project.sync("--select", "big", env={faults.FAULT_ENV: f"{step}:enospc"})

    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "No space left on device" in failed.stdout + failed.stderr
    assert "Traceback" not in failed.stderr
    plan = project.sync("plan", "--select", "big")
    assert f"{NAMED_ROWS} added, 0 changed, 0 removed" in plan.stdout  # the state as before
    if mode == "exactly_once":  # the transaction was aborted: nothing visible
        assert faulted.messages(0) == []
    faulted.rerun()
    figures = Figures("state write fails (ENOSPC)", mode)
    faulted.check(0, 0, figures)
    assert figures.lost == 0, figures


@pytest.fixture
def tiny_filesystem(tmp_path: Path) -> Iterator[Path]:
    """A 1 MB tmpfs: room for an empty state, not for a 200,000-row snapshot (needs root)."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_during_the_commit_loses_nothing(
    project: Project, kafka: Kafka, tiny_filesystem: Path
) -> None:
    faulted = Faulted(project, kafka, "at_least_once", ROWS)
    state = tiny_filesystem / "state.duckdb"
    project.set_output(state_path=str(state))

    full = project.sync("--select", "big")

    assert full.returncode == 1, full.stdout + full.stderr
    assert "No space left on device" in full.stdout + full.stderr, full.stdout + full.stderr
    assert "Traceback" not in full.stderr
    assert faulted.end_offset() == ROWS  # it failed committing, after sending every row
    subprocess.run(["mount", "-o", "remount,size=512m", str(tiny_filesystem)], check=True)
    plan = project.sync("plan", "--select", "big")
    assert f"{ROWS} added, 0 changed, 0 removed" in plan.stdout, plan.stdout + plan.stderr
    faulted.rerun()
    figures = Figures("disk full while committing", "at_least_once")
    faulted.check(0, 0, figures)
    figures.report()
    assert figures.lost == 0, figures


@pytest.fixture
def own_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_kafka.Broker]:
    """A broker of the test's own, to stop and start again."""
    broker = local_kafka.start(tmp_path_factory.mktemp("restarted-kafka"))
    try:
        yield broker
    finally:
        local_kafka.stop(broker.state_dir)


SLOW = {"queue.buffering.max.messages": 1, "linger.ms": 0, "message.timeout.ms": 60_000}


@pytest.mark.parametrize("mode", MODES)
def test_a_broker_restart_mid_run_loses_nothing(
    tmp_path: Path, own_broker: local_kafka.Broker, mode: str
) -> None:
    kafka = Kafka(own_broker.plaintext, own_broker)
    faulted = Faulted(copy_example(tmp_path / "project", kafka), kafka, mode, 20_000)
    faulted.project.set_producer(SLOW)
    process = faulted.start()
    deadline = time.monotonic() + 120
    while faulted.end_offset() == 0:
        assert time.monotonic() < deadline and process.poll() is None, "nothing was published"
        time.sleep(0.05)  # polling interval of a real readiness check
    own_broker.stop()
    stopped_at = time.monotonic()
    broker = local_kafka.relaunch(own_broker)
    assert broker.plaintext == own_broker.plaintext

    code = process.wait(timeout=SLOW["message.timeout.ms"] / 1000 + 120)
    figures = Figures("broker restarted mid-run", mode)
    figures.notes.append(f"exit {code} {time.monotonic() - stopped_at:.0f} s after the stop")
    assert code in (0, 1)
    faulted.project.set_producer({})
    faulted.rerun_and_check(figures)
