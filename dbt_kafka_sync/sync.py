"""One sync of one model: read the relation, build messages, publish, report."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from dbt_kafka_sync.messages import message_columns
from dbt_kafka_sync.sql import arrow_batches

if TYPE_CHECKING:
    import duckdb

    from dbt_kafka_sync.config import SyncConfig
    from dbt_kafka_sync.manifest import SyncedModel
    from dbt_kafka_sync.producer import Publisher
    from dbt_kafka_sync.warehouse.duckdb import DuckDBWarehouse

BATCH_ROWS = 50_000  # rows per Arrow record batch: memory stays flat as tables grow
MAX_REPORTED_FAILURES = 10


@dataclass
class SyncResult:
    """The outcome of one sync, as printed in the run summary."""

    model: str
    sync: str
    topic: str
    delivered: int = 0
    failed: int = 0
    failures: list[tuple[str | None, str]] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        """True when every message was delivered."""
        return self.error is None and self.failed == 0


def describe_columns(connection: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    """Return column name -> DuckDB type for a relation."""
    rows = connection.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    return {str(row[0]): str(row[1]) for row in rows}


def sync_model(
    connection: duckdb.DuckDBPyConnection,
    warehouse: DuckDBWarehouse,
    publisher: Publisher,
    model: SyncedModel,
    sync: SyncConfig,
) -> SyncResult:
    """Publish one message per row of the model to the sync's topic."""
    relation = warehouse.relation(connection, model)
    columns = message_columns(model.name, sync, describe_columns(connection, relation))
    publisher.partition_counts([sync.topic])
    query = (
        f"SELECT row_number() OVER () AS seq, {columns.key} AS key, {columns.value} AS value,"
        f" {columns.row_key} AS row_key, {columns.row_error} AS row_error FROM {relation}"
    )
    reader = arrow_batches(connection, query, BATCH_ROWS)
    deliveries = publisher.publish(sync.topic, reader)
    failures = [
        (deliveries.failed_keys[seq], reason)
        for seq, reason in list(deliveries.failed.items())[:MAX_REPORTED_FAILURES]
    ]
    return SyncResult(
        model=model.name,
        sync=sync.name,
        topic=sync.topic,
        delivered=len(deliveries.delivered),
        failed=len(deliveries.failed),
        failures=failures,
    )
