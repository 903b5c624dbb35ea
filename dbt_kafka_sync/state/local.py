"""The local backend: the state file beside the project, the diff in the run's session."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from dbt_kafka_sync.changes.diff import CHANGES, EVENT, compute_changes
from dbt_kafka_sync.changes.hashing import PENDING, ROW_HASH
from dbt_kafka_sync.changes.keys import null_key_rows
from dbt_kafka_sync.session import STATE_DATABASE
from dbt_kafka_sync.sql import quote_identifier
from dbt_kafka_sync.state import snapshot
from dbt_kafka_sync.state.base import ChangeRequest, FoundChanges
from dbt_kafka_sync.state.integrity import state_errors
from dbt_kafka_sync.state.local_file import StateFileRunner, file_bookkeeping, has_state
from dbt_kafka_sync.state.prepared import PreparedCommit, load_prepared
from dbt_kafka_sync.state.records import BookkeepingStore
from dbt_kafka_sync.state.snapshot import (
    Staging,
    commit,
    conversion_notes,
    qualified,
    snapshot_view,
)
from dbt_kafka_sync.state.staging import StagedCommit, StagedLog
from dbt_kafka_sync.state.store import (
    load_sync,
    save_sync,
    snapshot_name,
)

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from dbt_kafka_sync.sources.base import Source
    from dbt_kafka_sync.state.history import SyncOutcome
    from dbt_kafka_sync.state.store import SyncIdentity


class LocalStore(BookkeepingStore):
    """Snapshots and history in the DuckDB file attached to the session (or none yet)."""

    def __init__(
        self,
        session: duckdb.DuckDBPyConnection,
        source: Source | None,
        path: Path,
        attached: bool,
    ) -> None:
        import duckdb

        self.session = session
        self.source = source
        self.path = path
        self.attached = attached
        self.file = StateFileRunner(session, path)  # `file.failed`: not known good any more
        self.book = file_bookkeeping(self.file)
        # DuckDB's hash() may change between versions: the snapshot notes which one hashed it.
        self.hash_version = str(duckdb.__version__)

    def initialised(self) -> bool:
        """Tell whether a state file is attached and initialised."""
        return self.attached and has_state(self.session)

    def has_table(self, name: str) -> bool:
        """Tell whether the attached state file has this bookkeeping table."""
        [(count,)] = self.session.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND table_name = ?",
            [STATE_DATABASE, name],
        ).fetchall()
        return bool(count)

    def find_changes(self, request: ChangeRequest) -> FoundChanges:
        """Read the model into the session and diff it there against the snapshot."""
        assert self.source is not None
        model = request.model
        relation = self.source.relation(self.session, model, request.read)
        diff = replace(request.diff, relation=relation)
        rejected, examples = null_key_rows(self.session, diff)
        record = load_sync(self.book, request.sync_id) if self.initialised() else None
        view = snapshot_view(model.name, diff, record, self.hash_version) if record else None
        with state_errors(self.session, self.path):  # the diff reads the snapshot
            counts = compute_changes(
                self.session,
                diff,
                view.sql if view else None,
                request.resend_all,
                request.with_previous,
                model=model.name,
            )
            notes = (
                view.notes + conversion_notes(self.session, diff, record) if record and view else []
            )
        return FoundChanges(diff, record, counts, rejected, examples, notes, view)

    def stage_commit(
        self, found: FoundChanges, sync_id: str, run_id: str, staged_log: StagedLog | None
    ) -> StagedCommit[Staging]:
        """Begin the sync's commit while its messages are sent (see state/staging.py)."""
        return StagedCommit(
            self.session,
            lambda cursor: snapshot.stage(
                cursor, found.diff, found.record, sync_id, run_id, staged_log
            ),
        )

    def commit(
        self,
        found: FoundChanges,
        failed: pa.Array,
        identity: SyncIdentity,
        run_id: str,
        outcome: SyncOutcome,
        staged: StagedCommit[Staging] | None = None,
    ) -> None:
        """Advance the snapshot and record the outcome, in one transaction of the file."""

        def complete(connection: duckdb.DuckDBPyConnection, staging: Staging | None) -> None:
            commit(
                connection,
                found.diff,
                found.pending,
                found.record,
                failed,
                identity,
                run_id,
                outcome,
                staging,
            )

        with self.file.guard():
            if staged is None:
                complete(self.session, None)
            else:
                staged.finish(complete)

    def prepare_commit(
        self, failed: pa.Array, prepared: PreparedCommit, outcome: SyncOutcome
    ) -> None:
        """Keep the delivered changes in the file as a prepared commit (exactly-once)."""
        with self.file.guard():
            snapshot.prepare(self.session, failed, prepared, outcome)

    def pending_commit(self, sync_id: str) -> PreparedCommit | None:
        """The sync's prepared commit, if a run left one."""
        return load_prepared(self.book, sync_id) if self.initialised() else None

    def complete_commit(self, prepared: PreparedCommit) -> None:
        """Apply a prepared commit whose Kafka transaction committed."""
        with self.file.guard():
            snapshot.complete(self.session, prepared)

    def discard_commit(self, prepared: PreparedCommit, reason: str) -> None:
        """Forget a prepared commit whose Kafka transaction did not commit."""
        with self.file.guard():
            snapshot.discard(self.session, prepared, reason)

    def describe(self) -> str:
        """The file and how many syncs it remembers."""
        count = self.synced_count()
        if count is None:
            return "local file: none yet (the first run creates it)"
        return f"local file: {count} sync(s) recorded"

    def adopt(
        self, request: ChangeRequest, identity: SyncIdentity, verify: Callable[[], None]
    ) -> None:
        """Read the model into the session; its rows, less the pending ones, become the snapshot."""
        assert self.source is not None
        relation = self.source.relation(self.session, request.model, request.read)
        diff = replace(request.diff, relation=relation)
        table = snapshot_name(identity.sync_id)
        columns = ", ".join(f"c.{quote_identifier(c)}" for c in diff.columns)
        keys = ", ".join(quote_identifier(c) for c in diff.primary_key)
        with self.book.transaction():
            self.session.execute(
                f"""
                CREATE TABLE {qualified(table)} AS
                SELECT {columns},
                       CASE WHEN p.{EVENT} = 'changed' THEN {PENDING} ELSE c.{ROW_HASH} END
                         AS {ROW_HASH}
                FROM (SELECT *, {diff.row_hash()} AS {ROW_HASH} FROM {relation}
                      WHERE {diff.key_not_null()}) c
                LEFT JOIN (SELECT {keys}, {EVENT} FROM {CHANGES}) p ON {diff.key_join("c", "p")}
                WHERE p.{EVENT} IS NULL OR p.{EVENT} = 'changed'
                """
            )
            save_sync(self.book, identity, table, diff)
            verify()
