"""A large sync's Liquid templates rendered on every core, its batches kept in order.

Liquid renders a row in pure Python, so one process renders one row at a time whatever
the machine. A RenderPool hands slices of each message batch to processes of its own
and puts their values back into that same batch: the producer, the failure tracing and
the message log see exactly the batches, in exactly the order, of rendering in-process.

- The processes are started with `spawn`: the run's process holds a DuckDB session and
  librdkafka's threads, which a forked child would inherit in whatever state they were.
  Each one parses the template again from its text, in an environment with the run's
  clock (what `'now' | date` shows), and renders with the same code as the run's process.
- Each batch is cut in slices (SLICES_PER_WORKER per process, MIN_SLICE_ROWS at least),
  so that one batch keeps every process busy. Slices travel as Arrow IPC bytes (only the
  columns a template reads) and come back as the value and row_error columns. At most
  IN_FLIGHT_BATCHES batches are being rendered ahead of the one handed on: memory stays
  flat however large the sync.
- A process that dies, or fails otherwise than with a row's error, fails the sync with
  a RenderError: nothing after the batch it was rendering is sent, nothing of the sync
  is committed, so the next run finds every row again. The pool is shut down on the way
  out, on errors and Ctrl-C too (the processes ignore SIGINT; the run's process stops
  them). A process whose parent is killed outright (SIGKILL) notices and exits.
"""

from __future__ import annotations

import os
import signal
import threading
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dbt_kafka_sync.errors import SyncError
from dbt_kafka_sync.messages import batch as message_batch
from dbt_kafka_sync.messages.templating import MessageTemplate, TemplateSpec, with_rendered

if TYPE_CHECKING:
    from concurrent.futures import Future, ProcessPoolExecutor

    import pyarrow as pa

SLICES_PER_WORKER = 4  # slices of a batch per process: each busy, however long its rows
MIN_SLICE_ROWS = 500  # fewer rows than that cost more to hand over than to render
IN_FLIGHT_BATCHES = 2  # message batches being rendered beyond the one handed on
# What a process reads of a batch: the template's input, and what decides whether to render
# (a value DuckDB built is kept as it is).
_INPUT = (
    message_batch.EVENT,
    message_batch.VALUE,
    message_batch.ROW_ERROR,
    message_batch.TEMPLATE_ROW,
    message_batch.TEMPLATE_PREVIOUS,
)


class RenderError(SyncError):
    """Rendering a sync's messages failed as a whole, not for one row."""


@dataclass(frozen=True)
class _Work:
    """What every rendering process of a sync renders with."""

    spec: TemplateSpec
    context: dict[str, Any]
    tombstone: bool


_work: tuple[MessageTemplate, dict[str, Any], bool] | None = None  # in a rendering process


def _start(work: _Work) -> None:
    """Set up a rendering process: the template parsed again, Ctrl-C left to the parent."""
    global _work  # one per process, set once before any slice arrives
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _work = (work.spec.parse(), work.context, work.tombstone)
    threading.Thread(target=_exit_with_parent, name="exit-with-parent", daemon=True).start()


def _exit_with_parent() -> None:
    """Exit once the parent is gone, even killed outright: never an orphan left running."""
    import multiprocessing

    parent = multiprocessing.parent_process()
    if parent is not None:
        parent.join()  # returns when the parent's end of the pipe closes, i.e. it exited
        os._exit(1)


def _render_slice(payload: bytes) -> tuple[int, bytes]:
    """Render one slice (Arrow IPC); return this process's id and the rendered columns."""
    import pyarrow as pa

    assert _work is not None, "a rendering process renders only once set up"
    template, context, tombstone = _work
    batch = _read(payload)
    values, errors = template.render_batch(batch, context, tombstone)
    rendered = pa.RecordBatch.from_arrays(
        [values, errors], names=[message_batch.VALUE, message_batch.ROW_ERROR]
    )
    return os.getpid(), _write(rendered)


def _write(batch: pa.RecordBatch) -> bytes:
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema) as writer:
        writer.write_batch(batch)
    return bytes(sink.getvalue())


def _read(payload: bytes) -> pa.RecordBatch:
    import pyarrow as pa

    return pa.ipc.open_stream(payload).read_next_batch()


def default_workers() -> int:
    """As many rendering processes as the run may use cores (its CPU affinity, on Linux)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


class RenderPool:
    """Processes rendering a sync's message batches; a context manager that stops them.

    Attributes:
        rendered_by: rows rendered by each process id, for the run's log (and tests).
    """

    def __init__(
        self,
        template: MessageTemplate,
        context: dict[str, Any],
        tombstone: bool,
        workers: int,
        model: str = "",
        slice_rows: int = MIN_SLICE_ROWS,
    ) -> None:
        spec = template.spec()
        if spec is None:
            raise ValueError("the template's run clock is unknown: it renders in-process")
        self.model = model
        self.workers = max(1, workers)
        self.slice_rows = max(1, slice_rows)  # the fewest rows of a slice
        self.rendered_by: Counter[int] = Counter()
        self._work = _Work(spec, context, tombstone)
        self._executor: ProcessPoolExecutor | None = None

    def __enter__(self) -> RenderPool:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self._executor = ProcessPoolExecutor(
            self.workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_start,
            initargs=(self._work,),
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the processes; slices not started yet are dropped (idempotent)."""
        executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def render_batches(self, batches: Iterable[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        """Yield each message batch with its values rendered, in the order they came.

        Raises:
            RenderError: when a process died or failed; no batch from then on is yielded.
        """
        pending: deque[tuple[pa.RecordBatch, list[Future[tuple[int, bytes]]]]] = deque()
        for batch in batches:
            pending.append((batch, self._submit(batch)))
            while len(pending) > IN_FLIGHT_BATCHES:
                yield self._collect(*pending.popleft())
        while pending:
            yield self._collect(*pending.popleft())

    def _submit(self, batch: pa.RecordBatch) -> list[Future[tuple[int, bytes]]]:
        from concurrent.futures.process import BrokenProcessPool

        try:
            return self._slices(batch)
        except BrokenProcessPool as exc:  # a process died since the last batch
            raise self._failed(exc) from None

    def _slices(self, batch: pa.RecordBatch) -> list[Future[tuple[int, bytes]]]:
        if self._executor is None:
            raise RuntimeError("a RenderPool renders inside its `with` block")
        present = [name for name in _INPUT if name in batch.schema.names]
        needed = batch.select(present)
        size = max(self.slice_rows, -(-batch.num_rows // (self.workers * SLICES_PER_WORKER)))
        return [
            self._executor.submit(_render_slice, _write(needed.slice(start, size)))
            for start in range(0, batch.num_rows, size)
        ]

    def _collect(
        self, batch: pa.RecordBatch, slices: list[Future[tuple[int, bytes]]]
    ) -> pa.RecordBatch:
        import pyarrow as pa

        values: list[pa.Array] = []
        errors: list[pa.Array] = []
        for future in slices:
            pid, payload = self._result(future)
            rendered = _read(payload)
            self.rendered_by[pid] += rendered.num_rows
            values.append(rendered.column(message_batch.VALUE))
            errors.append(rendered.column(message_batch.ROW_ERROR))
        if not slices:  # an empty batch: nothing to render
            values = errors = [pa.array([], type=pa.string())]
        return with_rendered(batch, pa.concat_arrays(values), pa.concat_arrays(errors))

    def _result(self, future: Future[tuple[int, bytes]]) -> tuple[int, bytes]:
        try:
            return future.result()
        except Exception as exc:  # a row's error comes back as data: this is the process's
            raise self._failed(exc) from None

    def _failed(self, exc: Exception) -> RenderError:
        """Stop the pool; the error that fails the sync."""
        from concurrent.futures.process import BrokenProcessPool

        self.close()
        if isinstance(exc, BrokenProcessPool):
            reason = "a rendering process stopped unexpectedly (killed, or out of memory)"
        else:
            reason = f"a rendering process failed: {type(exc).__name__}: {exc}"
        return RenderError(
            f"{reason}; nothing of this sync is committed, so the next run sends its changes again",
            model=self.model or None,
            hint="set `render_workers: 1` in the kafka_sync profile output to render"
            " in the run's own process",
        )
