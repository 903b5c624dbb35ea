"""PostgreSQL types through to the exact message bytes, read back from a real broker.

A table of every supported type is created in a real PostgreSQL server, dbt-postgres
builds models over it (a view, a table, a materialized view), dbt-kafka-sync publishes
them and the test compares each message's value, byte for byte, with what it must be.
"""

from __future__ import annotations

import json
from typing import Any

import local_servers.postgres as local_postgres
import pytest
from harness import Kafka, Project

RAW_TYPES = """
CREATE TYPE {schema}.mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN {schema}.positive AS integer CHECK (VALUE > 0);
CREATE DOMAIN {schema}.amount AS numeric(10, 2);
CREATE TABLE {schema}.raw_types (
    id integer, n_scaled numeric(12, 2), n_wide numeric(38, 10), n_free numeric,
    i2 smallint, i4 integer, i8 bigint, r real, d double precision,
    tx text, vc varchar(10), ch char(4), b boolean,
    dt date, ts timestamp, tstz timestamptz, tm time, iv interval,
    u uuid, by bytea, j json, jb jsonb,
    arr integer[], tarr text[], narr numeric(5, 2)[],
    m {schema}.mood, dom {schema}.positive, domn {schema}.amount
);
INSERT INTO {schema}.raw_types VALUES
(1, 12.5, 1234567890123456789012345678.0123456789, 1.50,
 1, 2, 3, 1.5, 0.1,
 E'say "hi" \\\\ back\\nslash \U0001f600 ü', 'v', 'ab', true,
 '2024-02-29', '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05+02', '04:05:06.5',
 '1 year 2 mons 3 days 04:05:06.5',
 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '\\x00ff', '{{"a": 1,  "b": [1, 2]}}',
 '{{"b": 2, "a": 1}}',
 '{{1,2,NULL}}', '{{"a b",NULL}}', '{{1.5,2}}',
 'happy', 5, 7.1),
(2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
(3, -9999999999.99, -0.0000000001, 123456789012345678901234567890.123456789012,
 -32768, 2147483647, -9223372036854775808, 'NaN', 'Infinity',
 '', '', '', false,
 '0001-01-01', '1970-01-01 00:00:00', '1999-12-31 23:59:59.999999-08', '00:00:00',
 '-1 days', '00000000-0000-0000-0000-000000000000', '', '[]', '{{}}',
 '{{}}', '{{}}', '{{}}',
 'sad', 1, -0.01),
(4, 0, 0, 'NaN', 0, 0, 0, '-Infinity', -0.5, 'x', 'x', 'x', NULL,
 NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'null', '"text"', NULL, NULL, '{{NaN,1}}', NULL, NULL,
 0.5)
"""

# The message of each row, exactly as the consumer receives it. Decimals are exact; those
# up to 18 digits lose trailing zeros (12.50 -> 12.5), as DuckDB writes them for its own
# DECIMAL columns.
EXPECTED = {
    "1": (
        '{"id":1,"n_scaled":12.5,"n_wide":1234567890123456789012345678.0123456789,'
        '"i2":1,"i4":2,"i8":3,"r":1.5,"d":0.1,'
        '"tx":"say \\"hi\\" \\\\ back\\nslash \U0001f600 ü","vc":"v","ch":"ab  ","b":true,'
        '"dt":"2024-02-29","ts":"2024-01-02T03:04:05.123456","tstz":"2024-01-02T01:04:05Z",'
        '"tm":"04:05:06.5","iv":"1 year 2 months 3 days 04:05:06.5",'
        '"u":"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11","by":"AP8=","j":{"a":1,"b":[1,2]},'
        '"jb":{"a":1,"b":2},"arr":[1,2,null],"tarr":["a b",null],"narr":[1.5,2.0],'
        '"m":"happy","dom":5,"domn":7.1}'
    ),
    "2": (
        '{"id":2,"n_scaled":null,"n_wide":null,"i2":null,"i4":null,"i8":null,"r":null,'
        '"d":null,"tx":null,"vc":null,"ch":null,"b":null,"dt":null,"ts":null,"tstz":null,'
        '"tm":null,"iv":null,"u":null,"by":null,"j":null,"jb":null,"arr":null,"tarr":null,'
        '"narr":null,"m":null,"dom":null,"domn":null}'
    ),
    "3": (
        '{"id":3,"n_scaled":-9999999999.99,"n_wide":-0.0000000001,'
        '"i2":-32768,"i4":2147483647,"i8":-9223372036854775808,"r":null,"d":null,'
        '"tx":"","vc":"","ch":"    ","b":false,'
        '"dt":"0001-01-01","ts":"1970-01-01T00:00:00","tstz":"2000-01-01T07:59:59.999999Z",'
        '"tm":"00:00:00","iv":"-1 day","u":"00000000-0000-0000-0000-000000000000","by":"",'
        '"j":[],"jb":{},"arr":[],"tarr":[],"narr":[],"m":"sad","dom":1,"domn":-0.01}'
    ),
    "4": (
        '{"id":4,"n_scaled":0.0,"n_wide":0.0000000000,"i2":0,"i4":0,"i8":0,"r":null,'
        '"d":-0.5,"tx":"x","vc":"x","ch":"x   ","b":null,"dt":null,"ts":null,"tstz":null,'
        '"tm":null,"iv":null,"u":null,"by":null,"j":null,"jb":"text","arr":null,"tarr":null,'
        '"narr":[null,1.0],"m":null,"dom":null,"domn":0.5}'
    ),
}
# numeric without a precision: exact digits, NaN as null (the object is built piece by piece).
EXPECTED_FREE = {
    "1": '{"id":1,"n_free":1.50}',
    "2": '{"id":2,"n_free":null}',
    "3": '{"id":3,"n_free":123456789012345678901234567890.123456789012}',
    "4": '{"id":4,"n_free":null}',
}
ALL_BUT_FREE = [c for c in json.loads(EXPECTED["2"]) if c != "n_free"]


def sync_model(name: str, materialized: str, syncs: list[dict[str, Any]]) -> str:
    return (
        f"{{{{ config(materialized='{materialized}', meta={{'kafka_sync': {syncs!r}}}) }}}}\n"
        "select * from {{ target.schema }}.raw_types\n"
    )


def topic_syncs(prefix: str, name: str) -> list[dict[str, Any]]:
    return [
        {
            "name": "typed",
            "primary_key": "id",
            "key_column": "id",
            "topic": f"{prefix}{name}",
            "message": {"columns": ALL_BUT_FREE},
        },
        {
            "name": "free",
            "primary_key": "id",
            "key_column": "id",
            "topic": f"{prefix}{name}_free",
            "message": {"columns": ["id", "n_free"]},
        },
    ]


@pytest.fixture
def pg_project(project: Project, postgres: local_postgres.Server) -> Project:
    schema = project.env["DBT_PG_SCHEMA"]
    with postgres.connect() as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
        for statement in RAW_TYPES.format(schema=schema).split(";"):
            if statement.strip():
                connection.execute(statement)
    return project


@pytest.mark.parametrize("project", ["postgres"], indirect=True)
def test_every_type_reaches_kafka_exactly(pg_project: Project, kafka: Kafka) -> None:
    models = {"pg_view": "view", "pg_table": "table", "pg_matview": "materialized_view"}
    topics = [f"{name}{suffix}" for name in models for suffix in ("", "_free")]
    prefix = pg_project.create_topics(kafka, tuple(topics))
    for name, materialized in models.items():
        pg_project.write_model(name, sync_model(name, materialized, topic_syncs(prefix, name)))
    pg_project.rebuild()

    result = pg_project.sync(*(arg for name in models for arg in ("--select", name)))

    assert result.returncode == 0, result.stdout + result.stderr
    for name in models:
        typed = {r.key: r.value for r in kafka.consume_all(prefix + name)}
        free = {r.key: r.value for r in kafka.consume_all(prefix + name + "_free")}
        assert typed == EXPECTED, name
        assert free == EXPECTED_FREE, name


UNSUPPORTED = {
    "point": ("point '(1,2)'", "the column's type point cannot be sent exactly"),
    "money": ("'12.34'::money", "the column's type money cannot be sent exactly"),
    "timetz": (
        "'04:05:06+02'::timetz",
        "the column's type time with time zone cannot be sent exactly",
    ),
    "2d-array": (
        "ARRAY[[1, 2], [3, 4]]",
        "integer[] column holds a multi-dimensional array, which cannot be sent exactly;"
        ' first such row: {"id":1,"odd_value":[[1,2],[3,4]]}',
    ),
    "infinity": (
        "'infinity'::timestamp",
        "timestamp without time zone column holds 'infinity' or a year after 294246",
    ),
    "far-future": (
        "'294276-12-31 23:59:59'::timestamptz",
        "timestamp with time zone column holds 'infinity' or a year after 294246",
    ),
    "infinite-date": ("'-infinity'::date", "date column holds 'infinity'"),
    "names-alike": (
        '1 AS "ODD_VALUE", 2',
        "columns 'ODD_VALUE' and 'odd_value' differ only in case",
    ),
}


@pytest.mark.parametrize("kind", list(UNSUPPORTED))
@pytest.mark.parametrize("project", ["postgres"], indirect=True)
def test_values_that_cannot_be_sent_exactly_are_refused(
    project: Project, kafka: Kafka, kind: str
) -> None:
    value, error = UNSUPPORTED[kind]
    prefix = project.create_topics(kafka, ("odd",))
    syncs = {"primary_key": "id", "topic": f"{prefix}odd"}
    project.write_model(
        "odd",
        f"{{{{ config(meta={{'kafka_sync': {syncs!r}}}) }}}}\n"
        f"select 1 as id, {value} as odd_value\n",
    )
    project.rebuild()

    result = project.sync("--select", "odd")

    assert result.returncode == 1
    assert f"FAIL odd: model 'odd', column 'odd_value': {error}" in result.stdout
    assert kafka.consume_all(prefix + "odd") == []


@pytest.mark.parametrize("project", ["postgres"], indirect=True)
def test_an_error_of_the_warehouse_fails_that_model_only(
    project: Project, kafka: Kafka, postgres: local_postgres.Server
) -> None:
    prefix = project.create_topics(kafka, ("odd", "customers"))
    syncs = {"primary_key": "id", "topic": f"{prefix}odd"}
    project.write_model(
        "odd",
        f"{{{{ config(materialized='view', meta={{'kafka_sync': {syncs!r}}}) }}}}\n"
        "select 1 as id, current_date as d\n",
    )
    project.rebuild()
    with postgres.connect() as connection:  # the view now fails whenever it is read
        schema = project.env["DBT_PG_SCHEMA"]
        connection.execute(
            f"CREATE OR REPLACE VIEW {schema}.odd AS SELECT 1 AS id, current_date + 1 / 0 AS d"
        )

    result = project.sync("--select", "odd", "--select", "customers")

    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL odd: model 'odd': a query on PostgreSQL" in result.stdout
    assert "division by zero" in result.stdout
    assert "OK   customers" in result.stdout
