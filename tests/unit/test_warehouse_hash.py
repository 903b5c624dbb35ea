"""The warehouse row hash: an unambiguous canonical text, hashed the documented way (DuckDB)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pytest

from dbt_kafka_sync.sources.base import SourceColumn
from dbt_kafka_sync.sources.duckdb_warehouse import DuckDBWarehouse
from dbt_kafka_sync.state.warehouse.diff import row_hash

COLUMNS = [SourceColumn("a", "VARCHAR", "VARCHAR"), SourceColumn("b", "VARCHAR", "VARCHAR")]


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[DuckDBWarehouse]:
    session = duckdb.connect()
    duckdb.connect(str(tmp_path / "wh.duckdb")).close()
    yield DuckDBWarehouse(
        session, "wh", tmp_path / "wh.duckdb", lambda *_: "unused", read_only=False
    )
    session.close()


def hashes(warehouse: DuckDBWarehouse, columns: list[SourceColumn], rows: str) -> list[Any]:
    query = f"SELECT {row_hash(warehouse, columns, 'r')} AS h FROM ({rows}) r"
    return [row["h"] for row in warehouse.records(query)]


def md5_64(text: str) -> int:
    """The first 64 bits of the md5 of a text, unsigned (DuckDB's hash column type)."""
    return int.from_bytes(hashlib.md5(text.encode()).digest()[:8], "big")


def test_rows_whose_values_run_together_differ(warehouse: DuckDBWarehouse) -> None:
    rows = """
        SELECT * FROM (VALUES ('a', NULL), (NULL, 'a'), ('a~', ''), ('', 'a~'), ('ab', 'c'),
                              ('a', 'bc'), ('', NULL), (NULL, ''), (NULL, NULL), ('', ''),
                              ('1:a', NULL), ('~', '~')) t(a, b)
    """
    found = hashes(warehouse, COLUMNS, rows)
    assert len(set(found)) == len(found)


def test_the_hash_is_md5_of_the_documented_text(warehouse: DuckDBWarehouse) -> None:
    """md5-64/1: each value as length ':' text, NULL as '~'; a change here needs a new version."""
    found = hashes(warehouse, COLUMNS, "SELECT 'héllo' AS a, NULL::VARCHAR AS b")
    assert found == [md5_64("5:héllo~")]
    assert warehouse.hash_version.startswith("md5-64/1 duckdb-")


@pytest.mark.parametrize(
    ("kind", "left", "right"),
    [
        pytest.param("INTEGER[]", "NULL::INTEGER[]", "[]::INTEGER[]", id="null-list-vs-empty"),
        pytest.param(
            "STRUCT(x INTEGER)", "NULL::STRUCT(x INTEGER)", "{'x': NULL}", id="null-struct"
        ),
        pytest.param("VARCHAR[]", "['a, b']", "['a', 'b']", id="list-of-text"),
        pytest.param("DOUBLE", "0.1::DOUBLE", "0.1000000000000001::DOUBLE", id="close-floats"),
    ],
)
def test_values_a_text_could_confuse_differ(
    warehouse: DuckDBWarehouse, kind: str, left: str, right: str
) -> None:
    column = [SourceColumn("v", kind, kind)]
    found = hashes(warehouse, column, f"SELECT {left} AS v UNION ALL SELECT {right}")
    assert found[0] != found[1]
