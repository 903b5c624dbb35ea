"""Warehouses a model is read from, each behind the same Source interface (sources/base.py).

The dbt profile output's `type` chooses the source, as dbt chooses its adapter.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dbt_kafka_sync.errors import WarehouseError, quote_list
from dbt_kafka_sync.sources.base import Source
from dbt_kafka_sync.sources.duckdb import DuckDBSource
from dbt_kafka_sync.sources.postgres import PostgresSource

SOURCES: dict[str, type[DuckDBSource] | type[PostgresSource]] = {
    "duckdb": DuckDBSource,
    "postgres": PostgresSource,
}


def open_source(output: dict[str, Any], project_dir: Path) -> Source:
    """The source for a rendered dbt profile output, chosen by its `type`.

    Raises:
        WarehouseError: for a type no source reads, listing the supported ones.
    """
    kind = output.get("type")
    if kind not in SOURCES:
        raise WarehouseError(
            f"the dbt target is of type '{kind}', which dbt-kafka-sync cannot read;"
            f" supported: {quote_list(list(SOURCES))}",
            hint="the README's 'Supported warehouses' says how another warehouse would plug in",
        )
    return SOURCES[kind](output, project_dir)
