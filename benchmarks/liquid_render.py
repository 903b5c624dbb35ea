"""Where a Liquid-rendered row's time goes, and how fast templates render in-process.

    .venv/bin/python benchmarks/liquid_render.py --rows 100000 --repeat 3
    .venv/bin/python benchmarks/liquid_render.py --rows 100000 --breakdown
    .venv/bin/python benchmarks/liquid_render.py --rows 100000 --profile hightouch

Two templates over the benchmark's table (plus a `tags VARCHAR[]` column):

  tool-liquid  run.py's `tool-liquid` document: `{{ row.x | json }}` values, one `if` tag
  hightouch    a Hightouch-style event: nested object, bare strings with filters, an
               `if`, a `for` over a list with `unless forloop.last`, `date`, `run`

The message batches are shaped like the tool's message query (no Kafka, no diff, no
state). Default: rows/s of MessageTemplate.render_batches, the templates interleaved;
`--workers N ...` also through a RenderPool of N processes (pool start included).
`--breakdown` times each part of the row-by-row path on its own; `--profile NAME` prints
cProfile's top entries.
"""

from __future__ import annotations

import argparse
import cProfile
import datetime as dt
import json
import pstats
import resource
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
from bench_setup import COLUMNS, HIGHTOUCH_TEMPLATE, LIQUID_TEMPLATE, _rows_sql

from dbt_kafka_sync.messages import batch as message_batch
from dbt_kafka_sync.messages.templating import (
    MessageTemplate,
    TemplateLoader,
    load_strict_json,
)

try:  # absent before the quick check came
    from dbt_kafka_sync.messages.templating import is_strict_json
except ImportError:
    is_strict_json = None  # type: ignore[assignment]

TEMPLATES = {"tool-liquid": LIQUID_TEMPLATE, "hightouch": HIGHTOUCH_TEMPLATE}
BATCH_ROWS = 50_000  # as job.BATCH_ROWS
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
CONTEXT = {"model": "customers", "run": {"id": "r1", "started_at": NOW.isoformat()}}


def message_batches(rows: int) -> list[pa.RecordBatch]:
    """The message batches of a backfill of `rows` rows, as the message query gives them."""
    fields = ", ".join(f"{c} := {c}" for c in [*COLUMNS, "tags"])
    with duckdb.connect() as con:
        con.execute(
            "CREATE TABLE customers AS SELECT *, list_slice(['vip', 'eu', 'new'], 1, id % 4)"
            f" AS tags FROM ({_rows_sql(rows)})"
        )
        table = con.sql(
            f"""SELECT id AS {message_batch.SEQ}, 'added' AS {message_batch.EVENT},
                id::VARCHAR AS {message_batch.KEY}, NULL::VARCHAR AS {message_batch.VALUE},
                id::VARCHAR AS {message_batch.ROW_KEY}, NULL::VARCHAR AS {message_batch.ROW_ERROR},
                'customers' AS {message_batch.TOPIC}, NULL::BIGINT AS {message_batch.PARTITION},
                struct_pack({fields}) AS {message_batch.TEMPLATE_ROW}
            FROM customers ORDER BY id"""
        ).to_arrow_table()
    return list(table.to_batches(max_chunksize=BATCH_ROWS))


def load(name: str) -> MessageTemplate:
    """The named template, parsed as a run parses it."""
    loader = TemplateLoader(Path("."), NOW)
    message = argparse.Namespace(template=TEMPLATES[name], template_file=None)
    template = loader.for_sync("customers", message)
    assert template is not None
    return template


def render_all(template: MessageTemplate, batches: list[pa.RecordBatch], workers: int) -> int:
    """Render every batch (in `workers` processes, or in-process for 0); count the rows."""
    if workers:
        from dbt_kafka_sync.messages.rendering import RenderPool

        with RenderPool(template, CONTEXT, False, workers) as pool:
            out = list(pool.render_batches(batches))
    else:
        out = list(template.render_batches(batches, CONTEXT, False))
    errors = sum(b.column(message_batch.ROW_ERROR).null_count != b.num_rows for b in out)
    assert not errors, [b.column(message_batch.ROW_ERROR)[0] for b in out]
    return sum(b.num_rows for b in out)


def throughput(rows: int, repeat: int, workers: list[int]) -> None:
    """Rows/s and CPU per row of each template (and pool size), interleaved, `repeat` times.

    CPU counts the rendering processes too (they are waited for when the pool closes): on
    a busy machine it says more than the wall clock about the work a row costs.
    """
    results: dict[tuple[str, int], list[tuple[float, float]]] = {}
    batches = message_batches(rows)
    for _ in range(repeat):
        for name in TEMPLATES:
            template = load(name)
            for count in [0, *workers]:
                cpu = _cpu_seconds()
                started = time.perf_counter()
                done = render_all(template, batches, count)
                wall = time.perf_counter() - started
                used = _cpu_seconds() - cpu
                results.setdefault((name, count), []).append((done / wall, used / done * 1e6))
    print("| template | workers | rows/s (each run) | median | CPU µs/row (each run) |")
    print("| --- | ---: | --- | ---: | --- |")
    for (name, count), runs in results.items():
        rates = ", ".join(f"{rate:,.0f}" for rate, _ in runs)
        median = statistics.median(rate for rate, _ in runs)
        cpu_text = ", ".join(f"{cpu:.0f}" for _, cpu in runs)
        print(f"| {name} | {count or 'in-process'} | {rates} | {median:,.0f} | {cpu_text} |")


def _cpu_seconds() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _timed(label: str, rows: int, action: Callable[[], Any], table: list[str]) -> Any:
    """Run `action`; add its wall and CPU time to the table (CPU: steadier on a busy machine)."""
    started, cpu = time.perf_counter(), time.process_time()
    result = action()
    seconds, used = time.perf_counter() - started, time.process_time() - cpu
    table.append(f"| {label} | {seconds / rows * 1e6:.1f} | {used / rows * 1e6:.1f} |")
    return result


def breakdown(rows: int) -> None:
    """Time each part of the row-by-row path on its own, for both templates."""
    batches = message_batches(rows)
    for name in TEMPLATES:
        print(f"\n{name} ({rows:,} rows)\n" + "\n".join(_breakdown(load(name), batches, rows)))


def _breakdown(template: MessageTemplate, batches: list[pa.RecordBatch], rows: int) -> list[str]:
    from dbt_kafka_sync.messages.templating import _python_rows

    table = ["| part | wall µs/row | CPU µs/row |", "| --- | ---: | ---: |"]
    pyrows = _timed(
        "Arrow -> Python rows (_python_rows)",
        rows,
        lambda: [r for b in batches for r in _python_rows(b, message_batch.TEMPLATE_ROW)],
        table,
    )
    scopes = _timed(
        "scope dicts",
        rows,
        lambda: [{**CONTEXT, "row": r, "previous": None, "event": "added"} for r in pyrows],
        table,
    )
    bound = template.template
    texts = _timed(
        "Liquid render (BoundTemplate.render(**scope))",
        rows,
        lambda: [bound.render(**s) for s in scopes],
        table,
    )
    if hasattr(template, "_render_text"):  # this version's render, without the JSON check
        _timed(
            "Liquid render (MessageTemplate._render_text)",
            rows,
            lambda: [template._render_text(s) for s in scopes],
            table,
        )
    _timed(
        "Liquid render + JSON check (MessageTemplate.render)",
        rows,
        lambda: [template.render(s) for s in scopes],
        table,
    )
    _timed(
        "JSON check (load_strict_json)", rows, lambda: [load_strict_json(t) for t in texts], table
    )
    if is_strict_json is not None:
        _timed(
            "JSON check (is_strict_json)", rows, lambda: [is_strict_json(t) for t in texts], table
        )
    _timed("pa.array of values", rows, lambda: pa.array(texts, type=pa.string()), table)
    _timed(
        "whole render_batches",
        rows,
        lambda: list(template.render_batches(batches, CONTEXT, False)),
        table,
    )
    json.loads(texts[0])
    return table


def profile(rows: int, name: str) -> None:
    """cProfile of render_batches over the template's batches."""
    batches = message_batches(rows)
    template = load(name)
    profiler = cProfile.Profile()
    profiler.enable()
    list(template.render_batches(batches, CONTEXT, False))
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def main() -> None:
    """Parse the arguments and run the chosen measurement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="*", default=[])
    parser.add_argument("--breakdown", action="store_true")
    parser.add_argument("--profile", choices=list(TEMPLATES))
    args = parser.parse_args()
    if args.breakdown:
        breakdown(args.rows)
    elif args.profile:
        profile(args.rows, args.profile)
    else:
        throughput(args.rows, args.repeat, args.workers)


if __name__ == "__main__":
    main()
