"""Copying the state between the local file and the warehouse, nothing sent again."""

from __future__ import annotations

import logging
from contextlib import closing
from dataclasses import dataclass
from typing import TYPE_CHECKING

from dbt_kafka_sync.errors import StateError, SyncError
from dbt_kafka_sync.job import SyncJob
from dbt_kafka_sync.runner.context import (
    RunContext,
    new_run_id,
)
from dbt_kafka_sync.state.base import StateStore

if TYPE_CHECKING:
    from dbt_kafka_sync.state.warehouse.store import WarehouseStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CopiedSync:
    """What copy_state did with one sync: `copied`, `skipped` or `refused`, and why."""

    model: str
    sync: str
    status: str
    detail: str


def copy_state(context: RunContext, to_warehouse: bool) -> list[CopiedSync]:
    """Copy each sync's state from the local file to the warehouse schema, or back.

    The target's snapshot becomes the model's current rows, less the changes the source
    store has not published yet, so its next run publishes exactly what the source store's
    next run would have: nothing, after a run that delivered everything.
    """
    from dbt_kafka_sync.state.location import open_both

    if to_warehouse and not context.state.path.exists():
        raise StateError(f"no local state at {context.state.path}: nothing to copy")
    owner = f"copy-state-{new_run_id()}"
    copied: list[CopiedSync] = []
    with closing(context.source), open_both(context.state, context.source, owner) as both:
        origin: StateStore = both.local if to_warehouse else both.warehouse
        target: StateStore = both.warehouse if to_warehouse else both.local
        jobs = context.job_context(origin, None, "copy-state", full_refresh=False)
        for model in context.models:
            for sync in model.syncs:
                job = SyncJob(jobs, model, sync)
                copied.append(_copy_sync(job, target, both.warehouse))
    return copied


def _copy_sync(job: SyncJob, target: StateStore, warehouse: WarehouseStore) -> CopiedSync:
    def result(status: str, detail: str) -> CopiedSync:
        return CopiedSync(job.model.name, job.sync.name, status, detail)

    if target.has_sync(job.sync_id):
        return result("skipped", "the target has a state of it already; left as it is")
    unsettled = job.context.store.pending_commit(job.sync_id) or target.pending_commit(job.sync_id)
    if unsettled is not None:
        return result(
            "refused",
            f"an exactly-once commit of run {unsettled.run_id} is not settled yet: run"
            " dbt-kafka-sync first, then copy",
        )
    try:
        request = job.change_request()
        # The model is read twice (the diff, then the new snapshot): both must see the same rows.
        before = warehouse.model_fingerprint(request)
        prepared = job.prepare()
    except SyncError as exc:
        return result("refused", exc.render())
    found = prepared.found
    if found.record is None:
        return result("skipped", "never synced: its first run follows initial_sync")
    if found.counts.removed:
        return result(
            "refused",
            f"{found.counts.removed} removed row(s) are not published yet, and only this"
            " state still knows them: run dbt-kafka-sync first, then copy",
        )
    identity = job.identity(found.record.fingerprint, target.hash_version)

    def unchanged() -> None:
        if warehouse.model_fingerprint(request) != before:
            raise StateError(
                "the model changed while its state was copied (a dbt run at the same time?):"
                " nothing was copied for it",
                model=job.model.name,
                hint="run copy-state again once dbt has finished",
            )

    try:
        target.adopt(prepared.request, identity, unchanged)
    except SyncError as exc:
        return result("refused", exc.render())
    pending = found.counts.added + found.counts.changed
    return result("copied", f"{pending} change(s) not published yet stay pending")
