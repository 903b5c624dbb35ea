"""The warehouse backend of the StateStore: snapshots, history and lease in a schema of it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from dbt_kafka_sync import faults
from dbt_kafka_sync.errors import StateError, WarehouseError
from dbt_kafka_sync.sql import arrow_batches
from dbt_kafka_sync.state import debugger, history
from dbt_kafka_sync.state.base import ChangeRequest, FoundChanges
from dbt_kafka_sync.state.prepared import (
    PreparedCommit,
    drop_prepared,
    load_prepared,
    mark_discarded,
    save_prepared,
)
from dbt_kafka_sync.state.records import BookkeepingStore
from dbt_kafka_sync.state.store import load_sync, save_sync
from dbt_kafka_sync.state.tables import SCHEMA_VERSION, Bookkeeping
from dbt_kafka_sync.state.warehouse import diff as warehouse_diff
from dbt_kafka_sync.state.warehouse import lease

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from dbt_kafka_sync.sources.base import Warehouse
    from dbt_kafka_sync.state.history import SyncOutcome
    from dbt_kafka_sync.state.staging import StagedCommit, StagedLog
    from dbt_kafka_sync.state.store import SyncIdentity


LOG_UPLOAD = "dks_sent_upload"  # the sync's recorded messages, in a temp table of the warehouse
LOG_BATCH = 100_000


class WarehouseStore(BookkeepingStore):
    """The state in a bookkeeping schema; the diff runs in the warehouse.

    Opened read-only (`plan`, `runs`, `show`), it creates and locks nothing, and a
    schema that does not exist yet reads as an empty state.
    """

    def __init__(
        self,
        session: duckdb.DuckDBPyConnection,
        warehouse: Warehouse,
        schema: str,
        read_only: bool,
    ) -> None:
        self.session = session
        self.warehouse = warehouse
        self.schema = schema
        self.hash_version = warehouse.hash_version
        self.book = Bookkeeping(warehouse, warehouse.schema(schema))
        self.lease: lease.Lease | None = None
        self._ready = self._prepare(read_only)

    def _prepare(self, read_only: bool) -> bool:
        """Create the schema and tables a writing run needs; tell whether a state exists."""
        exists = self.warehouse.schema_exists(self.schema)
        if read_only and not exists:
            return False
        if not exists:
            self.warehouse.create_schema(self.schema)
        if not read_only:
            try:
                self.book.create_tables({lease.TABLE: lease.COLUMNS})
            except WarehouseError as exc:
                raise StateError(
                    f"cannot create the state tables in schema '{self.schema}': {exc.render()}",
                    hint=f"grant the dbt user CREATE and USAGE on schema {self.schema}",
                ) from None
        try:
            version = self.book.schema_version()
        except WarehouseError:
            if read_only:  # the schema exists but holds no state yet
                return False
            raise
        if version is None and not read_only:
            self.book.set_schema_version()
        elif version is not None and version != SCHEMA_VERSION:
            raise StateError(
                f"the state in schema '{self.schema}' has version {version}; this version of"
                f" dbt-kafka-sync reads version {SCHEMA_VERSION}",
                hint="use the dbt-kafka-sync version that wrote it, or choose another schema",
            )
        return True

    def initialised(self) -> bool:
        """Tell whether the schema holds a state (a read-only store creates none)."""
        return self._ready

    def has_table(self, name: str) -> bool:
        """Tell whether the state's schema has this bookkeeping table."""
        [row] = self.book.records(
            "SELECT count(*) AS n FROM information_schema.tables"
            " WHERE table_schema = $1 AND table_name = $2",
            [self.schema, name],
        )
        return bool(row["n"])

    def lock(self, owner: str, lease_seconds: int) -> None:
        """Take the state's lease for this run (see lease.Lease)."""
        self.lease = lease.Lease(
            self.book, self.warehouse, owner, lease_seconds, f"schema '{self.schema}'"
        )
        self.lease.acquire()

    def check_lock(self) -> None:
        """Before publishing a sync: the lease was renewed in time."""
        if self.lease is not None:
            self.lease.check_alive()

    def unlock(self) -> None:
        """Give the lease up."""
        if self.lease is not None:
            self.lease.release()
            self.lease = None

    def find_changes(self, request: ChangeRequest) -> FoundChanges:
        """Diff in the warehouse; only the changed rows come into the session."""
        warehouse, model = self.warehouse, request.model
        relation = warehouse.relation(model)
        record = load_sync(self.book, request.sync_id) if self.initialised() else None
        view = None
        if record is not None:
            table = self.book.table(record.snapshot_table)
            view = warehouse_diff.snapshot_view(warehouse, request, record, table)
        snapshot = view.sql if view else warehouse_diff.empty_snapshot(warehouse, request)
        diff = request.diff
        with warehouse.consistent_read(model):
            rows = warehouse_diff.count_model(warehouse, diff, relation)
            examples = []
            if rows.rejected:
                examples = warehouse_diff.null_key_examples(warehouse, diff, relation)
            warehouse_diff.find_changed_keys(warehouse, request, relation, snapshot)
            if warehouse_diff.keys_may_repeat(warehouse, diff, rows.keyed, snapshot):
                warehouse_diff.check_duplicate_keys(warehouse, request, relation)
            warehouse_diff.build_work_table(warehouse, request, relation, snapshot)
            # A first run that only records the rows (initial_sync: skip) fetches none.
            recording = record is None and request.skip_initial
            counts = warehouse_diff.fetch_changes(
                warehouse, self.session, request, snapshot, rows=not recording
            )
        fetched = replace(diff, relation=warehouse_diff.FETCHED, numbered=True)
        notes = view.notes if view else []
        return FoundChanges(fetched, record, counts, rows.rejected, examples, notes, view)

    def commit(
        self,
        found: FoundChanges,
        failed: pa.Array,
        identity: SyncIdentity,
        run_id: str,
        outcome: SyncOutcome,
        staged: StagedCommit[Any] | None = None,
    ) -> None:
        """Send the failed numbers up, then one warehouse transaction advances the snapshot."""
        assert staged is None  # see stage_commit
        self._upload_failed(failed)
        rows = self.log_rows(outcome)
        diff = found.diff
        with self.book.transaction():
            self._check_lease()
            table = warehouse_diff.advance_snapshot(
                self.book, self.warehouse, diff, found.pending, found.record, identity.sync_id
            )
            save_sync(self.book, identity, table, diff)
            history.record_outcome(self.book, run_id, identity.sync_id, outcome)
            debugger.save_sent(self.book, run_id, identity.sync_id, outcome, rows)
            faults.reached(faults.DURING_STATE_COMMIT)

    def stage_commit(
        self, found: FoundChanges, sync_id: str, run_id: str, staged_log: StagedLog | None
    ) -> None:
        """The warehouse's transaction is opened at the commit, once the deliveries are known.

        Its rows come up from the session through the warehouse's one connection, which
        the diff and the lease use too: there is no second connection to stage them on.
        """
        return None

    def prepare_commit(
        self, failed: pa.Array, prepared: PreparedCommit, outcome: SyncOutcome
    ) -> None:
        """Keep the delivered changes in the schema as a prepared commit (exactly-once)."""
        self._upload_failed(failed)
        rows = self.log_rows(outcome)
        with self.book.transaction():
            self._check_lease()
            warehouse_diff.keep_delivered(self.book, self.warehouse, prepared.table)
            save_prepared(self.book, prepared)
            history.record_outcome(self.book, prepared.run_id, prepared.sync_id, outcome)
            debugger.save_sent(self.book, prepared.run_id, prepared.sync_id, outcome, rows)
            faults.reached(faults.DURING_PREPARE)

    def pending_commit(self, sync_id: str) -> PreparedCommit | None:
        """The sync's prepared commit, if a run left one."""
        return load_prepared(self.book, sync_id) if self.initialised() else None

    def complete_commit(self, prepared: PreparedCommit) -> None:
        """Apply a prepared commit whose Kafka transaction committed."""
        view = None
        if prepared.view_sql is not None:
            view = warehouse_diff.WarehouseSnapshot(prepared.view_sql, prepared.view_rewrite, [])
        with self.book.transaction():
            self._check_lease()
            record = load_sync(self.book, prepared.sync_id)
            changes = self.book.table(prepared.table)
            table = warehouse_diff.advance_snapshot(
                self.book, self.warehouse, prepared.diff, view, record, prepared.sync_id, changes
            )
            save_sync(self.book, prepared.identity, table, prepared.diff)
            drop_prepared(self.book, prepared)
            faults.reached(faults.DURING_STATE_COMMIT)

    def discard_commit(self, prepared: PreparedCommit, reason: str) -> None:
        """Forget a prepared commit whose Kafka transaction did not commit."""
        with self.book.transaction():
            self._check_lease()
            drop_prepared(self.book, prepared)
            mark_discarded(self.book, prepared, reason)

    def _upload_failed(self, failed: pa.Array) -> None:
        import pyarrow as pa

        seqs = pa.table({"seq": failed.cast(pa.int64())})
        self.warehouse.upload(self.session, seqs, warehouse_diff.FAILED)

    def log_rows(self, outcome: SyncOutcome) -> str | None:
        """The sync's recorded messages go up in bulk, into a temp table of the warehouse."""
        if outcome.log is None or outcome.log.rows is None:
            return None
        query = f"SELECT * FROM {outcome.log.rows}"
        # Streamed batch by batch: a large backfill's log is never in memory whole.
        self.warehouse.upload(
            self.session, arrow_batches(self.session, query, LOG_BATCH), LOG_UPLOAD
        )
        return self.warehouse.temp_table(LOG_UPLOAD)

    def _check_lease(self) -> None:
        if self.lease is not None:
            self.lease.check()

    def describe(self) -> str:
        """The schema and how many syncs it remembers."""
        where, count = f"warehouse schema '{self.schema}'", self.synced_count()
        if count is None:
            return f"{where}: none yet (the first run creates it; see the README for privileges)"
        return f"{where}: {count} sync(s) recorded"

    def model_fingerprint(self, request: ChangeRequest) -> str:
        """The model's rows in one value (see diff.model_fingerprint)."""
        relation = self.warehouse.relation(request.model)
        return warehouse_diff.model_fingerprint(self.warehouse, request, relation)

    def adopt(
        self, request: ChangeRequest, identity: SyncIdentity, verify: Callable[[], None]
    ) -> None:
        """The pending keys go up in bulk; the model's rows, less those, become the snapshot."""
        warehouse_diff.upload_pending(self.warehouse, self.session, request.diff)
        relation = self.warehouse.relation(request.model)
        with self.book.transaction():
            self._check_lease()
            table = warehouse_diff.adopt_snapshot(
                self.book, self.warehouse, request, relation, identity.sync_id
            )
            save_sync(self.book, identity, table, request.diff)
            verify()
