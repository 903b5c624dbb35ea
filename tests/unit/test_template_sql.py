"""Simple templates built by DuckDB write the same documents as Liquid renders."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from dbt_kafka_sync.messages.template_sql import template_sql
from dbt_kafka_sync.messages.templating import MessageTemplate, load_template, make_environment

TRICKY = """
SELECT * FROM (VALUES
  (true, 127::TINYINT, (-32768)::SMALLINT, 2147483647, (-9223372036854775808)::BIGINT,
   170141183460469231731687303715884105727::HUGEINT, 255::UTINYINT, 65535::USMALLINT,
   4294967295::UINTEGER, 18446744073709551615::UBIGINT, 1e16::DOUBLE, 5.00::DECIMAL(12,2),
   'quote " backslash \\ newline ' || chr(10) || ' tab' || chr(9) || ' é😀 ' || chr(1),
   '00000000-0000-0000-0000-000000000001'::UUID, DATE '2024-02-29',
   TIMESTAMP '2024-01-01 00:00:01.23', TIMESTAMP_S '2024-01-01 00:00:01',
   TIMESTAMP_MS '2024-01-01 00:00:01.5', TIMESTAMPTZ '2024-06-01 12:00:00.000001+02:00'),
  (false, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'NaN'::DOUBLE,
   (-0.50)::DECIMAL(12,2), '', NULL, NULL, TIMESTAMP '1999-12-31 23:59:59', NULL, NULL, NULL),
  (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, (-1e-5)::DOUBLE,
   NULL::DECIMAL(12,2), NULL, NULL, NULL, NULL, NULL, NULL, NULL)
) AS t(b, i1, i2, i4, i8, i16, u1, u2, u4, u8, d, money, s, id, day, ts, ts_s, ts_ms, tstz)
"""


def parse(source: str) -> MessageTemplate:
    return load_template(make_environment(), "m", source, None, Path("."))


@pytest.fixture
def connection() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect()
    connection.execute("SET TimeZone = 'UTC'")
    connection.execute(f"CREATE TABLE tricky AS {TRICKY}")
    return connection


def types_of(connection: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return {name: kind for name, kind, *_ in connection.execute("DESCRIBE tricky").fetchall()}


def test_duckdb_writes_what_liquid_renders(connection: duckdb.DuckDBPyConnection) -> None:
    types = types_of(connection)
    skeleton = ",\n  ".join(f'"{name}": {{{{ row.{name} | json }}}}' for name in types)
    template = parse("{\n  " + skeleton + ',\n  "constant": [1, "two"]\n}')
    built = template_sql(template, types)
    assert built is not None

    sql_documents = [row[0] for row in connection.execute(f"SELECT {built} FROM tricky").fetchall()]
    rows = connection.sql("SELECT * FROM tricky").to_arrow_table().to_pylist()
    liquid_documents = [template.render({"row": row})[0] for row in rows]

    assert sql_documents == liquid_documents  # byte for byte
    assert '"money": 5.00,' in sql_documents[0]  # the scale is kept, as by the json filter


@pytest.mark.parametrize(
    "source",
    [
        '{"name": "{{ row.s | json }}"}',  # a value inside a string
        '{"name": {{ row.s | upcase | json }}}',  # another filter
        '{"name": "{{ row.s }}"}',  # escaped bare output
        '{"event": {{ event | json }}}',  # not a column
        '{"x": {% if row.b %}1{% else %}2{% endif %}}',  # a tag
        '{"a": 1, {{ row.s | json }}: 1}',  # a value where a key goes
        '{"v": {{ row.s | json }}',  # not JSON at all
        '{"score": NaN, "v": {{ row.s | json }}}',  # not strict JSON
    ],
)
def test_other_templates_stay_with_liquid(
    connection: duckdb.DuckDBPyConnection, source: str
) -> None:
    assert template_sql(parse(source), types_of(connection)) is None


@pytest.mark.parametrize(
    "column_type",
    [
        "INTEGER[]",
        "STRUCT(a INTEGER)",
        "TIME",
        "FLOAT",
        "JSON",
        "TIMESTAMP_NS",
        "DECIMAL(3,3)",  # DuckDB's text for 0.5 is '.500', not JSON
    ],
)
def test_columns_whose_json_differs_stay_with_liquid(column_type: str) -> None:
    template = parse('{"v": {{ row.v | json }}}')

    assert template_sql(template, {"v": column_type}) is None
    assert template_sql(template, {"v": "BIGINT"}) is not None


def test_control_characters_are_escaped_as_python_escapes_them() -> None:
    # DuckDB writes \u001F, Python \u001f; a backslash and 'u001F' as text stay as they are.
    template = parse('{"s": {{ row.s | json }}}')
    built = template_sql(template, {"s": "VARCHAR"})
    assert built is not None
    connection = duckdb.connect()
    texts = ["\x0b\x0e\x0f\x1a\x1f", "\\u001F", "\\\x1f", "\\\\u001A\x1b", "plain"]
    for text in texts:
        [(document,)] = connection.execute(
            f"SELECT {built} FROM (SELECT ? AS s)", [text]
        ).fetchall()
        assert document == template.render({"row": {"s": text}})[0]
