"""Choosing a source by the dbt output's type, and PostgreSQL settings as libpq reads them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest
from psycopg.conninfo import conninfo_to_dict

from dbt_kafka_sync.dbt.manifest import SyncedModel
from dbt_kafka_sync.errors import WarehouseError
from dbt_kafka_sync.session import duckdb_session
from dbt_kafka_sync.sources import open_source
from dbt_kafka_sync.sources.duckdb import DuckDBSource
from dbt_kafka_sync.sources.postgres import PostgresSettings, PostgresSource

PROJECT = Path("/projects/shop")
OUTPUT = {"type": "postgres", "host": "db", "user": "u", "password": "p", "dbname": "d"}


def libpq(output: dict[str, Any]) -> dict[str, Any]:
    """The connection settings libpq itself reads from the URI we build."""
    return dict(conninfo_to_dict(PostgresSettings.from_output(output).uri(PROJECT)))


def test_the_output_type_chooses_the_source() -> None:
    assert isinstance(open_source({"type": "duckdb", "path": "w.duckdb"}, PROJECT), DuckDBSource)
    assert isinstance(open_source(OUTPUT, PROJECT), PostgresSource)


def test_an_unknown_type_lists_the_supported_ones() -> None:
    with pytest.raises(WarehouseError) as raised:
        open_source({"type": "snowflake"}, PROJECT)
    assert "type 'snowflake'" in str(raised.value)
    assert "supported: 'duckdb', 'postgres'" in str(raised.value)


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, {"host": "db", "port": "5432", "user": "u", "password": "p", "dbname": "d"}),
        ({"port": "6543", "connect_timeout": 3}, {"port": "6543", "connect_timeout": "3"}),
        ({"password": "p@ss:w/rd?&= %"}, {"password": "p@ss:w/rd?&= %"}),
        ({"host": "/var/run/postgresql"}, {"host": "/var/run/postgresql"}),
        ({"host": "::1"}, {"host": "::1"}),
        (
            {"sslmode": "verify-full", "sslrootcert": "certs/ca.pem"},
            {"sslmode": "verify-full", "sslrootcert": "/projects/shop/certs/ca.pem"},
        ),
        ({"sslrootcert": "system"}, {"sslrootcert": "system"}),
        ({"search_path": "marts, public"}, {"options": "-c search_path=marts,\\ public"}),
    ],
    ids=["defaults", "numbers", "password", "socket", "ipv6", "ssl", "system-ca", "search-path"],
)
def test_libpq_reads_the_settings_as_dbt_postgres_gives_them(
    extra: dict[str, Any], expected: dict[str, str]
) -> None:
    settings = libpq({**OUTPUT, **extra})
    assert {key: settings.get(key) for key in expected} == expected


def test_dbt_aliases_and_no_password() -> None:
    output = {"type": "postgres", "host": "db", "user": "u", "pass": "", "database": "d"}
    settings = libpq(output)
    assert settings["dbname"] == "d" and "password" not in settings  # .pgpass, PGPASSWORD


@pytest.mark.parametrize(
    ("output", "message"),
    [
        ({"type": "postgres", "user": "u", "password": "p"}, "lacks 'host', 'dbname'"),
        ({**OUTPUT, "port": "five"}, "`port` is not a whole number"),
    ],
    ids=["missing", "port"],
)
def test_bad_settings_are_named_without_their_values(output: dict[str, Any], message: str) -> None:
    with pytest.raises(WarehouseError) as raised:
        PostgresSettings.from_output(output)
    assert message in str(raised.value)
    assert "'p'" not in str(raised.value)


def duckdb_model(name: str) -> SyncedModel:
    return SyncedModel(f"model.p.{name}", name, None, "main", name, "models/x.sql", ())


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    """A warehouse file with views as dbt-duckdb builds them, and a second file to attach."""
    with duckdb.connect(str(tmp_path / "other.duckdb")) as other:
        other.execute("CREATE TABLE codes AS SELECT 1 AS id, 'a' AS code")
    with duckdb.connect(str(tmp_path / "wh.duckdb")) as wh:
        wh.execute(f"ATTACH '{tmp_path / 'other.duckdb'}' AS other")
        wh.execute("CREATE TABLE stored AS SELECT 7 AS n")
        wh.execute(
            "CREATE VIEW clock AS SELECT n, strftime(TIMESTAMPTZ '2024-01-01 00:00:00+00',"
            " '%H:%M') AS at FROM wh.main.stored"
        )
        wh.execute("CREATE VIEW over_other AS SELECT id, code FROM other.main.codes")
    return tmp_path


def read(project: Path, output: dict[str, Any], model: str) -> list[tuple[Any, ...]]:
    """The rows the sync reads for a model, and its column types."""
    source = DuckDBSource({"type": "duckdb", "path": "wh.duckdb", **output}, project)
    with duckdb_session("1GB") as session:
        relation = source.relation(session, duckdb_model(model), [])
        types = [c.duckdb_type for c in source.columns(session, duckdb_model(model))]
        return [*session.execute(f"SELECT * FROM {relation}").fetchall(), tuple(types)]


@pytest.mark.parametrize(
    ("output", "model", "expected"),
    [
        pytest.param({}, "clock", [(7, "00:00"), ("INTEGER", "VARCHAR")], id="view"),
        pytest.param(
            {"settings": {"TimeZone": "Asia/Tokyo", "threads": 1}},
            "clock",
            [(7, "09:00"), ("INTEGER", "VARCHAR")],
            id="view-with-settings",
        ),
        pytest.param(
            {"attach": [{"path": "other.duckdb", "alias": "other"}]},
            "over_other",
            [(1, "a"), ("INTEGER", "VARCHAR")],
            id="view-over-an-attached-database",
        ),
        pytest.param(
            {
                "settings": {"integer_division": True},
                "attach": [{"path": "x.db", "type": "sqlite"}],
            },
            "stored",
            [(7,), ("INTEGER",)],
            id="table-whatever-the-profile",
        ),
    ],
)
def test_a_view_is_read_as_dbt_duckdb_evaluates_it(
    warehouse: Path, output: dict[str, Any], model: str, expected: list[tuple[Any, ...]]
) -> None:
    assert read(warehouse, output, model) == expected


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        pytest.param(
            {"settings": {"enable_external_access": False}},
            "setting enable_external_access = False cannot be given to it alone",
            id="instance-setting",
        ),
        pytest.param(
            {"attach": [{"path": "x.db", "type": "sqlite", "alias": "x"}]},
            "attaches 'x' (type sqlite), which this tool does not attach",
            id="foreign-attachment",
        ),
        pytest.param(
            {"extensions": ["no_such_extension"]},
            "extension 'no_such_extension' cannot be loaded",
            id="extension",
        ),
    ],
)
def test_a_view_that_cannot_be_evaluated_as_dbt_does_is_refused(
    warehouse: Path, output: dict[str, Any], expected: str
) -> None:
    with pytest.raises(WarehouseError) as raised:
        read(warehouse, output, "clock")
    message = raised.value.render()
    assert message.startswith("model 'clock': the model is a view, and the dbt profile")
    assert expected in message
    assert "hint: materialize the model as a table (materialized: table)" in message
