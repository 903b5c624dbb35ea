"""Rendering in processes: the same batches as in-process, the work done elsewhere, no orphan."""

from __future__ import annotations

import datetime as dt
import multiprocessing
import os
import select
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from dbt_kafka_sync.messages import batch as message_batch
from dbt_kafka_sync.messages.rendering import RenderError, RenderPool
from dbt_kafka_sync.messages.templating import MessageTemplate, load_template, make_environment

RUN_START = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)
CONTEXT = {"model": "customers", "run": {"id": "r1", "started_at": "2024-05-06T07:08:09Z"}}
# Row 7s fail in Liquid (a filter error), row 9s render to something that is not JSON.
SOURCE = (
    '{"id": {{ row.id | json }}, "name": "{{ row.name | upcase }}", "at": "{{ \'now\' | date:'
    ' \'%Y-%m-%d %H:%M:%S\' }}", "was": {% if previous %}{{ previous.name | json }}'
    '{% else %}null{% endif %}, "tags": [{% for t in row.tags %}"{{ t }}"'
    "{% unless forloop.last %},{% endunless %}{% endfor %}]"
    "{% if row.id == 7 %}{{ row.id | divided_by: 0 }}{% endif %}"
    '{% if row.id == 9 %}, oops{% endif %}, "event": "{{ event }}"}'
)


def template(source: str = SOURCE) -> MessageTemplate:
    environment = make_environment(RUN_START)
    return load_template(environment, "customers", source, None, Path("."), RUN_START)


def message_batches(rows: int, per_batch: int) -> list[pa.RecordBatch]:
    """Message batches as the message query gives them, with every kind of row."""
    with duckdb.connect() as con:
        table = con.sql(
            f"""SELECT i AS {message_batch.SEQ},
                ['added', 'changed', 'removed'][1 + i % 3] AS {message_batch.EVENT},
                i::VARCHAR AS {message_batch.KEY}, NULL::VARCHAR AS {message_batch.VALUE},
                i::VARCHAR AS {message_batch.ROW_KEY},
                CASE WHEN i % 50 = 11 THEN 'duplicate key' END AS {message_batch.ROW_ERROR},
                't' AS {message_batch.TOPIC}, NULL::BIGINT AS {message_batch.PARTITION},
                struct_pack(id := i % 13, name := 'n"' || i, tags := ['a', i::VARCHAR])
                    AS {message_batch.TEMPLATE_ROW},
                CASE WHEN i % 3 = 1 THEN struct_pack(id := i % 13, name := 'old ' || i, tags :=
                    ['x']) END AS {message_batch.TEMPLATE_PREVIOUS}
            FROM range({rows}) t(i)"""
        ).to_arrow_table()
    return list(table.to_batches(max_chunksize=per_batch))


def in_process(batches: list[pa.RecordBatch], tombstone: bool) -> list[pa.RecordBatch]:
    return list(template().render_batches(batches, CONTEXT, tombstone))


@pytest.mark.parametrize("tombstone", [False, True], ids=["removed-rendered", "tombstones"])
def test_processes_give_the_same_batches_in_the_same_order(tombstone: bool) -> None:
    batches = message_batches(rows=900, per_batch=200)  # 5 batches, the last one shorter
    expected = in_process(batches, tombstone)

    with RenderPool(template(), CONTEXT, tombstone, workers=2, slice_rows=30) as pool:
        rendered = list(pool.render_batches(iter(batches)))

    assert [b.num_rows for b in rendered] == [200, 200, 200, 200, 100]
    assert rendered == expected  # values, row errors and every other column, batch by batch
    errors = [e for b in rendered for e in b.column(message_batch.ROW_ERROR).to_pylist() if e]
    assert any(e.startswith("template error: ") for e in errors)
    assert any(e.startswith("the template's output is not valid JSON") for e in errors)
    assert "duplicate key" in errors
    assert sum(pool.rendered_by.values()) == 900


def test_the_rows_are_rendered_in_the_pools_processes() -> None:
    batches = message_batches(rows=400, per_batch=100)

    with RenderPool(template(), CONTEXT, False, workers=2, slice_rows=10) as pool:
        rendering = pool.render_batches(iter(batches))
        next(rendering)
        children = {child.pid for child in multiprocessing.active_children()}
        rest = list(rendering)

    assert len(rest) == 3
    assert os.getpid() not in pool.rendered_by
    assert set(pool.rendered_by) <= children  # processes of ours, alive while rendering
    assert sum(pool.rendered_by.values()) == 400


def test_a_killed_process_fails_the_rendering_with_a_clear_error() -> None:
    batches = message_batches(rows=2000, per_batch=100)

    with RenderPool(template(), CONTEXT, False, 2, "customers", slice_rows=10) as pool:
        rendering = pool.render_batches(iter(batches))
        first = next(rendering)
        for pid in pool.rendered_by:
            os.kill(pid, signal.SIGKILL)
        with pytest.raises(RenderError) as raised:
            list(rendering)

    assert first.num_rows == 100
    assert "model 'customers': a rendering process stopped unexpectedly" in raised.value.render()
    assert "nothing of this sync is committed" in raised.value.render()


WORKERS_OF_A_KILLED_RUN = """
import os, signal, sys
sys.path.insert(0, {tests!r})
from test_rendering import CONTEXT, message_batches, template
from dbt_kafka_sync.messages.rendering import RenderPool

if __name__ == "__main__":  # a spawned process imports this file too
    pool = RenderPool(template(), CONTEXT, False, workers=2, slice_rows=10).__enter__()
    rendering = pool.render_batches(iter(message_batches(rows=400, per_batch=100)))
    next(rendering)
    print(" ".join(map(str, pool.rendered_by)), flush=True)
    os.kill(os.getpid(), signal.SIGKILL)  # as the fault tests kill a run
"""


def _exits(pid: int, timeout: float) -> bool:
    """Wait for a process (not a child of ours) to exit; tell whether it did in time."""
    try:
        handle = os.pidfd_open(pid)
    except ProcessLookupError:
        return True  # gone already
    try:
        ready, _, _ = select.select([handle], [], [], timeout)
        return bool(ready)
    finally:
        os.close(handle)


def test_the_processes_exit_when_the_run_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "killed_run.py"
    script.write_text(WORKERS_OF_A_KILLED_RUN.format(tests=str(Path(__file__).parent)))
    output = tmp_path / "pids.txt"

    with output.open("w") as pids_out:  # a file, not a pipe the processes would keep open
        killed = subprocess.run([sys.executable, str(script)], stdout=pids_out, timeout=120)
    pids = [int(pid) for pid in output.read_text().split()]
    left = [pid for pid in pids if not _exits(pid, timeout=30)]
    for pid in left:  # not to leave them running when the test fails
        os.kill(pid, signal.SIGKILL)

    assert killed.returncode == -signal.SIGKILL
    assert pids
    assert left == []
