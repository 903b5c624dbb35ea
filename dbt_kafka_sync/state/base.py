"""The StateStore interface: where snapshots and the run history live, and where the diff runs.

The local backend keeps them in a DuckDB file and diffs in the run's session; the
warehouse backend keeps them in a schema of the warehouse and diffs there. Either way
the changes end up in the session's table of changes (changes.diff.CHANGES), from which
messages are built the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from dbt_kafka_sync.changes.input import ChangeCounts, DiffInput

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from dbt_kafka_sync.dbt.manifest import SyncedModel
    from dbt_kafka_sync.sources.base import SourceColumn
    from dbt_kafka_sync.state.history import RunDetails, RunSummary, SyncOutcome
    from dbt_kafka_sync.state.message_log import MessageFilter, SentMessage, StageTiming, Throughput
    from dbt_kafka_sync.state.prepared import PreparedCommit
    from dbt_kafka_sync.state.staging import StagedCommit, StagedLog
    from dbt_kafka_sync.state.store import StoredSync, SyncIdentity, SyncRecord


@dataclass(frozen=True)
class ChangeRequest:
    """What one sync asks the store to compare.

    Attributes:
        model: the model.
        sync_id: the sync's id in the store.
        diff: the columns kept and compared (its relation is the store's to fill).
        read: the model's columns the diff keeps, as the source describes them.
        resend_all: --full-refresh: unchanged rows are sent too, as `added`.
        with_previous: changed rows carry their snapshot values (templates' `previous`).
        skip_initial: a first run records the rows without publishing them.
    """

    model: SyncedModel
    sync_id: str
    diff: DiffInput
    read: list[SourceColumn]
    resend_all: bool
    with_previous: bool
    skip_initial: bool = False


@dataclass(frozen=True)
class FoundChanges:
    """What the diff found; the changes themselves are in the session's table of changes.

    Attributes:
        diff: the diff as run (its `seq` numbers the table of changes).
        record: what the store remembered of the sync; None on its first run.
        counts: the changes of each kind.
        rejected: rows left out because their primary key has a NULL.
        rejected_examples: a few of them, as JSON.
        notes: what the store noticed (a new column, a new hash), for the log.
        pending: what the backend's commit needs to advance the snapshot.
    """

    diff: DiffInput
    record: SyncRecord | None
    counts: ChangeCounts
    rejected: int = 0
    rejected_examples: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    pending: Any = None


class StateStore(Protocol):
    """Snapshots, sync records and the run history of one place."""

    hash_version: str  # how this store hashes rows; recorded with each snapshot
    session: duckdb.DuckDBPyConnection  # the run's session, where the changes end up

    def find_changes(self, request: ChangeRequest) -> FoundChanges:
        """Compare the model with the snapshot; fill the session's table of changes.

        Raises:
            SyncError: for a repeated or changed primary key, or a model that cannot be read.
        """
        ...

    def commit(
        self,
        found: FoundChanges,
        failed: pa.Array,
        identity: SyncIdentity,
        run_id: str,
        outcome: SyncOutcome,
        staged: StagedCommit[Any] | None = None,
    ) -> None:
        """Advance the snapshot for every change but the failed ones; record the outcome.

        One transaction; `failed` holds the seqs of the changes whose message failed.
        `staged` is the commit stage_commit began, which this one completes.
        """
        ...

    def stage_commit(
        self, found: FoundChanges, sync_id: str, run_id: str, staged_log: StagedLog | None
    ) -> StagedCommit[Any] | None:
        """Begin the commit of the changes found while their messages are sent.

        The rows that do not depend on the deliveries (and `staged_log`, the messages as
        if delivered) are written in a transaction that only commit() completes. None
        when the backend does it all at the commit.
        """
        ...

    def prepare_commit(
        self, failed: pa.Array, prepared: PreparedCommit, outcome: SyncOutcome
    ) -> None:
        """Exactly-once: keep the changes but the failed ones as a prepared commit; one transaction.

        The outcome is recorded with it; the snapshot does not change yet.
        """
        ...

    def pending_commit(self, sync_id: str) -> PreparedCommit | None:
        """The sync's prepared commit, if a run left one (its Kafka outcome not applied yet)."""
        ...

    def complete_commit(self, prepared: PreparedCommit) -> None:
        """Apply a prepared commit to the snapshot and forget it; one transaction."""
        ...

    def discard_commit(self, prepared: PreparedCommit, reason: str) -> None:
        """Forget a prepared commit whose Kafka transaction did not commit; the history says why."""
        ...

    def record_outcome(self, run_id: str, sync_id: str, outcome: SyncOutcome) -> None:
        """Record the outcome of a sync that committed nothing."""
        ...

    def prune_debugger(self, retention_days: int) -> None:
        """Delete the debugger's records (messages, timings, rates) of runs older than this."""
        ...

    def check_lock(self) -> None:
        """Before publishing a sync: this run still holds the state's lock.

        Raises:
            StateError: when it lost it.
        """
        ...

    def describe(self) -> str:
        """Where the state is and what it holds, for `debug`."""
        ...

    def has_sync(self, sync_id: str) -> bool:
        """Tell whether the store has a snapshot of the sync."""
        ...

    def adopt(
        self, request: ChangeRequest, identity: SyncIdentity, verify: Callable[[], None]
    ) -> None:
        """Take a sync over from another store, in one transaction.

        The snapshot becomes the model's current rows, less what the other store had not
        published yet (in the session's table of changes): an `added` row is left out and
        a `changed` one marked to be sent, so the next run sends what the other store's
        next run would have sent. `verify` runs last in the transaction and raises to
        undo it (the model changed since the other store's diff).
        """
        ...

    def begin_run(self, run_id: str, command: str, target: str) -> None:
        """Record a run as started."""
        ...

    def finish_run(self, run_id: str, status: str, error: str | None) -> None:
        """Record how a run ended."""
        ...

    def recent_runs(self, limit: int) -> list[RunSummary]:
        """The latest runs, newest first."""
        ...

    def run_details(self, run_id: str, max_rows: int) -> RunDetails | None:
        """One run with its syncs and failed rows; None for an unknown run."""
        ...

    def previous_statuses(self, target: str, run_id: str) -> dict[tuple[str, str], str]:
        """Each (model, sync) of the target's runs before run_id: its status in the latest."""
        ...

    def find_syncs(self, name: str, target: str) -> list[StoredSync]:
        """The target's syncs of the model(s) `name` names exactly (see store.names_model)."""
        ...

    def forget_syncs(self, sync_ids: list[str]) -> list[str]:
        """Drop these syncs' snapshots; return the ids of those the store had."""
        ...

    def sent_messages(self, run_id: str, wanted: MessageFilter) -> list[SentMessage]:
        """The debugger's record of a run's messages, as `wanted` filters them."""
        ...

    def messages_for_key(
        self, key: str, *, model: str | None = None, limit: int = 100
    ) -> list[SentMessage]:
        """Every recorded message of one key, across runs, newest first."""
        ...

    def stage_timings(self, run_id: str) -> list[StageTiming]:
        """How long each stage of each sync of a run took."""
        ...

    def throughput(self, run_id: str) -> list[Throughput]:
        """Messages each sync of a run handed to the producer, second by second."""
        ...
