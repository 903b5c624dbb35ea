"""Results of a benchmark run: the machine, the measurements, the markdown table and chart."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import textwrap
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

MIB = 1024 * 1024


@dataclass
class Measurement:
    """One measured thing: what was timed, how many messages, what it cost."""

    key: str
    label: str
    wall_s: float  # the timed section (see `timed`)
    process_s: float  # the whole child process, start to exit
    messages: int  # counted in the topic afterwards (high watermarks)
    payload_bytes: float
    peak_rss_mb: float
    cpu_s: float
    timed: str
    note: str = ""

    @property
    def msgs_per_s(self) -> float:
        return self.messages / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def mb_per_s(self) -> float:
        return self.payload_bytes / MIB / self.wall_s if self.wall_s > 0 else 0.0


# ----------------------------------------------------------------------------- the machine


def machine_info(kafka_version: str) -> dict[str, str]:
    """CPU, cores, memory and the versions of everything on the message path."""
    import confluent_kafka
    import duckdb
    import pyarrow

    librdkafka = confluent_kafka.libversion()[0]
    return {
        "cpu": _cpu_model(),
        "cores": str(os.cpu_count()),
        "memory": _memory(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "duckdb": str(duckdb.__version__),
        "pyarrow": str(pyarrow.__version__),
        "confluent-kafka": f"{_version('confluent-kafka')} (librdkafka {librdkafka})",
        "kafka": f"{kafka_version} (single local KRaft broker, loopback)",
        "java": _java_version(),
        "pandas": _version("pandas"),
        "dbt-kafka-sync": f"{_version('dbt-kafka-sync')} ({_git_commit()})",
    }


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory() -> str:
    for line in Path("/proc/meminfo").read_text(encoding="utf-8").splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / MIB:.1f} GiB"
    return "unknown"


def _java_version() -> str:
    done = subprocess.run(["java", "-version"], capture_output=True, text=True, check=False)
    first = (done.stderr or done.stdout).splitlines()
    return first[0].strip() if first else "unknown"


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git_commit() -> str:
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        ["git", "-C", str(root), "describe", "--always", "--dirty"],
        capture_output=True,
        text=True,
        check=False,
    )
    return done.stdout.strip() or "no git"


# ------------------------------------------------------------------------------ the table

HEADER = (
    "| measurement | wall s | msgs | msg/s | MB/s | peak RSS MB | CPU s | process s |\n"
    "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
)


def _row(m: Measurement) -> str:
    rate = f"{m.msgs_per_s:,.0f}" if m.messages else "-"
    mbs = f"{m.mb_per_s:.1f}" if m.messages else "-"
    return (
        f"| {m.label} | {m.wall_s:.2f} | {m.messages:,} | {rate} | {mbs} |"
        f" {m.peak_rss_mb:,.0f} | {m.cpu_s:.1f} | {m.process_s:.2f} |"
    )


def ratio_lines(results: list[Measurement]) -> list[str]:
    """The tool's columns-mode backfill throughput against each reference."""
    by_key = {m.key: m for m in results}
    tool = by_key.get("tool-backfill")
    if tool is None or not tool.messages:
        return []
    lines = []
    for key in ("kafka", "kafka-json", "python", "pandas-initial"):
        other = by_key.get(key)
        if other is not None and other.msgs_per_s:
            ratio = tool.msgs_per_s / other.msgs_per_s
            lines.append(f"- tool backfill vs {other.label}: **{ratio:.2f}x** the msg/s")
    diy = by_key.get("diy-backfill")
    if diy is not None and tool.process_s:
        ratio = diy.process_s / tool.process_s
        lines.append(
            f"- tool backfill vs {diy.label}: **{ratio:.2f}x** its speed, process to process"
        )
    change, pandas_change = by_key.get("tool-change"), by_key.get("pandas-change")
    if change and pandas_change and change.wall_s:
        speedup = pandas_change.wall_s / change.wall_s
        lines.append(f"- 10% change run: the tool takes **1/{speedup:.1f}** of pandas' wall time")
    return lines


FOOTNOTES = """\
- **wall s** is the timed section: for Kafka's tool its own timer (JVM start excluded), for
  the bare Python loop produce + poll + flush (payloads already in memory), for
  dbt-kafka-sync and pandas the whole process as a user runs it (interpreter start,
  imports, reading the warehouse, diff, publish, waiting for every delivery, state commit).
  **process s** is always the child process from start to exit.
- **msgs** are counted in the topic afterwards (sum of high watermarks); **MB/s** is
  payload bytes (average value size sampled from the topic x msgs) / wall s, MB = 2^20 B.
- **peak RSS** and **CPU s** (user + system, all threads) are the child's, from wait4(2).
  The broker (a JVM on the same 2 cores) is not included in either.
"""


def render_markdown(
    results: list[Measurement],
    machine: dict[str, str],
    params: dict[str, Any],
    failed: dict[str, str] | None = None,
) -> str:
    """The whole report: parameters, machine, table, ratios, footnotes, failed steps."""
    lines = ["# dbt-kafka-sync benchmark", ""]
    lines += [f"- {name}: {value}" for name, value in params.items()]
    lines += ["", "## Machine", ""] + [f"- {name}: {value}" for name, value in machine.items()]
    lines += ["", "## Results", "", HEADER] + [_row(m) for m in results]
    lines += ["", *ratio_lines(results), "", FOOTNOTES]
    notes = [f"- {m.label}: {m.note}" for m in results if m.note]
    if notes:
        lines += ["Notes:", "", *notes, ""]
    if failed:
        lines += ["Failed steps:", "", *(f"- {step}: {why}" for step, why in failed.items()), ""]
    return "\n".join(lines)


def write_json(
    path: Path, results: list[Measurement], machine: dict[str, str], params: dict[str, Any]
) -> None:
    measurements = [
        {**asdict(m), "msgs_per_s": m.msgs_per_s, "mb_per_s": m.mb_per_s} for m in results
    ]
    document = {"params": params, "machine": machine, "measurements": measurements}
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")


def _colour(key: str) -> str:
    if key.startswith("tool"):
        return "#dd8452"  # dbt-kafka-sync
    if key.startswith(("pandas", "diy")):
        return "#55a868"  # the scripts a team would write instead
    return "#8c8c8c"  # the references: Kafka's tool, the bare Python loop


def plot_throughput(path: Path, results: list[Measurement], title: str) -> None:
    """Horizontal bars of msg/s, one per measurement that sent messages."""
    # Not a dev dependency (benchmarks/requirements.txt): `make lint` must pass without it.
    import matplotlib  # type: ignore[import-not-found,unused-ignore]

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # type: ignore[import-not-found,unused-ignore]
    from matplotlib.ticker import MaxNLocator  # type: ignore[import-not-found,unused-ignore]

    shown = [m for m in results if m.messages]
    figure, axes = plt.subplots(figsize=(11, 0.55 * len(shown) + 1.5))
    colours = [_colour(m.key) for m in shown]
    # Long labels wrapped: unwrapped, they squeezed the bars into a third of the width.
    labels = [textwrap.fill(m.label, 42) for m in shown]
    bars = axes.barh(labels, [m.msgs_per_s for m in shown], color=colours)
    axes.bar_label(bars, labels=[f"{m.msgs_per_s:,.0f}" for m in shown], padding=3, fontsize=8)
    axes.invert_yaxis()
    axes.set_xlabel("messages per second (higher is better)")
    axes.set_title(title, fontsize=10)
    axes.margins(x=0.18)
    # Few ticks, in thousands: full numbers ran into each other on a narrow axis.
    axes.xaxis.set_major_locator(MaxNLocator(nbins=5, integer=True))
    axes.xaxis.set_major_formatter(lambda value, _: f"{value / 1000:,.0f}k")
    figure.tight_layout()
    figure.savefig(path, dpi=120, bbox_inches="tight")
    plt.close(figure)
