"""Prepared commits (exactly-once delivery): a sync's delivered changes, kept until Kafka decides.

Before its Kafka transaction commits, a sync records here the changes that transaction
holds (in a table of their own beside the snapshots) and how to apply them, with the
marker the transaction carries. Once Kafka committed, the state applies them; a run
killed in between leaves them here, and the next run applies or discards them after
reading the marker. The functions work on any backend's bookkeeping tables.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from dbt_kafka_sync.changes.input import DiffInput
from dbt_kafka_sync.state.store import SyncIdentity
from dbt_kafka_sync.state.tables import MESSAGES, Bookkeeping

TABLE = "prepared"


@dataclass(frozen=True)
class PreparedCommit:
    """A sync's commit, prepared while its Kafka transaction is open.

    Attributes:
        sync_id: the sync.
        run_id: the run that prepared it.
        marker: the progress marker of its transaction, as JSON (kafka.markers.Marker).
        identity: the sync record the commit writes.
        diff: the diff the changes came from.
        view_sql: the stored snapshot as the diff saw it (None on a first run).
        view_rewrite: the commit rewrites the snapshot from view_sql first.
        table: the table holding the delivered changes.
    """

    sync_id: str
    run_id: str
    marker: str
    identity: SyncIdentity
    diff: DiffInput
    view_sql: str | None
    view_rewrite: bool
    table: str

    def to_plan(self) -> str:
        """What the commit needs besides the changes, as JSON."""
        return json.dumps(
            {
                "identity": asdict(self.identity),
                "diff": asdict(self.diff),
                "view_sql": self.view_sql,
                "view_rewrite": self.view_rewrite,
            },
            sort_keys=True,
        )


def save_prepared(book: Bookkeeping, prepared: PreparedCommit) -> None:
    """Record a prepared commit (inside the transaction that wrote its changes)."""
    book.execute(
        f"INSERT INTO {book.table(TABLE)} (sync_id, run_id, marker, plan, changes_table)"
        " VALUES ($1, $2, $3, $4, $5)",
        [prepared.sync_id, prepared.run_id, prepared.marker, prepared.to_plan(), prepared.table],
    )


def load_prepared(book: Bookkeeping, sync_id: str) -> PreparedCommit | None:
    """The sync's prepared commit, if one waits for its Kafka transaction's outcome."""
    rows = book.records(
        f"SELECT run_id, marker, plan, changes_table FROM {book.table(TABLE)} WHERE sync_id = $1",
        [sync_id],
    )
    if not rows:
        return None
    row = rows[0]
    plan = json.loads(row["plan"])
    return PreparedCommit(
        sync_id=sync_id,
        run_id=row["run_id"],
        marker=row["marker"],
        identity=SyncIdentity(**plan["identity"]),
        diff=DiffInput(**plan["diff"]),
        view_sql=plan["view_sql"],
        view_rewrite=plan["view_rewrite"],
        table=row["changes_table"],
    )


def drop_prepared(book: Bookkeeping, prepared: PreparedCommit) -> None:
    """Forget a prepared commit and its changes (inside a transaction)."""
    book.execute(f"DROP TABLE IF EXISTS {book.table(prepared.table)}")
    book.execute(f"DELETE FROM {book.table(TABLE)} WHERE sync_id = $1", [prepared.sync_id])


def mark_discarded(book: Bookkeeping, prepared: PreparedCommit, reason: str) -> None:
    """The run history's line of a discarded commit: its sync delivered nothing after all."""
    book.execute(
        f"UPDATE {book.table('run_syncs')} SET status = 'error', error = $1, delivered = 0"
        " WHERE run_id = $2 AND sync_id = $3",
        [reason, prepared.run_id, prepared.sync_id],
    )
    book.execute(
        f"UPDATE {book.table(MESSAGES)} SET outcome = 'failed', reason = $1"
        " WHERE run_id = $2 AND sync_id = $3 AND outcome = 'delivered'",
        [reason, prepared.run_id, prepared.sync_id],
    )
