"""The pieces of exactly-once delivery that need no broker: markers and prepared commits."""

from __future__ import annotations

import duckdb
import pytest
from pydantic import ValidationError

from dbt_kafka_sync.changes.input import DiffInput
from dbt_kafka_sync.config.kafka import KafkaTarget
from dbt_kafka_sync.kafka.markers import Marker, partition_of
from dbt_kafka_sync.kafka.transactions import transactional_id
from dbt_kafka_sync.sql import DuckDBRunner
from dbt_kafka_sync.state.prepared import (
    PreparedCommit,
    drop_prepared,
    load_prepared,
    save_prepared,
)
from dbt_kafka_sync.state.store import SyncIdentity, prepared_table
from dbt_kafka_sync.state.tables import Bookkeeping


def test_a_marker_reads_back_as_the_state_recorded_it() -> None:
    marker = Marker("progress", 2, 41, "abc123", "dbt-kafka-sync:dev:model.p.m:default")
    assert Marker.from_json(marker.to_json()) == marker
    assert b'"marker": "abc123"' in marker.value("run-1", "dev:model.p.m:default")


def test_a_sync_always_writes_its_markers_to_the_same_partition() -> None:
    ids = [transactional_id("dbt-kafka-sync", f"dev:model.p.m{i}:default") for i in range(50)]
    first = [partition_of(i, 6) for i in ids]
    assert first == [partition_of(i, 6) for i in ids]
    assert set(first) <= set(range(6)) and len(set(first)) > 1


def test_a_prepared_commit_reads_back_whole_and_is_dropped_with_its_changes() -> None:
    connection = duckdb.connect()
    book = Bookkeeping(DuckDBRunner(connection), "memory.main")
    book.create_tables()
    table = prepared_table("dev:model.p.m:default")
    connection.execute(f"CREATE TABLE {table} AS SELECT 1 AS id")
    prepared = PreparedCommit(
        sync_id="dev:model.p.m:default",
        run_id="run-1",
        marker="{}",
        identity=SyncIdentity(
            "dev:model.p.m:default", "dev", "model.p.m", "default", "t", "f", "h"
        ),
        diff=DiffInput("rel", ["id"], {"id": "BIGINT", "x": "VARCHAR"}, ["x"], numbered=True),
        view_sql="(SELECT 1)",
        view_rewrite=True,
        table=table,
    )
    save_prepared(book, prepared)

    assert load_prepared(book, prepared.sync_id) == prepared
    drop_prepared(book, prepared)
    assert load_prepared(book, prepared.sync_id) is None
    tables = connection.execute("SELECT table_name FROM duckdb_tables()").fetchall()
    assert (table,) not in tables


@pytest.mark.parametrize("delivery", ["exactly-once", "at_most_once", ""])
def test_an_unknown_delivery_is_refused(delivery: str) -> None:
    with pytest.raises(ValidationError, match="delivery"):
        KafkaTarget(bootstrap_servers="b:9092", delivery=delivery)  # type: ignore[arg-type]
