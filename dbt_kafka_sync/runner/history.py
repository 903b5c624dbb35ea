"""What reads or edits the state without a manifest: runs, show, messages, report, reset."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from dbt_kafka_sync.dbt.profiles import dbt_output, find_profiles_file, kafka_target, load_profiles
from dbt_kafka_sync.dbt.project import load_dbt_project
from dbt_kafka_sync.errors import StateError
from dbt_kafka_sync.report.data import ReportData
from dbt_kafka_sync.runner.context import (
    RunOptions,
    new_run_id,
    state_location,
)
from dbt_kafka_sync.sources import open_source
from dbt_kafka_sync.sources.base import Source
from dbt_kafka_sync.state.base import StateStore
from dbt_kafka_sync.state.history import RunDetails, RunSummary
from dbt_kafka_sync.state.location import StateLocation, open_store
from dbt_kafka_sync.state.message_log import MessageFilter, SentMessage, StageTiming, Throughput
from dbt_kafka_sync.state.store import StoredSync

if TYPE_CHECKING:
    from dbt_kafka_sync.state.last_good import Restored

log = logging.getLogger(__name__)

MAX_REPORTED_FAILURES = 1_000  # failed rows the run report lists
MAX_REPORTED_MESSAGES = 200  # messages the run report shows, failed ones first


@dataclass(frozen=True)
class _History:
    """What `runs`, `show` and `reset` need: no manifest (they work before `dbt parse`)."""

    target_name: str
    state: StateLocation
    source: Source | None  # the warehouse's connection, for a state kept there


def _history(options: RunOptions) -> _History:
    project_dir = options.project_dir.resolve()
    profiles_path = find_profiles_file(options.profiles_dir, project_dir)
    profiles = load_profiles(profiles_path)
    target_name, kafka = kafka_target(profiles, options.target, profiles_path)
    state = state_location(options, kafka, project_dir)
    source = None
    if state.in_warehouse:
        project = load_dbt_project(project_dir)
        output = dbt_output(profiles, project.profile, options.dbt_target, profiles_path)
        source = open_source(output, project_dir)
    return _History(target_name, state, source)


@contextmanager
def _history_store(
    found: _History, read_only: bool, owner: str = "", check_snapshots: bool = True
) -> Iterator[StateStore]:
    try:
        with open_store(found.state, read_only, found.source, owner, check_snapshots) as store:
            yield store
    finally:  # after the store let its lease go, over this connection
        if found.source is not None:
            found.source.close()


def reset_candidates(options: RunOptions, name: str) -> list[StoredSync]:
    """The chosen Kafka target's syncs that `reset NAME` would forget; changes nothing."""
    found = _history(options)
    with _history_store(found, read_only=True, check_snapshots=False) as store:
        return store.find_syncs(name, found.target_name)


def reset(options: RunOptions, sync_ids: list[str]) -> list[str]:
    """Forget these syncs' snapshots (from reset_candidates); return those forgotten.

    Damaged snapshots do not stop it (it is a way out of them): the rest of the file must
    be whole.
    """
    found = _history(options)
    owner = f"reset-{new_run_id()}"
    with _history_store(found, False, owner, check_snapshots=False) as store:
        return store.forget_syncs(sync_ids)


def restore_state(options: RunOptions, force: bool) -> Restored:
    """Put the last good copy of the local state file in its place (the file is kept aside)."""
    from dbt_kafka_sync.state.last_good import restore_last_good

    found = _history(options)
    if found.source is not None:
        found.source.close()  # not needed: only a local file is restored
    if found.state.in_warehouse:
        raise StateError(
            "the state is kept in the warehouse: restore-state restores the local state file",
            hint="restore the state schema with the warehouse's own backups",
        )
    return restore_last_good(found.state.path, force)


def recent_runs(options: RunOptions, limit: int) -> list[RunSummary]:
    """The latest runs of the state store, newest first."""
    with _history_store(_history(options), read_only=True) as store:
        return store.recent_runs(limit)


def run_details(options: RunOptions, run_id: str, max_rows: int) -> RunDetails | None:
    """One run of the state store with its syncs and failed rows; None for an unknown run."""
    with _history_store(_history(options), read_only=True) as store:
        return store.run_details(run_id, max_rows)


@dataclass(frozen=True)
class RunMessages:
    """What the debugger recorded of one run."""

    messages: list[SentMessage]
    timings: list[StageTiming]
    rates: list[Throughput]


def run_messages(options: RunOptions, run_id: str, wanted: MessageFilter) -> RunMessages:
    """The debugger's records of one run: its messages as filtered, stage timings, send rate."""
    with _history_store(_history(options), read_only=True) as store:
        messages = store.sent_messages(run_id, wanted)
        return RunMessages(messages, store.stage_timings(run_id), store.throughput(run_id))


def messages_for_key(
    options: RunOptions, key: str, model: str | None, limit: int
) -> list[SentMessage]:
    """Every recorded message of one key across runs, newest first."""
    with _history_store(_history(options), read_only=True) as store:
        return store.messages_for_key(key, model=model, limit=limit)


def report_data(options: RunOptions, run_id: str | None) -> ReportData:
    """What the run report shows of a run (default: the latest) of the state store."""
    with _history_store(_history(options), read_only=True) as store:
        if run_id is None:
            latest = store.recent_runs(1)
            if not latest:
                raise StateError("no run recorded yet: nothing to report")
            run_id = latest[0].run_id
        details = store.run_details(run_id, MAX_REPORTED_FAILURES)
        if details is None:
            raise StateError(f"no run '{run_id}'", hint="`dbt-kafka-sync runs` lists the run ids")
        # The failed messages first, then the others, up to the sample's size.
        failed = store.sent_messages(
            run_id, MessageFilter(failed_only=True, limit=MAX_REPORTED_MESSAGES)
        )
        seen = {(message.sync_id, message.seq) for message in failed}
        others = store.sent_messages(run_id, MessageFilter(limit=MAX_REPORTED_MESSAGES))
        sample = failed + [m for m in others if (m.sync_id, m.seq) not in seen]
        return ReportData(
            details,
            datetime.now(timezone.utc),
            messages=sample[:MAX_REPORTED_MESSAGES],
            timings=store.stage_timings(run_id),
            throughput=store.throughput(run_id),
        )


def report_path(options: RunOptions, run_id: str) -> Path:
    """Where the run report of a run goes: the dbt project's target folder."""
    target = load_dbt_project(options.project_dir.resolve()).target_path
    return target / f"kafka_sync_report_{run_id}.html"
