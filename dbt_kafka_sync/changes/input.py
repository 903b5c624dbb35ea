"""What a diff compares (DiffInput) and what it found (ChangeCounts)."""

from __future__ import annotations

from dataclasses import dataclass

from dbt_kafka_sync.changes.hashing import row_hash
from dbt_kafka_sync.sql import quote_identifier

# A change's sequence number: its row id in the changes table, which is never modified. A
# model with a column named rowid hides DuckDB's row id; its changes are numbered in SEQ_COLUMN.
ROW_ID = "rowid"
SEQ_COLUMN = "__dks_seq"


@dataclass(frozen=True)
class DiffInput:
    """What to compare: the model's rows and the columns kept in the snapshot.

    Attributes:
        relation: qualified name of the model's relation.
        primary_key: the primary key columns.
        columns: stored column -> DuckDB type (primary key included).
        compare_columns: the columns whose change makes a row `changed`.
        numbered: the changes carry their sequence numbers in SEQ_COLUMN (given by a
            diff that ran elsewhere) instead of being numbered by their row id.
    """

    relation: str
    primary_key: list[str]
    columns: dict[str, str]
    compare_columns: list[str]
    numbered: bool = False

    @property
    def seq(self) -> str:
        """The column of CHANGES holding each change's sequence number."""
        if self.numbered or any(c.lower() == ROW_ID for c in self.columns):
            return SEQ_COLUMN
        return ROW_ID

    def row_hash(self) -> str:
        """Return SQL hashing the compared columns of a current row."""
        return row_hash(self.compare_columns, self.columns)

    def key_not_null(self) -> str:
        """Return the condition: no primary key column is NULL."""
        return " AND ".join(f"{quote_identifier(c)} IS NOT NULL" for c in self.primary_key)

    def key_join(self, left: str, right: str) -> str:
        """Return the join condition on the primary key between two aliases."""
        return " AND ".join(
            f"{left}.{quote_identifier(c)} = {right}.{quote_identifier(c)}"
            for c in self.primary_key
        )


@dataclass(frozen=True)
class ChangeCounts:
    """How many rows of each kind the diff found."""

    added: int = 0
    changed: int = 0
    removed: int = 0

    @property
    def total(self) -> int:
        """All changes together."""
        return self.added + self.changed + self.removed
