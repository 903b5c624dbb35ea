"""What every StateStore does alike over its bookkeeping tables: history, records, reset."""

from __future__ import annotations

from dbt_kafka_sync.state import debugger, history
from dbt_kafka_sync.state.history import RunDetails, RunSummary, SyncOutcome
from dbt_kafka_sync.state.message_log import MessageFilter, SentMessage, StageTiming, Throughput
from dbt_kafka_sync.state.store import StoredSync, find_syncs, forget_syncs, load_sync
from dbt_kafka_sync.state.tables import MESSAGES, RATES, TIMINGS, Bookkeeping


class BookkeepingStore:
    """The half of a StateStore that only reads and writes the bookkeeping tables.

    A subclass sets `book` and tells whether the tables exist yet (`initialised`); before
    they do, the store reads as empty.
    """

    book: Bookkeeping

    def initialised(self) -> bool:
        """Tell whether the bookkeeping tables exist."""
        raise NotImplementedError

    def has_table(self, name: str) -> bool:
        """Tell whether a bookkeeping table exists (an older state may lack the newer ones)."""
        raise NotImplementedError

    def _has_log(self, table: str = MESSAGES) -> bool:
        # Opened read-only, a state written by an older version has no debugger tables yet.
        return self.initialised() and self.has_table(table)

    def check_lock(self) -> None:
        """Before publishing a sync: this run still holds the state's lock.

        By default a lock held for the whole run (a file lock) cannot be lost.
        """

    def synced_count(self) -> int | None:
        """How many syncs the store remembers; None when it does not exist yet."""
        if not self.initialised():
            return None
        [row] = self.book.records(f"SELECT count(*) AS n FROM {self.book.table('syncs')}")
        return int(row["n"])

    def has_sync(self, sync_id: str) -> bool:
        """Tell whether the store has a snapshot of the sync."""
        return self.initialised() and load_sync(self.book, sync_id) is not None

    def record_outcome(self, run_id: str, sync_id: str, outcome: SyncOutcome) -> None:
        """Record the outcome of a sync that committed nothing, with its debugger records."""
        rows = self.log_rows(outcome)
        with self.book.transaction():
            history.record_outcome(self.book, run_id, sync_id, outcome)
            debugger.save_sent(self.book, run_id, sync_id, outcome, rows)

    def log_rows(self, outcome: SyncOutcome) -> str | None:
        """Where the book's connection reads the sync's recorded messages (before a commit).

        By default they are read from the run's session directly.
        """
        return outcome.log.rows if outcome.log is not None else None

    def prune_debugger(self, retention_days: int) -> None:
        """Delete the debugger's records of runs older than the retention."""
        if self.initialised():
            debugger.prune(self.book, retention_days)

    def begin_run(self, run_id: str, command: str, target: str) -> None:
        """Record a run as started."""
        history.begin_run(self.book, run_id, command, target)

    def finish_run(self, run_id: str, status: str, error: str | None) -> None:
        """Record how a run ended."""
        history.finish_run(self.book, run_id, status, error)

    def recent_runs(self, limit: int) -> list[RunSummary]:
        """The latest runs, newest first."""
        return history.recent_runs(self.book, limit) if self.initialised() else []

    def previous_statuses(self, target: str, run_id: str) -> dict[tuple[str, str], str]:
        """Each (model, sync) of the target's earlier runs: its status in the latest of them."""
        return history.previous_statuses(self.book, target, run_id) if self.initialised() else {}

    def run_details(self, run_id: str, max_rows: int) -> RunDetails | None:
        """One run with its syncs and failed rows; None for an unknown run."""
        if not self.initialised():
            return None
        return history.run_details(self.book, run_id, max_rows)

    def find_syncs(self, name: str, target: str) -> list[StoredSync]:
        """The target's syncs of the model(s) `name` names exactly (see store.names_model)."""
        return find_syncs(self.book, name, target) if self.initialised() else []

    def forget_syncs(self, sync_ids: list[str]) -> list[str]:
        """Drop these syncs' snapshots; return the ids of those the store had."""
        return forget_syncs(self.book, sync_ids) if self.initialised() else []

    def sent_messages(self, run_id: str, wanted: MessageFilter) -> list[SentMessage]:
        """The debugger's record of a run's messages (see StateStore.sent_messages)."""
        return debugger.sent_messages(self.book, run_id, wanted) if self._has_log() else []

    def messages_for_key(
        self, key: str, *, model: str | None = None, limit: int = 100
    ) -> list[SentMessage]:
        """Every recorded message of one key, across runs, newest first."""
        if not self._has_log():
            return []
        return debugger.messages_for_key(self.book, key, model=model, limit=limit)

    def stage_timings(self, run_id: str) -> list[StageTiming]:
        """How long each stage of each sync of a run took."""
        return debugger.stage_timings(self.book, run_id) if self._has_log(TIMINGS) else []

    def throughput(self, run_id: str) -> list[Throughput]:
        """Messages each sync of a run handed to the producer, second by second."""
        return debugger.throughput(self.book, run_id) if self._has_log(RATES) else []
