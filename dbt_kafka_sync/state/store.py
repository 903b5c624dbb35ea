"""Sync records: what the state remembers of each sync, and where its snapshot is.

The functions work on the bookkeeping tables of any backend (the local file or a
warehouse schema); a snapshot table lives beside them, in the same container.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from dbt_kafka_sync.changes.input import DiffInput
from dbt_kafka_sync.state.tables import Bookkeeping


@dataclass(frozen=True)
class SyncRecord:
    """What the state remembers of one sync.

    Attributes:
        hash_version: how the snapshot's row hashes were computed (the local backend:
            the DuckDB version, whose hash() may change; a warehouse: its hash's name).
    """

    sync_id: str
    snapshot_table: str
    primary_key: list[str]
    columns: dict[str, str]
    compare_columns: list[str]
    fingerprint: str
    hash_version: str


@dataclass(frozen=True)
class SyncIdentity:
    """The sync record written at commit, besides the snapshot's shape."""

    sync_id: str
    target: str
    model_unique_id: str
    sync_name: str
    topic: str
    fingerprint: str
    hash_version: str


def sync_id(target: str, model_unique_id: str, sync_name: str) -> str:
    """Identify a sync: one snapshot per Kafka target, model and sync name."""
    return f"{target}:{model_unique_id}:{sync_name}"


def load_sync(book: Bookkeeping, sync: str) -> SyncRecord | None:
    """Return what the state remembers of a sync, or None before its first commit."""
    rows = book.records(
        f"SELECT sync_id, snapshot_table, primary_key, columns, compare_columns, fingerprint,"
        f" duckdb_version FROM {book.table('syncs')} WHERE sync_id = $1",
        [sync],
    )
    if not rows:
        return None
    row = rows[0]
    return SyncRecord(
        sync_id=row["sync_id"],
        snapshot_table=row["snapshot_table"],
        primary_key=json.loads(row["primary_key"]),
        columns=json.loads(row["columns"]),
        compare_columns=json.loads(row["compare_columns"]),
        fingerprint=row["fingerprint"],
        hash_version=row["duckdb_version"],
    )


def save_sync(
    book: Bookkeeping, identity: SyncIdentity, snapshot_table: str, diff: DiffInput
) -> None:
    """Write a sync's record (inside the commit's transaction)."""
    syncs = book.table("syncs")
    found = book.records(f"SELECT version FROM {syncs} WHERE sync_id = $1", [identity.sync_id])
    version = int(found[0]["version"]) + 1 if found else 1
    book.execute(f"DELETE FROM {syncs} WHERE sync_id = $1", [identity.sync_id])
    book.execute(
        f"INSERT INTO {syncs} (sync_id, target, model, sync_name, topic, snapshot_table,"
        " primary_key, columns, compare_columns, fingerprint, duckdb_version, version,"
        " updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, now())",
        [
            identity.sync_id,
            identity.target,
            identity.model_unique_id,
            identity.sync_name,
            identity.topic,
            snapshot_table,
            json.dumps(diff.primary_key),
            json.dumps(diff.columns),
            json.dumps(diff.compare_columns),
            identity.fingerprint,
            identity.hash_version,
            version,
        ],
    )


def snapshot_name(sync: str) -> str:
    """Return a stable table name for a sync's snapshot (sync ids hold characters tables cannot)."""
    return "snapshot_" + hashlib.sha256(sync.encode()).hexdigest()[:16]


def prepared_table(sync: str) -> str:
    """The table of a sync's prepared commit (exactly-once; see state/prepared.py)."""
    return f"{snapshot_name(sync)}_prepared"


def fingerprint(config: dict[str, Any]) -> str:
    """Hash the parts of a sync's config that shape its messages."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class StoredSync:
    """A sync the state remembers, as `reset` lists it.

    Attributes:
        sync_id: `target:model unique_id:sync name`.
        model: the model's unique_id (`model.<package>.<name>`, `....v<N>` for a version).
    """

    sync_id: str
    model: str

    @property
    def package(self) -> str:
        """The dbt package of the model."""
        return self.model.split(".")[1] if self.model.count(".") >= 2 else ""


def names_model(name: str, unique_id: str) -> bool:
    """Tell whether `reset NAME` names this model, exactly.

    NAME is the model's unique_id, its name (every version of a versioned model) or, for
    one version, `name.v<N>` as dbt writes it (unique_id `model.<package>.<name>.v<N>`).
    """
    if name == unique_id:
        return True
    parts = unique_id.split(".", 3)  # model, package, name[, v<N>]
    if len(parts) < 3:
        return False
    return name == parts[2] or (len(parts) == 4 and name == f"{parts[2]}.{parts[3]}")


def find_syncs(book: Bookkeeping, name: str, target: str) -> list[StoredSync]:
    """The syncs of the target whose model `name` names (see names_model), by sync id."""
    rows = book.records(
        f"SELECT sync_id, model FROM {book.table('syncs')} WHERE target = $1 ORDER BY sync_id",
        [target],
    )
    return [
        StoredSync(str(row["sync_id"]), str(row["model"]))
        for row in rows
        if names_model(name, str(row["model"]))
    ]


def forget_syncs(book: Bookkeeping, sync_ids: list[str]) -> list[str]:
    """Drop these syncs' snapshots, records and prepared commits, in one transaction.

    Returns:
        The ids of the syncs the state had.
    """
    syncs = book.table("syncs")
    forgotten: list[str] = []
    with book.transaction():
        for sync in sync_ids:
            rows = book.records(f"SELECT snapshot_table FROM {syncs} WHERE sync_id = $1", [sync])
            if rows:
                book.execute(f"DROP TABLE IF EXISTS {book.table(rows[0]['snapshot_table'])}")
                book.execute(f"DELETE FROM {syncs} WHERE sync_id = $1", [sync])
                forgotten.append(sync)
            # An exactly-once commit left prepared: forgotten too, or it would come back.
            book.execute(f"DROP TABLE IF EXISTS {book.table(prepared_table(sync))}")
            book.execute(f"DELETE FROM {book.table('prepared')} WHERE sync_id = $1", [sync])
    return forgotten
