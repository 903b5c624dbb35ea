"""The PostgreSQL source against a real server, below the command line: what it reads when."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import local_servers.postgres as local_postgres
import pytest

from dbt_kafka_sync.dbt.manifest import SyncedModel
from dbt_kafka_sync.errors import WarehouseError
from dbt_kafka_sync.session import duckdb_session
from dbt_kafka_sync.sources.postgres import PostgresSource


@pytest.fixture
def schema(postgres: local_postgres.Server) -> Iterator[str]:
    name = f"src_{uuid.uuid4().hex[:10]}"
    with postgres.connect() as connection:
        connection.execute(f"CREATE SCHEMA {name}")
        connection.execute(f'CREATE TABLE {name}."Mixed Case" ("Key" int, amount numeric(10,2))')
        connection.execute(f'INSERT INTO {name}."Mixed Case" VALUES (1, 1.25)')
    yield name
    with postgres.connect() as connection:
        connection.execute(f"DROP SCHEMA {name} CASCADE")


def source(server: local_postgres.Server, tmp_path: Path, **extra: object) -> PostgresSource:
    output = {
        "type": "postgres",
        "host": server.host,
        "port": str(server.port),
        "user": server.user,
        "password": server.password,
        "dbname": server.dbname,
        **extra,
    }
    return PostgresSource(output, tmp_path)


def model(schema: str, database: str) -> SyncedModel:
    return SyncedModel("model.p.m", "m", database, schema, "Mixed Case", "models/m.sql", ())


@pytest.fixture
def session() -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb_session("256MB") as connection:
        yield connection


def test_quoted_names_in_a_schema_of_their_own_are_read(
    postgres: local_postgres.Server, schema: str, tmp_path: Path, session: duckdb.DuckDBPyConnection
) -> None:
    reader = source(postgres, tmp_path, search_path=f"{schema}, public", connect_timeout="5")
    the_model = model(schema, postgres.dbname)
    columns = reader.columns(session, the_model)
    relation = reader.relation(session, the_model, columns)
    assert [(c.name, c.warehouse_type, c.duckdb_type) for c in columns] == [
        ("Key", "integer", "INTEGER"),
        ("amount", "numeric(10,2)", "DECIMAL(10,2)"),
    ]
    assert session.execute(f'SELECT "Key", amount FROM {relation}').fetchall() == [(1, 1.25)]
    reader.close()


def test_a_model_changed_between_planning_and_reading_is_not_read(
    postgres: local_postgres.Server, schema: str, tmp_path: Path, session: duckdb.DuckDBPyConnection
) -> None:
    reader = source(postgres, tmp_path)
    the_model = model(schema, postgres.dbname)
    columns = reader.columns(session, the_model)  # amount is numeric(10,2) here
    with postgres.connect() as connection:  # then a `dbt run` widens it
        connection.execute(
            f'ALTER TABLE {schema}."Mixed Case" ALTER COLUMN amount TYPE numeric(12,4)'
        )
        connection.execute(f'UPDATE {schema}."Mixed Case" SET amount = 1.2449')

    with pytest.raises(WarehouseError, match="column\\(s\\) 'amount' changed while the model"):
        reader.relation(session, the_model, columns)
    reader.close()


def test_a_wrong_password_fails_at_open_without_showing_it(
    postgres: local_postgres.Server, tmp_path: Path
) -> None:
    wrong = "not-" + postgres.password + "-%20&x"
    reader = source(postgres, tmp_path, password=wrong)

    with pytest.raises(WarehouseError) as raised:
        reader.open()

    message = raised.value.render()
    assert "password authentication failed" in message
    assert wrong not in message and postgres.password not in message
