"""A whole run: load and validate everything first, then sync each model in turn."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from dbt_kafka_sync.alerts.decide import RunFacts
from dbt_kafka_sync.config.alerts import AlertsConfig
from dbt_kafka_sync.config.kafka import KafkaTarget
from dbt_kafka_sync.dbt.manifest import SyncedModel, load_manifest, synced_models
from dbt_kafka_sync.dbt.profiles import dbt_output, find_profiles_file, kafka_target, load_profiles
from dbt_kafka_sync.dbt.project import load_dbt_project
from dbt_kafka_sync.dbt.run_results import NotBuilt, models_not_built
from dbt_kafka_sync.dbt.selection import Selection, select_models
from dbt_kafka_sync.errors import DamagedStateError, StateError, SyncError, WarehouseError
from dbt_kafka_sync.job import JobContext, SyncJob
from dbt_kafka_sync.kafka.transactions import SyncTransaction
from dbt_kafka_sync.messages.templating import TemplateLoader
from dbt_kafka_sync.report.data import ReportData
from dbt_kafka_sync.sources import open_source
from dbt_kafka_sync.sources.base import Source
from dbt_kafka_sync.state.base import StateStore
from dbt_kafka_sync.state.history import RunDetails, RunSummary, SyncOutcome
from dbt_kafka_sync.state.location import StateLocation, open_store
from dbt_kafka_sync.state.message_log import SentMessage, StageTiming, Throughput
from dbt_kafka_sync.state.store import StoredSync

if TYPE_CHECKING:
    from dbt_kafka_sync.alerts.delivery import Delivery
    from dbt_kafka_sync.kafka.producer import Publisher
    from dbt_kafka_sync.state.last_good import Restored
    from dbt_kafka_sync.state.warehouse.store import WarehouseStore

log = logging.getLogger(__name__)

MAX_REPORTED_FAILURES = 1_000  # failed rows the run report lists
MAX_REPORTED_MESSAGES = 200  # messages the run report shows, failed ones first


@dataclass(frozen=True)
class RunOptions:
    """What the user asked for on the command line."""

    project_dir: Path = Path(".")
    profiles_dir: Path | None = None
    target: str | None = None
    dbt_target: str | None = None
    selection: Selection = field(default_factory=Selection)
    state_path: Path | None = None
    ignore_run_results: bool = False


@dataclass(frozen=True)
class RunContext:
    """Everything a run needs, loaded and validated before anything is published."""

    models: list[SyncedModel]
    not_built: dict[str, NotBuilt]  # by unique_id: left out, dbt did not build them
    target_name: str
    kafka: KafkaTarget
    source: Source
    state: StateLocation
    project_dir: Path

    def job_context(
        self,
        store: StateStore,
        publisher: Publisher | None,
        run_id: str,
        full_refresh: bool,
    ) -> JobContext:
        """What every sync of this run shares."""
        started = datetime.now(timezone.utc)
        transactions = None
        if publisher is not None:
            transactions = partial(SyncTransaction, self.kafka, self.project_dir)
        return JobContext(
            connection=store.session,
            source=self.source,
            store=store,
            publisher=publisher,
            target=self.target_name,
            run_id=run_id,
            templates=TemplateLoader(self.project_dir, started),
            started_at=started.isoformat().replace("+00:00", "Z"),
            full_refresh=full_refresh,
            delivery=self.kafka.delivery,
            transactions=transactions,
            debugger=self.kafka.debugger if publisher is not None else None,
        )


@dataclass
class RunReport:
    """The results of every sync of a run."""

    run_id: str
    results: list[SyncOutcome] = field(default_factory=list)
    command: str = "run"
    target: str | None = None  # the kafka_sync output, once the profiles are read
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    # Each (model, sync)'s status in the target's previous run: what a recovery is measured by.
    previous: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when every sync delivered every message (a plan: when each could be planned)."""
        if self.command == "plan":
            return all(result.error is None for result in self.results)
        return all(result.ok for result in self.results)


def load_context(options: RunOptions) -> RunContext:
    """Read dbt_project.yml, profiles.yml and the manifest; validate every sync config."""
    project_dir = options.project_dir.resolve()
    project = load_dbt_project(project_dir)
    manifest = load_manifest(project.manifest_path)
    models = select_models(synced_models(manifest), options.selection, project)
    profiles_path = find_profiles_file(options.profiles_dir, project_dir)
    profiles = load_profiles(profiles_path)
    target_name, kafka = kafka_target(profiles, options.target, profiles_path)
    output = dbt_output(profiles, project.profile, options.dbt_target, profiles_path)
    not_built = {} if options.ignore_run_results else models_not_built(project.manifest_path)
    return RunContext(
        models=models,
        not_built=not_built,
        target_name=target_name,
        kafka=kafka,
        source=open_source(output, project_dir),
        state=_state_location(options, kafka, project_dir),
        project_dir=project_dir,
    )


def _state_location(options: RunOptions, kafka: KafkaTarget, project_dir: Path) -> StateLocation:
    path = _absolute(options.state_path or Path(kafka.state_path), project_dir)
    return StateLocation(kafka.state, path, kafka.memory_limit)


def _absolute(path: Path, project_dir: Path) -> Path:
    return path if path.is_absolute() else project_dir / path


def new_run_id() -> str:
    """A sortable, readable run id: UTC time plus a random suffix."""
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


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
        store.prune_debugger(context.kafka.debugger.retention_days)
        try:
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


@dataclass(frozen=True)
class Alerting:
    """The profile's alerts block and what its alerts name: the dbt project and the target."""

    config: AlertsConfig
    project: str
    target: str


def load_alerting(options: RunOptions) -> Alerting | None:
    """The chosen output's alerts, read first, so that what fails after is alerted about."""
    project_dir = options.project_dir.resolve()
    profiles_path = find_profiles_file(options.profiles_dir, project_dir)
    target_name, kafka = kafka_target(load_profiles(profiles_path), options.target, profiles_path)
    if kafka.alerts is None:
        return None
    try:
        project = load_dbt_project(project_dir).name
    except SyncError:  # load_context reports it; the alert still names the project
        project = project_dir.name
    return Alerting(kafka.alerts, project, target_name)


def send_run_alerts(
    alerting: Alerting | None, report: RunReport, error: str | None = None
) -> list[Delivery]:
    """Alert about the run's outcome (`error`: what stopped it); never raises."""
    from dbt_kafka_sync.alerts.dispatch import send_alerts

    if alerting is None:
        return []
    facts = RunFacts(
        alerting.project, alerting.target, report.run_id, report.results, error, report.previous
    )
    return send_alerts(alerting.config, facts)


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
    state = _state_location(options, kafka, project_dir)
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


@contextmanager
def recording_results(options: RunOptions, report: RunReport, full_refresh: bool) -> Iterator[None]:
    """Write the results file (target/kafka_sync_results.json) when the command ends, however.

    A run stopped by an error gets one too, saying so, with the syncs done before it.
    """
    error: str | None = None
    try:
        yield
    except BaseException as exc:
        error = exc.render() if isinstance(exc, SyncError) else f"stopped by {type(exc).__name__}"
        raise
    finally:
        _write_results(options, report, full_refresh, error)


def _write_results(
    options: RunOptions, report: RunReport, full_refresh: bool, error: str | None
) -> None:
    from dbt_kafka_sync.report.results import Invocation, results_document, write_results

    args = {name: _plain(value) for name, value in vars(options).items() if name != "selection"}
    selection = options.selection
    args |= {
        "select": list(selection.select),
        "exclude": list(selection.exclude),
        "state": _plain(selection.state_dir),
    }
    invocation = Invocation(
        report.run_id,
        report.command,
        report.target,
        {**args, "full_refresh": full_refresh},
        report.started_at,
    )
    status = "error" if error else "success" if report.ok else "failed"
    document = results_document(
        invocation, report.results, status, error, datetime.now(timezone.utc)
    )
    try:
        write_results(load_dbt_project(options.project_dir.resolve()).target_path, document)
    except (OSError, SyncError) as exc:  # the run's own outcome matters more
        log.warning("could not write the results file: %s", exc)


def _plain(value: object) -> object:
    """An option's value as JSON holds it."""
    if isinstance(value, Path):
        return str(value)
    return list(value) if isinstance(value, tuple) else value


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
        failed = store.sent_messages(run_id, failed_only=True, limit=MAX_REPORTED_MESSAGES)
        seen = {(message.sync_id, message.seq) for message in failed}
        others = store.sent_messages(run_id, limit=MAX_REPORTED_MESSAGES)
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


@dataclass(frozen=True)
class MessageFilter:
    """Which of a run's recorded messages `show --messages` lists (see StateStore.sent_messages)."""

    key: str | None = None
    event: str | None = None
    failed_only: bool = False
    model: str | None = None
    limit: int = 100


@dataclass(frozen=True)
class RunMessages:
    """What the debugger recorded of one run."""

    messages: list[SentMessage]
    timings: list[StageTiming]
    rates: list[Throughput]


def run_messages(options: RunOptions, run_id: str, wanted: MessageFilter) -> RunMessages:
    """The debugger's records of one run: its messages as filtered, stage timings, send rate."""
    with _history_store(_history(options), read_only=True) as store:
        messages = store.sent_messages(
            run_id,
            key=wanted.key,
            event=wanted.event,
            failed_only=wanted.failed_only,
            model=wanted.model,
            limit=wanted.limit,
        )
        return RunMessages(messages, store.stage_timings(run_id), store.throughput(run_id))


def messages_for_key(
    options: RunOptions, key: str, model: str | None, limit: int
) -> list[SentMessage]:
    """Every recorded message of one key across runs, newest first."""
    with _history_store(_history(options), read_only=True) as store:
        return store.messages_for_key(key, model=model, limit=limit)


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
