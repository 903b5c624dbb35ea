"""Where a profiled dbt-kafka-sync run spends its time: cProfile stats grouped by stage.

Each function's own time (tottime) goes to a stage. Functions that belong to no stage
by themselves (builtins, importlib, DuckDB's and pyarrow's Python wrappers, functools)
are charged to the stage of whoever called them, split by what each caller spent.
Cython and C code that cProfile cannot see (pyarrow's to_pylist, reading a record batch
from DuckDB's stream) is charged to the Python function that called it.
"""

from __future__ import annotations

import io
import pstats
import re
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

FunctionKey = tuple[str, int, str]  # (file, line, function), as pstats keys them

PRODUCE = "producer.produce() (C: copy into librdkafka's queue)"
POLL = "poll() / flush() (C: delivery reports, Message objects)"
CALLBACKS = "delivery callbacks (Python)"
TO_PYLIST = "Arrow -> Python lists (to_pylist, _MessageBatch.of)"
ROWS = "next Arrow batch from DuckDB"
LOOP = "per-message Python in the publish loop"
QUERY = "DuckDB: message query (started by arrow_batches)"
DIFF = "DuckDB: reading the model, change detection"
COMMIT = "commit: DuckDB snapshot write"
CONNECT = "connect to Kafka (metadata)"
IMPORTS = "imports (Python modules: pyarrow, duckdb, pydantic, click...)"
OTHER = "the rest: interpreter start, CLI, profiles, manifest, config validation"
GC = "Python's cyclic garbage collector"

_RULES: list[tuple[str, set[str] | None, str]] = [
    # (file suffix, function names or None for any, stage)
    ("delivery.py", {"on_delivery"}, CALLBACKS),
    ("producer.py", {"of", "_values_unless_all_null", "<listcomp>"}, TO_PYLIST),
    ("producer.py", {"publish"}, ROWS),
    (
        "producer.py",
        {"_send_plain", "_send_checked", "_produce", "headers", "choose", "check"},
        LOOP,
    ),
    ("progress.py", None, LOOP),
    ("producer.py", {"metadata", "partition_counts"}, CONNECT),
    ("sql.py", {"arrow_batches"}, QUERY),
    ("diff.py", None, DIFF),
    ("sync.py", {"_diff", "describe_columns"}, DIFF),
    ("warehouse/duckdb.py", None, DIFF),
    ("sync.py", {"_commit"}, COMMIT),
    ("snapshot.py", None, COMMIT),
    ("state.py", None, COMMIT),
]
_BUILTINS = {
    "<method 'produce' of 'cimpl.Producer' objects>": PRODUCE,
    "<method 'poll' of 'cimpl.Producer' objects>": POLL,
    "<method 'flush' of 'cimpl.Producer' objects>": POLL,
}


def stage_of(key: FunctionKey) -> str | None:
    """The stage a function's own time belongs to; None when its callers decide."""
    file, _, name = key
    if file == "~":
        return _BUILTINS.get(name)
    if "dbt_kafka_sync" not in file:
        return None
    for suffix, names, stage in _RULES:
        if file.endswith(suffix) and (names is None or name in names):
            return stage
    return None


class Breakdown:
    """Stage -> seconds (under cProfile) for one profile file."""

    def __init__(self, stats: pstats.Stats) -> None:
        # Undocumented in typeshed, but the attributes pstats' own printing reads.
        self.raw: dict[FunctionKey, Any] = stats.stats  # type: ignore[attr-defined]
        self.total = float(stats.total_tt)  # type: ignore[attr-defined]
        self.seconds: dict[str, float] = defaultdict(float)
        for key, (_, _, own, _, callers) in self.raw.items():
            self._charge(key, own, callers)

    def _charge(self, key: FunctionKey, own: float, callers: dict[FunctionKey, Any]) -> None:
        stage = stage_of(key)
        if stage is not None:
            self.seconds[stage] += own
            return
        if not callers:
            self.seconds[OTHER] += own
            return
        spent = sum(entry[2] for entry in callers.values()) or 1.0
        for caller, entry in callers.items():
            share = own * entry[2] / spent
            self.seconds[self._caller_stage(key, caller)] += share

    def _caller_stage(self, key: FunctionKey, caller: FunctionKey) -> str:
        """The stage of the nearest caller (up the dominant call chain) that has one."""
        seen = {key}
        current = caller
        for _ in range(40):
            stage = stage_of(current)
            if stage is not None:
                return stage
            if current[2] == "_find_and_load":
                return IMPORTS
            seen.add(current)
            callers = self.raw.get(current, (0, 0, 0, 0, {}))[4]
            candidates = {c: v for c, v in callers.items() if c not in seen}
            if not candidates:
                break
            current = max(candidates, key=lambda c: candidates[c][3])
        return OTHER

    def rows(self) -> list[tuple[str, float, float]]:
        """(stage, seconds, share of the total), largest first."""
        ordered = sorted(self.seconds.items(), key=lambda item: -item[1])
        return [(stage, seconds, seconds / self.total) for stage, seconds in ordered]


def top_functions(profile: Path, limit: int = 25) -> str:
    """pstats' own listing of the functions with the most own time."""
    buffer = io.StringIO()
    pstats.Stats(str(profile), stream=buffer).strip_dirs().sort_stats("tottime").print_stats(limit)
    return buffer.getvalue()


def profile_report(profile: Path, wall_s: float, rows: int) -> str:
    """The cProfile stage breakdown and the top functions, as markdown."""
    breakdown = Breakdown(pstats.Stats(str(profile)))
    lines = [
        f"# Profile of a dbt-kafka-sync backfill ({rows:,} rows, columns mode)",
        "",
        "## cProfile: own time per stage",
        "",
        f"cProfile, wall {wall_s:.1f} s under the profiler, {breakdown.total:.1f} s profiled.",
        "cProfile adds a fixed cost to every Python call, so per-message Python is inflated",
        "against C and DuckDB time: read the shares as an upper bound for Python overhead.",
        "",
        "| stage | seconds | share |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {stage} | {sec:.2f} | {share:.1%} |" for stage, sec, share in breakdown.rows()]
    top = top_functions(profile).strip()
    lines += ["", "### Top functions by own time (cProfile)", "", "```", top, "```", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------------- py-spy

_FRAME = re.compile(r"^(?P<name>.*) \((?P<file>[^():]*)(?::(?P<line>\d+))?\)$")
_NATIVE = {"Producer_produce": PRODUCE, "Producer_poll": POLL, "Producer_flush": POLL}


def _parse_frame(frame: str) -> FunctionKey:
    found = _FRAME.match(frame)
    if not found:
        return ("?", 0, frame)
    name = found["name"].rsplit(".", 1)[-1]  # py-spy writes Class.method
    return (found["file"], int(found["line"] or 0), name)


def stage_of_stack(frames: list[str]) -> str:
    """The stage of one py-spy sample (frames root first), from the leaf upwards."""
    keys = [_parse_frame(frame) for frame in frames]
    if any(name.startswith("gc_collect") for _, _, name in keys):
        return GC
    if any(name == "_find_and_load" for _, _, name in keys):
        return IMPORTS
    for index in range(len(keys) - 1, -1, -1):
        file, _, name = keys[index]
        if name in _NATIVE:
            return _NATIVE[name]
        stage = stage_of(keys[index]) if "dbt_kafka_sync" in file else None
        if stage is not None:
            return stage
    return OTHER


def spy_breakdown(raw: Path) -> tuple[int, list[tuple[str, int, float]]]:
    """(samples, [(stage, samples, share)]) from py-spy's raw (folded) output."""
    counts: Counter[str] = Counter()
    for line in raw.read_text(encoding="utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            counts[stage_of_stack(stack.split(";"))] += int(count)
    total = sum(counts.values()) or 1
    return total, [(stage, n, n / total) for stage, n in counts.most_common()]


def spy_report(raw: Path, wall_s: float, rate: int) -> str:
    """The py-spy breakdown as markdown."""
    total, rows = spy_breakdown(raw)
    lines = [
        "## py-spy: where the main thread's wall time goes",
        "",
        f"py-spy record --native --idle at {rate} Hz: {total:,} samples over {wall_s:.1f} s.",
        "Sampling, so no per-call overhead; only the Python main thread is sampled (DuckDB's",
        "and librdkafka's own threads are not).",
        "",
        "| stage | samples | share |",
        "| --- | ---: | ---: |",
    ]
    lines += [f"| {stage} | {n:,} | {share:.1%} |" for stage, n, share in rows]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    import sys

    print(profile_report(Path(sys.argv[1]), 0.0, 0))
