"""A whole run: load and validate everything first, then sync each model in turn."""

from __future__ import annotations

import logging
import time
from contextlib import closing
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from dbt_kafka_sync.errors import DamagedStateError, StateError, SyncError, WarehouseError
from dbt_kafka_sync.job import JobContext, SyncJob
from dbt_kafka_sync.runner.context import (
    RunContext,
    RunReport,
    new_run_id,
)
from dbt_kafka_sync.state.base import StateStore
from dbt_kafka_sync.state.location import open_store

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


def run(
    context: RunContext, full_refresh: bool = False, report: RunReport | None = None
) -> RunReport:
    """Publish every sync's changes; a failing sync is reported and the others go on.

    Results go into `report` as each sync ends: a caller that passes `report` still has
    what the run did when it raises (for the results file and alerts).
    """
    import duckdb

    from dbt_kafka_sync.kafka.producer import Publisher

    report = report or RunReport(new_run_id())
    report.target = context.target_name
    if not context.models:
        log.warning("no model with a kafka_sync block to sync; nothing to do")
        return report
    # Connect and authenticate first: a broker that cannot be reached changes nothing.
    publisher = Publisher(context.kafka, context.project_dir)
    publisher.metadata()
    context.source.open()
    with (
        closing(context.source),
        open_store(context.state, False, context.source, report.run_id) as store,
    ):
        store.begin_run(report.run_id, "run", context.target_name)
        try:
            _prune_debugger(store, context.kafka.debugger.retention_days)
            report.previous = store.previous_statuses(context.target_name, report.run_id)
            jobs = context.job_context(store, publisher, report.run_id, full_refresh)
            _sync_all(jobs, context, report)
        except DamagedStateError:
            raise  # nothing more is written to a damaged file
        except BaseException as exc:
            message = exc.render() if isinstance(exc, SyncError) else type(exc).__name__
            try:
                store.finish_run(report.run_id, "error", message)
            except Exception:  # the original error matters more; `runs` shows it as running
                log.debug("could not record the run's end", exc_info=True)
            raise
        status = "success" if report.ok else "failed"
        try:
            store.finish_run(report.run_id, status, None)
        except (OSError, duckdb.Error) as exc:  # e.g. a full disk: every sync's outcome holds
            raise StateError(f"could not record the end of the run in the state: {exc}") from None
    return report


def _prune_debugger(store: StateStore, retention_days: int) -> None:
    """Housekeeping never stops a run: what is not pruned now, a later run prunes."""
    import duckdb

    try:
        store.prune_debugger(retention_days)
    except DamagedStateError:
        raise
    except (SyncError, OSError, duckdb.Error) as exc:
        log.warning("could not prune the debugger's records (%d days): %s", retention_days, exc)


def plan(
    context: RunContext, full_refresh: bool = False, report: RunReport | None = None
) -> RunReport:
    """Count what a run would publish, with sample messages; publish and write nothing."""
    report = report or RunReport("plan", command="plan")
    report.target = context.target_name
    with (
        closing(context.source),
        open_store(context.state, True, context.source) as store,
    ):
        context.source.open()
        jobs = context.job_context(store, None, "plan", full_refresh)
        _sync_all(jobs, context, report)
    return report


def _sync_all(context: JobContext, run: RunContext, report: RunReport) -> None:
    import duckdb

    for model in run.models:
        not_built = run.not_built.get(model.unique_id)
        for sync in model.syncs:
            job = SyncJob(context, model, sync)
            if not_built is not None:
                report.results.append(job.skipped(not_built.reason()))
                continue
            started_at, clock = datetime.now(timezone.utc), time.monotonic()
            try:
                outcome = job.plan() if context.publisher is None else job.run()
            except DamagedStateError:
                raise  # the state file, not the model: the run stops here
            except (SyncError, duckdb.Error) as exc:
                if isinstance(exc, duckdb.Error):  # e.g. a view over a dropped table
                    exc = WarehouseError(f"DuckDB failed: {exc}", model=model.name)
                outcome = job.failed(exc.render())
            outcome.started_at, outcome.seconds = started_at, time.monotonic() - clock
            for note in outcome.notes:
                log.warning("%s [%s]: %s", model.name, sync.name, note)
            report.results.append(outcome)
