"""What a finished run is worth an alert for: a failure, too many failed rows, a recovery."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from dbt_kafka_sync.config.alerts import AlertsConfig, Trigger
from dbt_kafka_sync.state.history import SyncOutcome

MAX_REASONS = 3  # failure reasons an alert quotes per sync


@dataclass(frozen=True)
class RunFacts:
    """What the alerts know of a run once its outcome is known.

    Attributes:
        project: the dbt project's name.
        target: the kafka_sync output the run used.
        run_id: the run's id (`dbt-kafka-sync show RUN_ID`).
        syncs: each sync's outcome; empty when the run stopped before syncing.
        error: the error that stopped the whole run, if one did.
        previous: each (model, sync)'s status in the target's run before this one.
    """

    project: str
    target: str
    run_id: str
    syncs: Sequence[SyncOutcome] = ()
    error: str | None = None
    previous: dict[tuple[str, str], str] = field(default_factory=dict)

    @property
    def show_command(self) -> str:
        """The command that shows the run's details."""
        return f"dbt-kafka-sync show {self.run_id}"


@dataclass(frozen=True)
class Alert:
    """One thing to tell: about one sync, or (sync None) about the whole run."""

    trigger: Trigger
    sync: SyncOutcome | None
    reasons: tuple[str, ...]
    dedup_key: str  # the same for a sync's trigger and its recovery (PagerDuty)

    @property
    def resolves(self) -> bool:
        """True for a recovery: it closes an earlier alert rather than raising one."""
        return self.trigger == "recovery"


def dedup_key(facts: RunFacts, sync: SyncOutcome | None) -> str:
    """A key stable across runs for one sync of one target (or the target's run as a whole)."""
    what = "run" if sync is None else f"{sync.model}/{sync.sync}"
    return f"dbt-kafka-sync/{facts.project}/{facts.target}/{what}"


def decide(config: AlertsConfig, facts: RunFacts) -> list[Alert]:
    """Every alert the run calls for, the run's own failure first."""
    alerts: list[Alert] = []
    if facts.error is not None:
        alerts.append(Alert("failure", None, (facts.error,), dedup_key(facts, None)))
    for sync in facts.syncs:
        trigger = _sync_trigger(config, facts, sync)
        if trigger is not None:
            alerts.append(Alert(trigger, sync, reasons(sync), dedup_key(facts, sync)))
    return alerts


def _sync_trigger(config: AlertsConfig, facts: RunFacts, sync: SyncOutcome) -> Trigger | None:
    if sync.skipped is not None:  # not synced at all (dbt did not build it): no news either way
        return None
    if sync.error is not None:
        return "failure"
    if too_many_failed_rows(config, sync):
        return "failed_rows"
    previous = facts.previous.get((sync.model, sync.sync))
    if sync.ok and previous is not None and previous != "success":
        return "recovery"
    return None


def too_many_failed_rows(config: AlertsConfig, sync: SyncOutcome) -> bool:
    """Whether the sync's failed + rejected rows pass a threshold (any one, when none is set).

    The share is of the rows the sync tried to send: delivered, failed (a message that could
    not be built or was not delivered) and rejected.
    """
    bad = sync.failed + sync.rejected
    if bad == 0:
        return False
    rows_above, share_above = config.failed_rows_above, config.failed_share_above
    if rows_above is None and share_above is None:
        return True
    if rows_above is not None and bad > rows_above:
        return True
    return share_above is not None and bad / (sync.delivered + bad) > share_above


def reasons(sync: SyncOutcome) -> tuple[str, ...]:
    """The first few reasons the sync failed, as the summary shows them."""
    found = [sync.error] if sync.error else []
    for row in sync.recorded_failures()[:MAX_REASONS]:
        where = row.event if row.row_key is None else f"row key {row.row_key!r} ({row.event})"
        found.append(f"{where}: {row.reason}")
    return tuple(found[:MAX_REASONS])
