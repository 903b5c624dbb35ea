"""Choosing a source by the dbt output's type, and PostgreSQL settings as libpq reads them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from psycopg.conninfo import conninfo_to_dict

from dbt_kafka_sync.errors import WarehouseError
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
