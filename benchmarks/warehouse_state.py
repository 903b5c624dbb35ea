"""The state kept in the warehouse, at scale: only the changed rows leave it.

    .venv/bin/python benchmarks/warehouse_state.py postgres --rows 10000000 --changed 0.01
    .venv/bin/python benchmarks/warehouse_state.py duckdb --rows 100000000 --changed 0.001

postgres: loads the benchmark's 8-column model (bench_setup.py) into a local PostgreSQL
server, then syncs it with the state in a local file and with the state in the warehouse,
side by side. Each repeat changes `--changed` of the rows (an UPDATE of every n-th row)
and runs both; the first run of each records the rows without sending them
(initial_sync: skip). Every connection to PostgreSQL goes through a counting TCP relay,
which reports the bytes the server sent to the sync (the relay adds the same small cost to
both).

duckdb: builds the model in a DuckDB warehouse file, syncs it with the state in the
warehouse (the file itself), and reports each run's wall time and peak RSS (the sync
process alone, see bench_rusage.py): with DuckDB's memory capped (memory_limit, 1GB by
default), the peak should not grow with the table.

Prints one line per run and a summary table. Run it on a quiet machine: the load average
is printed with the results.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import local_servers.kafka as local_kafka
import local_servers.postgres as local_postgres
import yaml
from bench_setup import TABLE, build_warehouse
from pg_read import load_postgres, pg_output, write_project

BENCHMARKS = Path(__file__).resolve().parent
STATE_SCHEMA = "dbt_kafka_sync_bench"


class CountingRelay:
    """A TCP relay on loopback that counts the bytes the server sends back."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.received = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            client, _ = self.listener.accept()
            server = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, True), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, counted: bool) -> None:
        buffer = bytearray(1 << 20)
        view = memoryview(buffer)
        try:
            while size := source.recv_into(buffer):
                sink.sendall(view[:size])
                if counted:
                    with self._lock:
                        self.received += size
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def take(self) -> int:
        """Bytes received since the last call."""
        with self._lock:
            received, self.received = self.received, 0
        return received


@dataclass(frozen=True)
class RunStats:
    """One `dbt-kafka-sync run`: its counts, wall time, peak RSS and bytes from the server."""

    label: str
    wall_s: float
    peak_rss_mib: float
    changes: int
    server_bytes: int


def sync(project: Path, label: str, relay: CountingRelay | None) -> RunStats:
    """Run the sync as a user does, measured by bench_rusage.py."""
    if relay is not None:
        relay.take()
    with tempfile.NamedTemporaryFile(suffix=".json") as result:
        command = [sys.executable, "-S", str(BENCHMARKS / "bench_rusage.py"), result.name]
        command += [sys.executable, "-m", "dbt_kafka_sync", "run", "--project-dir", str(project)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=7200)
        if done.returncode != 0:
            raise RuntimeError(f"{label} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}")
        stats = json.loads(Path(result.name).read_text())
    counts = re.search(r"(\d+) added, (\d+) changed, (\d+) removed", done.stdout)
    assert counts is not None, done.stdout
    run = RunStats(
        label,
        stats["wall_s"],
        stats["peak_rss_kib"] / 1024,
        sum(int(n) for n in counts.groups()),
        relay.take() if relay is not None else 0,
    )
    print(
        f"{label:<28} {run.changes:>11,} changes  {run.wall_s:8.2f} s"
        f"  peak RSS {run.peak_rss_mib:7.0f} MiB  from server {run.server_bytes / 2**20:9.1f} MiB",
        flush=True,
    )
    return run


def configure(project: Path, topic: str, state: dict[str, Any] | None) -> None:
    """Point the project's sync at a topic, first run recording only; choose the state."""
    manifest = project / "target" / "manifest.json"
    nodes = json.loads(manifest.read_text())
    for node in nodes["nodes"].values():
        node["config"]["meta"]["kafka_sync"].update(topic=topic, initial_sync="skip")
    manifest.write_text(json.dumps(nodes))
    profiles = yaml.safe_load((project / "profiles.yml").read_text())
    if state is not None:
        profiles["kafka_sync"]["outputs"]["dev"]["state"] = state
    (project / "profiles.yml").write_text(yaml.safe_dump(profiles))


def postgres_bench(args: argparse.Namespace, work: Path) -> list[RunStats]:
    warehouse = work / "warehouse.duckdb"
    build_warehouse(warehouse, args.rows, payloads=False)
    server = local_postgres.start(work / "postgres")
    broker = local_kafka.start(work / "broker")
    try:
        load_postgres(server, warehouse, work)
        warehouse.unlink()
        relay = CountingRelay(server.host, server.port)
        output = {**pg_output(server), "host": "127.0.0.1", "port": relay.port}
        topic = "warehouse-state-bench"
        local_kafka.create_topic(broker.plaintext, topic, 6)
        projects = {}
        for name, state in [("local", None), ("warehouse", _warehouse_state())]:
            projects[name] = write_project(work / name, broker.plaintext, output, server.dbname)
            configure(projects[name], topic, state)
        runs = [sync(projects[name], f"{name}: first run", relay) for name in projects]
        step = round(1 / args.changed)
        for repeat in range(args.repeats):
            with server.connect() as connection:
                connection.execute(f"UPDATE {TABLE} SET score = score + 1 WHERE id % {step} = 0")
                connection.commit()
            for name, project in projects.items():
                runs.append(
                    sync(project, f"{name}: {args.changed:.1%} changed #{repeat + 1}", relay)
                )
        return runs
    finally:
        broker.stop()
        server.stop()


def _warehouse_state() -> dict[str, Any]:
    return {"type": "warehouse", "schema": STATE_SCHEMA}


def duckdb_bench(args: argparse.Namespace, work: Path) -> list[RunStats]:
    warehouse = work / "warehouse.duckdb"
    began = time.perf_counter()
    build_warehouse(warehouse, args.rows, payloads=False)
    size = warehouse.stat().st_size
    print(
        f"built {args.rows:,} rows, {size / 2**30:.1f} GiB, in {time.perf_counter() - began:.0f} s"
    )
    broker = local_kafka.start(work / "broker")
    try:
        topic = "warehouse-state-bench"
        local_kafka.create_topic(broker.plaintext, topic, 6)
        duck = {"type": "duckdb", "path": str(warehouse)}
        project = write_project(work / "duck", broker.plaintext, duck, warehouse.stem)
        configure(project, topic, _warehouse_state())
        runs = [sync(project, "warehouse: first run", None)]
        step = round(1 / args.changed)
        for repeat in range(args.repeats):
            with duckdb.connect(str(warehouse)) as connection:
                connection.execute(f"UPDATE {TABLE} SET score = score + 1 WHERE id % {step} = 0")
                connection.execute("CHECKPOINT")
            runs.append(sync(project, f"warehouse: {args.changed:.1%} changed #{repeat + 1}", None))
        return runs
    finally:
        broker.stop()


def summary(runs: list[RunStats]) -> None:
    print(f"\nload average {os.getloadavg()[0]:.2f}, {os.cpu_count()} cores")
    print("| run | changes | wall s (median, range) | peak RSS MiB | MiB from server |")
    print("| --- | ---: | ---: | ---: | ---: |")
    labels = dict.fromkeys(re.sub(r" #\d+$", "", run.label) for run in runs)
    for label in labels:
        same = [run for run in runs if re.sub(r" #\d+$", "", run.label) == label]
        walls = [run.wall_s for run in same]
        print(
            f"| {label} | {same[0].changes:,} | {statistics.median(walls):.1f}"
            f" ({min(walls):.1f}-{max(walls):.1f}) | {max(r.peak_rss_mib for r in same):.0f}"
            f" | {statistics.median(r.server_bytes for r in same) / 2**20:.1f} |"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("engine", choices=["postgres", "duckdb"])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--changed", type=float, default=0.01, help="share of rows changed")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="warehouse-state-bench-") as tmp:
        bench = postgres_bench if args.engine == "postgres" else duckdb_bench
        summary(bench(args, Path(tmp)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
