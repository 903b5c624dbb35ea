"""Benchmark dbt-kafka-sync end to end against Kafka's own producer, a bare Python loop and pandas.

    .venv/bin/pip install -r benchmarks/requirements.txt
    .venv/bin/python benchmarks/run.py                 # 1,000,000 rows, 6 partitions
    .venv/bin/python benchmarks/run.py --rows 100000 --skip tool-liquid --keep

One run starts one local Kafka broker (tests/local_servers/kafka), generates a DuckDB warehouse
and a minimal dbt project around it (no dbt run), then measures, each on a fresh topic
with the same partition count and each in its own child process:

  kafka              Kafka's ProducerPerformance with the tool's producer settings,
                     random records of our average payload size
  kafka-json         the same with our JSON payloads (--payload-file)
  python             a bare confluent-kafka loop over the same pre-built payloads
  python-header      the bare loop + the tool's event header on every message
  python-callback    ... + a functools.partial delivery callback per message, as the tool
  tool-backfill      `dbt-kafka-sync run`: first run, every row sent (columns mode)
  diy-backfill       the ~20-line script a team would write for that first run: DuckDB
                     `to_json` of the table, produce() each row with its key and an
                     event header, flush() (benchmarks/diy_backfill.py)
  pandas-initial     a straightforward pandas + confluent-kafka script, first run
  (10% of the rows change: a third each updated, deleted, added; not timed)
  tool-change        `dbt-kafka-sync run` publishing the 10% change
  pandas-change      the pandas script publishing the same change
  tool-nochange      `dbt-kafka-sync run` with nothing changed
  tool-columns-list  backfill of a fresh sync with `message: {columns: [...]}`
  tool-column        backfill of a fresh sync with `message: {column: payload}`
  tool-template      backfill of a fresh sync with an inline template of `{{ row.x | json }}`
                     values only, which DuckDB builds
  tool-liquid        the same document from a template with an `if` tag, which Liquid
                     renders row by row (`compile: false`)
  tool-hightouch-columns
                     backfill of a model with a list column `tags` (0-3 tags a row), in
                     columns mode: the baseline for the next two
  tool-hightouch     the same model with a Hightouch-style template (nesting, filters, an
                     `if`, a `for` over the tags, a date format), as the tool builds it
  tool-hightouch-liquid
                     the same template with `compile: false`, which makes Liquid render
                     it, on the model's first --liquid-rows rows
  profile            the tool's backfill under cProfile, then under py-spy if installed

Results go to benchmarks/results/: results.md, results.json, throughput.png, profile.md.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import local_servers.kafka as local_kafka  # tests/local_servers/kafka runs the broker
from bench_kafka import (
    PERF_HEAP,
    producer_perf_command,
    producer_perf_seconds,
    sample_values,
)
from bench_process import (
    MeasuredProcessError,
    ProcessStats,
    check_ok,
    run_measured,
)
from bench_profile import profile_report, spy_report
from bench_report import (
    Measurement,
    machine_info,
    plot_throughput,
    render_markdown,
    write_json,
)
from bench_setup import (
    MODELS,
    PROGRESS_TOPIC,
    TABLE,
    BenchModel,
    BenchProject,
    build_warehouse,
    change_rows,
    export_payloads,
)

from dbt_kafka_sync.kafka.producer import DEFAULT_PRODUCER_SETTINGS

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STEPS = (
    "kafka",
    "kafka-json",
    "python",
    "python-header",
    "python-callback",
    "tool-backfill",
    "diy-backfill",
    "tool-exactly-once",
    "pandas-initial",
    "change",
    "tool-change",
    "pandas-change",
    "tool-nochange",
    "tool-columns-list",
    "tool-column",
    "tool-template",
    "tool-liquid",
    "tool-hightouch-columns",
    "tool-hightouch",
    "tool-hightouch-liquid",
    "profile",
)
HIGHTOUCH_STEPS = {
    "tool-hightouch-columns": "hightouch_columns",
    "tool-hightouch": "hightouch",
    "tool-hightouch-liquid": "hightouch_liquid",
}
NEEDS = {"tool-change": "tool-backfill", "tool-nochange": "tool-backfill"}
NEEDS |= {"pandas-change": "pandas-initial"}
SPY_RATE = 100  # samples per second
_TOOL_SUMMARY = re.compile(
    r"(\d+) added, (\d+) changed, (\d+) removed; (\d+) delivered, (\d+) failed"
)


@dataclass
class Bench:
    """Everything the steps share: options, folders, the broker and the dbt project."""

    args: argparse.Namespace
    work: Path
    broker: local_kafka.Broker
    project: BenchProject
    payloads: Path
    payload_lines: Path
    payload_size: float
    results: list[Measurement] = field(default_factory=list)
    expected_change: dict[str, int] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)  # step -> why
    started: float = field(default_factory=time.perf_counter)  # when the run began
    load_at_start: float = field(default_factory=lambda: load())

    @property
    def logs(self) -> Path:
        return self.work / "logs"

    @property
    def producer_config(self) -> str:
        return json.dumps(DEFAULT_PRODUCER_SETTINGS)

    def topic(self, key: str) -> str:
        """A fresh topic for one measurement."""
        name = f"bench-{key}"
        self.broker.create_topic(name, self.args.partitions)
        return name

    def measure(self, command: list[str], key: str) -> ProcessStats:
        stats = run_measured(command, self.logs, key, self.args.timeout, cwd=ROOT)
        return check_ok(stats, key)

    def say(self, text: str) -> None:
        print(f"[{time.perf_counter() - self.started:6.1f}s] {text}", flush=True)

    def add(self, measurement: Measurement) -> None:
        self.results.append(measurement)
        rate = f"{measurement.msgs_per_s:,.0f} msg/s" if measurement.messages else "no messages"
        self.say(
            f"{measurement.key}: {measurement.messages:,} msgs in {measurement.wall_s:.2f} s"
            f" ({rate}), peak RSS {measurement.peak_rss_mb:,.0f} MB"
        )


def load() -> float:
    """The 1-minute load average: other work on this machine skews every figure."""
    return os.getloadavg()[0]


# ------------------------------------------------------------------------------- the steps


def payload_bytes(bench: Bench, topic: str, messages: int) -> tuple[float, str]:
    """Payload bytes of a topic's messages, from a sample of its values; and a note."""
    if not messages:
        return 0.0, ""
    sample = sample_values(bench.broker.plaintext, topic, limit=min(3000, messages))
    note = f"{sample.invalid_json} of {sample.messages} sampled values are not JSON"
    return sample.average_bytes * messages, note if sample.invalid_json else ""


def kafka_ceiling(bench: Bench, key: str, json_payloads: bool) -> None:
    """Kafka's ProducerPerformance: random records of our average size, or our payloads."""
    topic = bench.topic(key)
    size = round(bench.payload_size)
    payload: int | Path = bench.payload_lines if json_payloads else size
    command = producer_perf_command(
        bench.broker.libs_dir, bench.broker.plaintext, topic, bench.args.rows, payload
    )
    stats = bench.measure(command, key)
    _, seconds = producer_perf_seconds(stats.stdout)
    messages = local_kafka.message_count(bench.broker.plaintext, topic)
    what = (
        "our JSON payloads, one at random per record"
        if json_payloads
        else (f"random {size}-byte records (our average payload size)")
    )
    bench.add(
        Measurement(
            key=key,
            label="Kafka ProducerPerformance (Java)" + (", our JSON" if json_payloads else ""),
            wall_s=seconds,
            process_s=stats.wall_s,
            messages=messages,
            payload_bytes=messages * (bench.payload_size if json_payloads else size),
            peak_rss_mb=stats.peak_rss_mb,
            cpu_s=stats.cpu_s,
            timed="ProducerPerformance's own timer",
            note=f"{what}; JVM {PERF_HEAP}",
        )
    )


def python_loop(bench: Bench, key: str, label: str, extra: list[str]) -> None:
    topic = bench.topic(key)
    command = [
        sys.executable,
        str(HERE / "python_loop.py"),
        "--payloads",
        str(bench.payloads),
        "--bootstrap",
        bench.broker.plaintext,
        "--topic",
        topic,
        "--partitions",
        str(bench.args.partitions),
        "--producer-config",
        bench.producer_config,
        *extra,
    ]
    stats = bench.measure(command, key)
    summary = json.loads(stats.stdout.strip().splitlines()[-1])
    messages = local_kafka.message_count(bench.broker.plaintext, topic)
    bench.add(
        Measurement(
            key=key,
            label=label,
            wall_s=summary["seconds"],
            process_s=stats.wall_s,
            messages=messages,
            payload_bytes=float(summary["bytes"]),
            peak_rss_mb=stats.peak_rss_mb,
            cpu_s=stats.cpu_s,
            timed="produce + poll + flush (payloads pre-loaded)",
            note=_delivery_note(summary, messages),
        )
    )


def _delivery_note(summary: dict[str, Any], messages: int) -> str:
    if summary.get("failed") or summary.get("delivered", messages) != messages:
        return f"delivery reports: {summary.get('delivered')} ok, {summary.get('failed')} failed"
    return ""


def tool_command(bench: Bench, command: str, model: BenchModel | None) -> list[str]:
    """`dbt-kafka-sync COMMAND --project-dir DIR [--select MODEL]`."""
    executable = Path(sys.executable).with_name("dbt-kafka-sync")
    program = [str(executable)] if executable.exists() else [sys.executable, "-m", "dbt_kafka_sync"]
    return program + tool_args(bench, command, model)


def tool_args(bench: Bench, command: str, model: BenchModel | None) -> list[str]:
    select = ["--select", model.name] if model else []
    return [command, "--project-dir", str(bench.project.root), *select]


def tool_run(bench: Bench, key: str, label: str, mode: str) -> None:
    model = MODELS[mode]
    topic = bench.topic(key)
    bench.project.use_topic(model, topic)
    stats = bench.measure(tool_command(bench, "run", model), key)
    counts = _tool_counts(stats.stdout)
    problem = ""
    if key == "tool-change" and counts[:3] != _expected(bench):
        problem = f"expected {bench.expected_change}, the tool reported {counts[:3]}"
    summary = "{} added, {} changed, {} removed; {} delivered, {} failed".format(*counts)
    add_whole_process(bench, key, label, stats, topic, summary, problem)


def add_whole_process(
    bench: Bench,
    key: str,
    label: str,
    stats: ProcessStats,
    topic: str,
    summary: str,
    problem: str = "",
) -> None:
    """Record a program timed start to exit, by what reached its topic.

    The note is the program's own summary, unless something is wrong with the payloads
    or with what the program reported (`problem`).
    """
    messages = local_kafka.message_count(bench.broker.plaintext, topic)
    size, note = payload_bytes(bench, topic, messages)
    bench.add(
        Measurement(
            key=key,
            label=label,
            wall_s=stats.wall_s,
            process_s=stats.wall_s,
            messages=messages,
            payload_bytes=size,
            peak_rss_mb=stats.peak_rss_mb,
            cpu_s=stats.cpu_s,
            timed="whole process",
            note=f"{note} {problem}".strip() or summary,
        )
    )


def _tool_counts(output: str) -> tuple[int, ...]:
    found = _TOOL_SUMMARY.search(output)
    if not found:
        raise ValueError(f"no run summary in dbt-kafka-sync's output:\n{output[-2000:]}")
    return tuple(int(n) for n in found.groups())


def _expected(bench: Bench) -> tuple[int, ...]:
    return tuple(bench.expected_change[e] for e in ("added", "changed", "removed"))


def script_run(bench: Bench, key: str, label: str, script: str, summary: str, *extra: str) -> None:
    """A script a team would write instead (benchmarks/SCRIPT), timed as the tool is.

    It reads the warehouse table and publishes to a fresh topic; its last output line is
    a JSON object of counts, which `summary` formats.
    """
    topic = bench.topic(key)
    command = [sys.executable, str(HERE / script), "--warehouse", str(bench.project.warehouse)]
    command += ["--table", TABLE, "--bootstrap", bench.broker.plaintext, "--topic", topic]
    command += ["--producer-config", bench.producer_config, *extra]
    stats = bench.measure(command, key)
    counts = json.loads(stats.stdout.strip().splitlines()[-1])
    add_whole_process(bench, key, label, stats, topic, summary.format(**counts))


def pandas_run(bench: Bench, key: str, label: str) -> None:
    summary = "{added} added, {changed} changed, {removed} removed; {delivered} delivered"
    previous = str(bench.work / "pandas_previous.parquet")
    script_run(bench, key, label, "pandas_sync.py", summary, "--previous", previous)


def diy_backfill(bench: Bench, key: str, label: str) -> None:
    """The do-it-yourself first run (benchmarks/diy_backfill.py)."""
    summary = "{messages} sent; {delivered} delivered, {failed} failed"
    script_run(bench, key, label, "diy_backfill.py", summary)


def tool_run_enabled(bench: Bench, key: str, label: str, mode: str) -> None:
    """tool_run of an optional model, in the manifest only while its step runs.

    Its config may be one this version of the tool refuses (an option not there yet):
    every other step must still find a valid manifest.
    """
    model = MODELS[mode]
    bench.project.enabled.add(model.name)
    try:
        tool_run(bench, key, label, mode)
    finally:
        bench.project.enabled.discard(model.name)
        bench.project.write_manifest()


def change_warehouse(bench: Bench) -> None:
    bench.expected_change = change_rows(bench.project.warehouse, bench.args.rows)
    bench.say(f"changed the warehouse table (not timed): {bench.expected_change}")


def profile_backfill(bench: Bench) -> None:
    """The tool's backfill of fresh syncs under cProfile and py-spy: results/profile.md."""
    model = MODELS["cprofile"]
    bench.project.use_topic(model, bench.topic("cprofile"))
    output = bench.work / "backfill.prof"
    command = [sys.executable, "-m", "cProfile", "-o", str(output), "-m", "dbt_kafka_sync"]
    stats = bench.measure(command + tool_args(bench, "run", model), "cprofile")
    bench.args.results.mkdir(parents=True, exist_ok=True)
    report = bench.args.results / "profile.md"
    text = profile_report(output, stats.wall_s, bench.args.rows)
    bench.say(f"profile: backfill under cProfile took {stats.wall_s:.1f} s")
    spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if spy:
        try:
            text += "\n" + spy_backfill(bench, spy)
        except MeasuredProcessError as exc:  # e.g. no ptrace permission in a container
            text += f"\npy-spy failed: {exc}\n"
    report.write_text(text, encoding="utf-8")
    bench.say(f"profile written to {report}")


def spy_backfill(bench: Bench, spy: str) -> str:
    model = MODELS["py-spy"]
    bench.project.use_topic(model, bench.topic("py-spy"))
    raw = bench.work / "backfill.py-spy.txt"
    command = [spy, "record", "--native", "--idle", "-r", str(SPY_RATE), "-f", "raw"]
    command += ["-o", str(raw), "--", sys.executable, "-m", "dbt_kafka_sync"]
    stats = bench.measure(command + tool_args(bench, "run", model), "py-spy")
    bench.say(f"profile: backfill under py-spy took {stats.wall_s:.1f} s")
    return spy_report(raw, stats.wall_s, SPY_RATE)


def step_actions(bench: Bench) -> dict[str, Callable[[], None]]:
    """Each step's action, by name."""
    return {
        "kafka": lambda: kafka_ceiling(bench, "kafka", json_payloads=False),
        "kafka-json": lambda: kafka_ceiling(bench, "kafka-json", json_payloads=True),
        "python": lambda: python_loop(bench, "python", "bare confluent-kafka loop (Python)", []),
        "python-header": lambda: python_loop(
            bench, "python-header", "bare loop + event header", ["--event-header"]
        ),
        "python-callback": lambda: python_loop(
            bench,
            "python-callback",
            "bare loop + event header + per-message callback",
            ["--event-header", "--per-message-callback"],
        ),
        "tool-backfill": lambda: tool_run(
            bench, "tool-backfill", "dbt-kafka-sync: backfill (columns mode)", "columns"
        ),
        "diy-backfill": lambda: diy_backfill(
            bench, "diy-backfill", "do-it-yourself script: backfill (to_json + produce)"
        ),
        "tool-exactly-once": lambda: tool_run(
            bench,
            "tool-exactly-once",
            "dbt-kafka-sync: backfill, exactly-once (one transaction)",
            "exactly_once",
        ),
        "pandas-initial": lambda: pandas_run(bench, "pandas-initial", "pandas script: initial"),
        "change": lambda: change_warehouse(bench),
        "tool-change": lambda: tool_run(
            bench, "tool-change", "dbt-kafka-sync: 10% changed", "columns"
        ),
        "pandas-change": lambda: pandas_run(bench, "pandas-change", "pandas script: 10% changed"),
        "tool-nochange": lambda: tool_run(
            bench, "tool-nochange", "dbt-kafka-sync: nothing changed", "columns"
        ),
        "tool-columns-list": lambda: tool_run(
            bench, "tool-columns-list", "dbt-kafka-sync: backfill, columns list", "columns_list"
        ),
        "tool-column": lambda: tool_run(
            bench, "tool-column", "dbt-kafka-sync: backfill, JSON column", "column"
        ),
        "tool-template": lambda: tool_run(
            bench, "tool-template", "dbt-kafka-sync: backfill, template built by DuckDB", "template"
        ),
        "tool-liquid": lambda: tool_run(
            bench, "tool-liquid", "dbt-kafka-sync: backfill, template rendered by Liquid", "liquid"
        ),
        "tool-hightouch-columns": lambda: tool_run_enabled(
            bench,
            "tool-hightouch-columns",
            "dbt-kafka-sync: backfill of the model with tags, columns mode",
            "hightouch_columns",
        ),
        "tool-hightouch": lambda: tool_run_enabled(
            bench,
            "tool-hightouch",
            "dbt-kafka-sync: backfill of the model with tags, Hightouch-style template",
            "hightouch",
        ),
        "tool-hightouch-liquid": lambda: tool_run_enabled(
            bench,
            "tool-hightouch-liquid",
            "dbt-kafka-sync: the same template rendered by Liquid (compile: false),"
            f" first {liquid_rows(bench.args):,} rows",
            "hightouch_liquid",
        ),
        "profile": lambda: profile_backfill(bench),
    }


def run_steps(bench: Bench, steps: list[str]) -> None:
    """Run the steps in order; a step that fails is reported and the others go on."""
    actions = step_actions(bench)
    for step in steps:
        try:
            actions[step]()
        except Exception as exc:  # any failure: report it, measure the rest
            bench.failed[step] = f"{type(exc).__name__}: {exc}"
            bench.say(f"{step} FAILED: {bench.failed[step]}")


def chosen_steps(args: argparse.Namespace) -> list[str]:
    """The steps to run, in order: skipped ones and those needing a skipped one left out."""
    skipped = set(args.skip)
    steps = []
    for step in STEPS:
        needed = NEEDS.get(step)
        if step in skipped or (needed is not None and needed in skipped):
            continue
        steps.append(step)
    return steps


# ------------------------------------------------------------------------ set-up and report


def prepare(
    args: argparse.Namespace,
    work: Path,
    broker: local_kafka.Broker,
    started: float,
    load_at_start: float,
) -> Bench:
    """Generate the warehouse, the dbt project and the payload files; check with `plan`."""
    project = BenchProject(work / "project", broker.plaintext)
    project.root.mkdir(parents=True)
    hightouch = [step for step in HIGHTOUCH_STEPS if step not in args.skip]
    sample = liquid_rows(args) if hightouch else None
    build_warehouse(project.warehouse, args.rows, tagged_sample=sample)
    payloads, lines = work / "payloads.parquet", work / "payloads.txt"
    size = export_payloads(project.warehouse, payloads, lines)
    project.write()
    broker.create_topic(PROGRESS_TOPIC, 1)
    bench = Bench(
        args,
        work,
        broker,
        project,
        payloads,
        lines,
        size,
        started=started,
        load_at_start=load_at_start,
    )
    bench.say(f"warehouse of {args.rows:,} rows, average payload {size:.1f} bytes")
    check_plan(bench)
    return bench


def liquid_rows(args: argparse.Namespace) -> int:
    """Rows of the model Liquid renders for tool-hightouch-liquid."""
    return int(min(args.liquid_rows, args.rows))


def check_plan(bench: Bench) -> None:
    """`dbt-kafka-sync plan` must accept the project: every model, every row to publish.

    The model of tool-hightouch-liquid is left out: only its step puts it in.
    """
    models = len(bench.project.models())
    stats = bench.measure(tool_command(bench, "plan", None), "plan")
    expected = f"{bench.args.rows} to publish"
    if stats.stdout.count(expected) != models or "FAIL" in stats.stdout:
        raise RuntimeError(f"unexpected `dbt-kafka-sync plan` output:\n{stats.stdout}")
    bench.say(f"`dbt-kafka-sync plan` accepts the project's {models} models")


def report(bench: Bench, machine: dict[str, str]) -> str:
    args = bench.args
    params = {
        "rows": f"{args.rows:,}",
        "partitions": str(args.partitions),
        "average payload": f"{bench.payload_size:.1f} bytes",
        "producer settings (all Python producers)": json.dumps(DEFAULT_PRODUCER_SETTINGS),
        "total bench wall time": f"{time.perf_counter() - bench.started:.0f} s",
        "load average (1 min) before the run": f"{bench.load_at_start:.2f}",
    }
    args.results.mkdir(parents=True, exist_ok=True)
    text = render_markdown(bench.results, machine, params, bench.failed)
    (args.results / "results.md").write_text(text, encoding="utf-8")
    write_json(args.results / "results.json", bench.results, machine, params)
    if bench.results:
        title = f"{args.rows:,} rows, {args.partitions} partitions, {machine['cpu']}"
        plot_throughput(args.results / "throughput.png", bench.results, title)
    return text


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the model")
    parser.add_argument("--partitions", type=int, default=6, help="partitions of every topic")
    parser.add_argument(
        "--liquid-rows",
        type=int,
        default=200_000,
        help="rows of the model Liquid renders in tool-hightouch-liquid (at most --rows)",
    )
    parser.add_argument(
        "--skip",
        nargs="+",
        default=[],
        choices=[s for s in STEPS if s != "change"],
        metavar="STEP",
        help="steps to leave out, by the names above (a change run is also left out"
        " without its first run)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--work-dir", type=Path, help="work folder (default: a new temp folder)")
    parser.add_argument("--results", type=Path, default=HERE / "results", help="output folder")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds per measurement")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started, load_at_start = time.perf_counter(), load()
    if args.work_dir and args.work_dir.exists() and any(args.work_dir.iterdir()):
        raise SystemExit(f"--work-dir {args.work_dir} is not empty; give a new or empty folder")
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="dks-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    broker = None
    try:
        broker = local_kafka.start(work / "broker")
        machine = machine_info(broker.kafka_version)
        bench = prepare(args, work, broker, started, load_at_start)
        run_steps(bench, chosen_steps(args))
        print(report(bench, machine))
        return 1 if bench.failed else 0
    finally:
        if broker is not None:
            broker.stop()
        if args.keep:
            print(f"work folder kept: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
