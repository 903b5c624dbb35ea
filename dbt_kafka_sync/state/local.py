"""The local backend: the state file beside the project, the diff in the run's session."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from dbt_kafka_sync.changes.diff import compute_changes
from dbt_kafka_sync.changes.keys import null_key_rows
from dbt_kafka_sync.state import history
from dbt_kafka_sync.state.base import ChangeRequest, FoundChanges
from dbt_kafka_sync.state.local_file import has_state, local_bookkeeping
from dbt_kafka_sync.state.snapshot import commit, snapshot_view
from dbt_kafka_sync.state.store import forget_syncs, load_sync

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from dbt_kafka_sync.sources.base import Source
    from dbt_kafka_sync.state.history import RunDetails, RunSummary, SyncOutcome
    from dbt_kafka_sync.state.store import SyncIdentity


class LocalStore:
    """Snapshots and history in the DuckDB file attached to the session (or none yet)."""

    def __init__(
        self, session: duckdb.DuckDBPyConnection, source: Source | None, attached: bool
    ) -> None:
        import duckdb

        self.session = session
        self.source = source
        self.attached = attached
        self.book = local_bookkeeping(session)
        # DuckDB's hash() may change between versions: the snapshot notes which one hashed it.
        self.hash_version = str(duckdb.__version__)

    def _initialised(self) -> bool:
        return self.attached and has_state(self.session)

    def find_changes(self, request: ChangeRequest) -> FoundChanges:
        """Read the model into the session and diff it there against the snapshot."""
        assert self.source is not None
        model = request.model
        relation = self.source.relation(self.session, model, request.read)
        diff = replace(request.diff, relation=relation)
        rejected, examples = null_key_rows(self.session, diff)
        record = load_sync(self.book, request.sync_id) if self._initialised() else None
        view = snapshot_view(model.name, diff, record, self.hash_version) if record else None
        counts = compute_changes(
            self.session,
            diff,
            view.sql if view else None,
            request.resend_all,
            request.with_previous,
            model=model.name,
        )
        notes = view.notes if view else []
        return FoundChanges(diff, record, counts, rejected, examples, notes, view)

    def commit(
        self,
        found: FoundChanges,
        failed: pa.Array,
        identity: SyncIdentity,
        run_id: str,
        outcome: SyncOutcome,
    ) -> None:
        """Advance the snapshot and record the outcome, in one transaction of the file."""
        commit(
            self.session,
            found.diff,
            found.pending,
            found.record,
            failed,
            identity,
            run_id,
            outcome,
        )

    def record_outcome(self, run_id: str, sync_id: str, outcome: SyncOutcome) -> None:
        """Record the outcome of a sync that committed nothing."""
        history.record_outcome(self.book, run_id, sync_id, outcome)

    def begin_run(self, run_id: str, command: str, target: str) -> None:
        """Record a run as started."""
        history.begin_run(self.book, run_id, command, target)

    def finish_run(self, run_id: str, status: str, error: str | None) -> None:
        """Record how a run ended."""
        history.finish_run(self.book, run_id, status, error)

    def recent_runs(self, limit: int) -> list[RunSummary]:
        """The latest runs, newest first."""
        return history.recent_runs(self.book, limit) if self._initialised() else []

    def run_details(self, run_id: str, max_rows: int) -> RunDetails | None:
        """One run with its syncs and failed rows; None for an unknown run."""
        if not self._initialised():
            return None
        return history.run_details(self.book, run_id, max_rows)

    def forget_syncs(self, model: str, target: str) -> list[str]:
        """Drop the snapshots of a model's syncs; return their ids."""
        return forget_syncs(self.book, model, target) if self._initialised() else []
