"""The bookkeeping tables: sync records, run history, failed rows, the debugger's log (and lease).

The same tables live in the local state file or in a warehouse schema. Their SQL keeps
to what DuckDB and PostgreSQL both run (positional $n parameters, no upserts), so one
definition serves every backend; only where the tables are (`prefix`) differs.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from dbt_kafka_sync.sql import SqlRunner, quote_identifier, transaction

SCHEMA_VERSION = 1

# The debugger's tables (state/debugger.py).
MESSAGES = "sent_messages"
TIMINGS = "stage_timings"
RATES = "send_rates"

_COLUMNS = {
    "meta": "key TEXT PRIMARY KEY, value TEXT",
    "syncs": """sync_id TEXT PRIMARY KEY,
        target TEXT, model TEXT, sync_name TEXT, topic TEXT,
        snapshot_table TEXT, primary_key TEXT, columns TEXT, compare_columns TEXT,
        fingerprint TEXT, duckdb_version TEXT, version BIGINT, updated_at TIMESTAMPTZ""",
    "runs": """run_id TEXT PRIMARY KEY, command TEXT, target TEXT,
        started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, status TEXT, error TEXT""",
    "run_syncs": """run_id TEXT, sync_id TEXT, model TEXT, sync_name TEXT, topic TEXT,
        added BIGINT, changed BIGINT, removed BIGINT, published BIGINT, delivered BIGINT,
        failed BIGINT, rejected BIGINT, status TEXT, error TEXT""",
    "failed_rows": """run_id TEXT, sync_id TEXT, model TEXT, row_key TEXT, event TEXT,
        error TEXT""",
    # Exactly-once commits waiting for their Kafka transaction's outcome (state/prepared.py).
    "prepared": """sync_id TEXT PRIMARY KEY, run_id TEXT, marker TEXT, plan TEXT,
        changes_table TEXT""",
    MESSAGES: """run_id TEXT, sync_id TEXT, model TEXT, sync_name TEXT, seq BIGINT,
        event TEXT, message_key TEXT, row_key TEXT, topic TEXT, message_partition BIGINT,
        message_offset BIGINT, size BIGINT, outcome TEXT, reason TEXT, message_value TEXT,
        sent_at TIMESTAMPTZ""",
    TIMINGS: """run_id TEXT, sync_id TEXT, model TEXT, sync_name TEXT, position INTEGER,
        stage TEXT, seconds DOUBLE PRECISION""",
    RATES: "run_id TEXT, sync_id TEXT, second INTEGER, messages BIGINT",
}

# The local file's own column options (DuckDB syntax). The log's values compressed with zstd
# take about half the space of DuckDB's own choice for JSON text, and half its CPU time to
# write (about 1 s less per million messages). A file created before keeps its table as it
# is: both read the same.
LOCAL_COLUMNS = {
    MESSAGES: _COLUMNS[MESSAGES].replace(
        "message_value TEXT", "message_value TEXT USING COMPRESSION zstd"
    )
}


@dataclass(frozen=True)
class Bookkeeping:
    """The bookkeeping tables of one state store, and the connection that reaches them.

    Attributes:
        runner: the connection (the run's DuckDB session, or the warehouse's).
        prefix: the tables' qualified container, e.g. `"__dks_state"."main"`.
    """

    runner: SqlRunner
    prefix: str

    def table(self, name: str) -> str:
        """Name a table of the store."""
        return f"{self.prefix}.{quote_identifier(name)}"

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement."""
        self.runner.execute(sql, params)

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each row of parameters, in one batch."""
        self.runner.execute_many(sql, rows)

    def records(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run one query; its rows as column name -> value."""
        return self.runner.records(sql, params)

    def create_tables(self, extra: dict[str, str] | None = None) -> None:
        """Create the tables that are missing; `extra` adds tables or redefines some."""
        for name, columns in {**_COLUMNS, **(extra or {})}.items():
            self.execute(f"CREATE TABLE IF NOT EXISTS {self.table(name)} ({columns})")

    def schema_version(self) -> int | None:
        """The version the store was written with; None for a store not initialised yet."""
        found = self.records(f"SELECT value FROM {self.table('meta')} WHERE key = 'schema_version'")
        return int(found[0]["value"]) if found else None

    def set_schema_version(self) -> None:
        """Record that the store is written in this version's layout."""
        self.execute(
            f"INSERT INTO {self.table('meta')} VALUES ('schema_version', $1)",
            [str(SCHEMA_VERSION)],
        )

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run a block in one transaction: committed at the end, rolled back on any error."""
        with transaction(self.runner):
            yield
