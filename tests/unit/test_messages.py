"""Message building runs real DuckDB SQL: these tests check the JSON it produces."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import duckdb
import pytest

from dbt_kafka_sync.config.sync import parse_syncs
from dbt_kafka_sync.errors import ConfigError
from dbt_kafka_sync.messages.columns import message_columns
from dbt_kafka_sync.sources.duckdb import describe_columns

TRICKY_ROWS = """
SELECT * FROM (VALUES
  (1, 'say "hi"', 'back\\slash' || chr(10) || 'line', 'Zoë 🚀',
   12345678901234567890.123456789::DECIMAL(38,9), DATE '2024-02-29',
   TIMESTAMP '2024-01-02 03:04:05.123456', TIMESTAMPTZ '2024-01-02 03:04:05+02',
   'nan'::DOUBLE, 'ab'::BLOB, [1, 2], {'a': 1}, '{"x": [1, null]}'),
  (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 1.5::DOUBLE, NULL, NULL, NULL, 'not json')
) AS t(id, quoted, slashed, emoji, big, day, ts, tstz, f, bin, list, struct, payload)
"""


@pytest.fixture
def connection() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    con.execute(f"CREATE TABLE tricky AS {TRICKY_ROWS}")
    yield con
    con.close()


def build(con: duckdb.DuckDBPyConnection, block: dict[str, Any]) -> list[tuple[Any, ...]]:
    [sync] = parse_syncs("tricky", {"primary_key": "id", "topic": "t", **block})
    columns = message_columns("tricky", sync, describe_columns(con, "tricky"))
    return con.execute(
        f"SELECT {columns.key}, {columns.value}, {columns.row_key}, {columns.row_error}"
        " FROM tricky ORDER BY id"
    ).fetchall()


def test_all_columns_are_faithful_json(connection: duckdb.DuckDBPyConnection) -> None:
    [(key, first, row_key, error), (_, second, _, _)] = build(connection, {"key_column": "id"})
    assert (key, row_key, error) == ("1", "1", None)
    assert json.loads(first) == {
        "id": 1,
        "quoted": 'say "hi"',
        "slashed": "back\\slash\nline",
        "emoji": "Zoë 🚀",
        "big": pytest.approx(12345678901234567890.123456789),
        "day": "2024-02-29",
        "ts": "2024-01-02T03:04:05.123456",
        "tstz": "2024-01-02T01:04:05Z",
        "f": None,
        "bin": "YWI=",
        "list": [1, 2],
        "struct": {"a": 1},
        "payload": '{"x": [1, null]}',
    }
    # No precision lost: the decimal's digits are written as they are.
    assert '"big":12345678901234567890.123456789' in first
    [(exact,)] = connection.execute(
        "SELECT json_object('v', 99999999999999.9999::DECIMAL(18,4))::VARCHAR"
    ).fetchall()
    assert exact == '{"v":99999999999999.9999}'  # 18 digits: more than a double holds
    assert json.loads(second)["quoted"] is None
    assert json.loads(second)["f"] == 1.5


def test_mapped_columns_rename_fields(connection: duckdb.DuckDBPyConnection) -> None:
    rows = build(connection, {"message": {"columns": {"name": "emoji", "when": "day"}}})
    assert json.loads(rows[0][1]) == {"name": "Zoë 🚀", "when": "2024-02-29"}
    assert rows[0][0] is None  # no key_column: no key


def test_json_column_is_sent_as_is_and_invalid_json_is_a_row_error(
    connection: duckdb.DuckDBPyConnection,
) -> None:
    [first, second] = build(connection, {"message": {"column": "payload"}})
    assert first[1] == '{"x": [1, null]}' and first[3] is None
    assert second[3] == "column 'payload' is not valid JSON"


def test_composite_row_key(connection: duckdb.DuckDBPyConnection) -> None:
    rows = build(connection, {"primary_key": ["id", "emoji"]})
    assert json.loads(rows[0][2]) == ["1", "Zoë 🚀"]


@pytest.mark.parametrize(
    ("block", "column"),
    [
        pytest.param({"primary_key": "nope"}, "nope", id="primary-key"),
        pytest.param({"key_column": "nokey"}, "nokey", id="key-column"),
        pytest.param({"message": {"columns": ["id", "ghost"]}}, "ghost", id="columns"),
        pytest.param({"message": {"column": "ghost"}}, "ghost", id="json-column"),
    ],
)
def test_unknown_column_is_a_config_error(
    connection: duckdb.DuckDBPyConnection, block: dict[str, Any], column: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        build(connection, block)
    assert f"column '{column}'" in raised.value.render()
    assert "the model's columns are 'id', 'quoted'" in raised.value.render()


def test_nested_values_are_valid_json_at_any_depth() -> None:
    con = duckdb.connect()
    con.execute(
        """
        CREATE TABLE nested AS SELECT
            1 AS id,
            [1.5, 'nan'::DOUBLE, 'inf'::DOUBLE] AS floats,
            {'at': TIMESTAMP '2024-01-02 03:04:05', 'score': 'nan'::DOUBLE, 'n': 1} AS info,
            [{'tz': TIMESTAMPTZ '2024-01-02 03:04:05+02', 'b': 'ab'::BLOB}] AS events,
            MAP {'k': TIMESTAMP '2024-01-01 00:00:00'} AS stamps,
            NULL::STRUCT("at" TIMESTAMP) AS missing
        """
    )
    [sync] = parse_syncs("nested", {"primary_key": "id", "topic": "t"})
    columns = message_columns("nested", sync, describe_columns(con, "nested"))
    [(value,)] = con.execute(f"SELECT {columns.value} FROM nested").fetchall()
    assert json.loads(value) == {
        "id": 1,
        "floats": [1.5, None, None],
        "info": {"at": "2024-01-02T03:04:05", "score": None, "n": 1},
        "events": [{"tz": "2024-01-02T01:04:05Z", "b": "YWI="}],
        "stamps": {"k": "2024-01-01T00:00:00"},
        "missing": None,
    }
    json.loads(value, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))


def test_columns_named_like_lambda_parameters_do_not_shadow_them() -> None:
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE t AS SELECT 1 AS id, {'key': 'zz', 'value': 5} AS e, 7 AS x,"
        " MAP {'k': 'inf'::DOUBLE} AS m, ['nan'::DOUBLE] AS l"
    )
    [sync] = parse_syncs("t", {"primary_key": "id", "topic": "t"})
    columns = message_columns("t", sync, describe_columns(con, "t"))
    [(value,)] = con.execute(f"SELECT {columns.value} FROM t").fetchall()
    assert json.loads(value) == {
        "id": 1,
        "e": {"key": "zz", "value": 5},
        "x": 7,
        "m": {"k": None},
        "l": [None],
    }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("3", 3),
        ("3.0", 3),
        ("3.7", None),
        ("seven", None),
        (None, None),
        ("99999999999", 99999999999),
    ],
)
def test_partition_column_must_hold_a_whole_number(raw: str | None, expected: int | None) -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t (id INTEGER, part VARCHAR)")
    con.execute("INSERT INTO t VALUES (1, ?)", [raw])
    [sync] = parse_syncs("t", {"primary_key": "id", "topic": "t", "partition_column": "part"})
    columns = message_columns("t", sync, describe_columns(con, "t"))
    assert con.execute(f"SELECT {columns.partition} FROM t").fetchall() == [(expected,)]


@pytest.mark.parametrize(
    ("payload", "error"),
    [
        ('{"a": NaN}', "not strict JSON"),
        ("[1,]", "not strict JSON"),
        ("{oops", "not valid JSON"),
        ('{"a": "NaN"}', None),
    ],
)
def test_json_column_must_be_strict_json(payload: str, error: str | None) -> None:
    con = duckdb.connect()
    con.execute("CREATE TABLE t AS SELECT 1 AS id, ? AS payload", [payload])
    [sync] = parse_syncs("t", {"primary_key": "id", "topic": "t", "message": {"column": "payload"}})
    columns = message_columns("t", sync, describe_columns(con, "t"))
    [(found,)] = con.execute(f"SELECT {columns.row_error} FROM t").fetchall()
    assert (found is None) if error is None else (error in found)
