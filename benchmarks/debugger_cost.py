"""What the debugger's message log costs a backfill: the same run with the log on and off.

    PYTHONPATH=.:tests:benchmarks .venv/bin/python benchmarks/debugger_cost.py --rows 500000

One local broker; each measurement is a backfill of the columns-mode model into a fresh
topic with a fresh state file, in its own process, on and off taking turns so that both
see the same moment of a shared machine. Prints each run's wall time, the stages the log
recorded (on), the state file's size and the load average. Then the price of offsets:
the same messages produced with the producer reporting only failures (as the tool does)
and reporting every message to a callback that keeps its partition and offset.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import local_servers.kafka as local_kafka
import yaml
from bench_setup import MODELS, BenchProject, build_warehouse

MODES = {
    "on": {"record_values": True},
    "keys": {"record_values": False},
    "off": {"enabled": False},
}


def add_outputs(project: BenchProject) -> None:
    """One kafka_sync output per mode, each with its `debugger` block."""
    path = project.root / "profiles.yml"
    profiles = yaml.safe_load(path.read_text())
    dev = profiles["kafka_sync"]["outputs"]["dev"]
    for mode, debugger in MODES.items():
        profiles["kafka_sync"]["outputs"][mode] = {**dev, "debugger": debugger}
    path.write_text(yaml.safe_dump(profiles, sort_keys=False))


def backfill(project: BenchProject, broker: local_kafka.Broker, mode: str, state: Path) -> float:
    model = MODELS["columns"]
    topic = f"debugger-{mode}-{state.stem}"
    broker.create_topic(topic, 6)
    project.use_topic(model, topic)
    add_outputs(project)  # use_topic rewrote only the manifest; profiles stay
    command = [sys.executable, "-m", "dbt_kafka_sync", "run", "--project-dir", str(project.root)]
    command += ["--select", model.name, "--target", mode, "--state-path", str(state)]
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{mode} failed:\n{result.stdout}\n{result.stderr}")
    return seconds


def stages(state: Path) -> dict[str, float]:
    with duckdb.connect(str(state), read_only=True) as con:
        rows = con.execute("SELECT stage, seconds FROM stage_timings").fetchall()
    return {stage: round(seconds, 2) for stage, seconds in rows}


def offsets_cost(broker: local_kafka.Broker, messages: int, report_all: bool) -> float:
    """Seconds to produce and flush `messages`, with a report per message or per failure."""
    from array import array

    from confluent_kafka import Producer

    from dbt_kafka_sync.kafka.producer import DEFAULT_PRODUCER_SETTINGS

    topic = f"offsets-{report_all}-{time.monotonic_ns()}"
    broker.create_topic(topic, 6)
    settings = {**DEFAULT_PRODUCER_SETTINGS, "bootstrap.servers": broker.plaintext}
    partitions, offsets = array("i"), array("q")

    def on_delivery(error: object, message: object) -> None:
        if error is None:
            partitions.append(message.partition())  # type: ignore[attr-defined]
            offsets.append(message.offset())  # type: ignore[attr-defined]

    producer = Producer(
        {**settings, "delivery.report.only.error": not report_all, "on_delivery": on_delivery}
    )
    value = b'{"id": 1, "name": "Alice Martin", "email": "alice.martin1@example-mail.com"}' * 2
    started = time.perf_counter()
    for i in range(messages):
        key = str(i).encode()
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.5)
        if i % 1000 == 0:
            producer.poll(0)
    producer.flush()
    seconds = time.perf_counter() - started
    assert len(offsets) == (messages if report_all else 0)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=500_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dks-debugger-"))
    broker = local_kafka.start(work / "broker")
    try:
        project = BenchProject(work / "project", broker.plaintext)
        project.root.mkdir(parents=True)
        build_warehouse(project.warehouse, args.rows, payloads=False)
        project.write()
        times: dict[str, list[float]] = {mode: [] for mode in MODES}
        for repeat in range(args.repeats):
            order = list(MODES) if repeat % 2 == 0 else list(reversed(MODES))
            for mode in order:
                state = work / f"state-{mode}-{repeat}.duckdb"
                load = os.getloadavg()[0]
                seconds = backfill(project, broker, mode, state)
                times[mode].append(seconds)
                size = state.stat().st_size / 1e6
                detail = stages(state) if mode != "off" else {}
                print(
                    f"{mode:3} #{repeat}: {seconds:6.2f}s  state {size:6.1f} MB  load {load:.1f}"
                    f"  {detail}",
                    flush=True,
                )
        for mode, values in times.items():
            print(
                f"{mode:3}: median {statistics.median(values):.2f}s,"
                f" range {min(values):.2f}-{max(values):.2f}s over {len(values)} runs"
            )
        print(f"rows {args.rows:,}; load average now {os.getloadavg()}")
        for repeat in range(args.repeats):
            for report_all in (False, True) if repeat % 2 == 0 else (True, False):
                load = os.getloadavg()[0]
                seconds = offsets_cost(broker, args.rows, report_all)
                label = "report every message" if report_all else "report failures only"
                print(f"{label:22}: {seconds:6.2f}s for {args.rows:,} messages  load {load:.1f}")
    finally:
        broker.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
