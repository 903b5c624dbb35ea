"""Liquid templates: JSON-safe output, the json filter, and checks before publishing."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from dbt_kafka_sync.errors import ConfigError
from dbt_kafka_sync.messages import batch as message_batch
from dbt_kafka_sync.messages.templating import (
    MessageTemplate,
    _python_rows,
    is_strict_json,
    load_strict_json,
    load_template,
    make_environment,
    to_json,
)

ENVIRONMENT = make_environment()


def template(source: str) -> MessageTemplate:
    return load_template(ENVIRONMENT, "customers", source, None, Path("."))


def render(source: str, row: dict[str, Any], **context: Any) -> tuple[str | None, str | None]:
    return template(source).render({"row": row, "event": "added", **context})


TRICKY = 'say "hi" \\ back\nslash\ttab 😀'


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        pytest.param(
            Decimal("12345678901234567890.123456789"),
            "12345678901234567890.123456789",
            id="big-decimal",
        ),
        pytest.param(Decimal("5.00"), "5.00", id="decimal-scale"),
        pytest.param(Decimal("NaN"), "null", id="decimal-nan"),
        pytest.param(float("inf"), "null", id="infinity"),
        pytest.param(1.5, "1.5", id="float"),
        pytest.param(True, "true", id="bool"),
        pytest.param(None, "null", id="null"),
        pytest.param(TRICKY, json.dumps(TRICKY, ensure_ascii=False), id="string"),
        pytest.param(dt.date(2024, 2, 29), '"2024-02-29"', id="date"),
        pytest.param(
            dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2))),
            '"2024-01-02T01:04:05Z"',
            id="instant-in-utc",
        ),
        pytest.param(
            dt.datetime(2024, 1, 2, 3, 4, 5, 123456),
            '"2024-01-02T03:04:05.123456"',
            id="naive-timestamp",
        ),
        pytest.param(b"ab\x00", '"YWIA"', id="bytes-base64"),
        pytest.param([1, None, {"a": float("nan")}], '[1,null,{"a":null}]', id="nested"),
    ],
)
def test_json_literal_of_row_values(value: Any, expected: str) -> None:
    assert to_json(value) == expected
    assert render("{{ row.v | json }}", {"v": value}) == (expected, None)


def test_bare_strings_are_escaped_so_quotes_cannot_break_the_message() -> None:
    value, error = render(
        '{"name": "{{ row.name }}", "upper": "{{ row.name | upcase }}"}', {"name": TRICKY}
    )
    assert error is None and value is not None
    assert json.loads(value) == {"name": TRICKY, "upper": TRICKY.upper()}


def test_raw_json_embeds_a_json_string_as_is() -> None:
    assert render('{"p": {{ row.payload | raw_json }}}', {"payload": '{"x": [1]}'}) == (
        '{"p": {"x": [1]}}',
        None,
    )


def test_invalid_output_is_a_row_error_with_a_hint() -> None:
    value, error = render('{"n": {{ row.n }}}', {"n": None})  # nil writes nothing
    assert value is None
    assert error is not None and "not valid JSON" in error and "| json" in error


def test_undefined_values_are_row_errors_not_silently_empty() -> None:
    value, error = render('{"p": {{ previous.email | json }}}', {"email": "x"}, previous=None)
    assert value is None
    assert error is not None and error.startswith("template error:")


def test_context_has_event_model_run_and_previous() -> None:
    source = (
        '{"e": {{ event | json }}, "m": {{ model | json }}, "r": {{ run.id | json }},'
        ' "was": {{ previous.name | json }}, "is": {{ row.name | json }}}'
    )
    value, error = template(source).render(
        {
            "row": {"name": "new"},
            "previous": {"name": "old"},
            "event": "changed",
            "model": "customers",
            "run": {"id": "r1", "started_at": "t"},
        }
    )
    assert error is None
    assert json.loads(value or "") == {
        "e": "changed",
        "m": "customers",
        "r": "r1",
        "was": "old",
        "is": "new",
    }


def test_columns_read_by_a_template() -> None:
    assert template(
        "{{ row.a | json }}{% if previous %}{{ previous.b }}{% endif %}"
    ).row_columns() == {"a", "b"}
    assert template("{{ row | json }}").row_columns() is None  # the whole row


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        pytest.param(
            '{\n  "x": {{ row.missing | json }}}',
            [
                "column 'missing'",
                "row.missing reads a column the model does not have",
                "line 2, column 10",
            ],
            id="unknown-column",
        ),
        pytest.param('{"x": {{ rows.id }}}', ["unknown variable 'rows'"], id="unknown-variable"),
    ],
)
def test_template_checked_against_the_model_before_publishing(
    source: str, expected: list[str]
) -> None:
    with pytest.raises(ConfigError) as raised:
        template(source).check("customers", ["id", "name"])
    message = raised.value.render()
    assert message.startswith("model 'customers'")
    for fragment in expected:
        assert fragment in message


def test_template_file_missing_or_broken(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"template_file t\.liquid not found"):
        load_template(ENVIRONMENT, "m", None, "t.liquid", tmp_path)
    (tmp_path / "t.liquid").write_text("{% if %}")
    with pytest.raises(ConfigError, match="the template does not parse"):
        load_template(ENVIRONMENT, "m", None, "t.liquid", tmp_path)


INJECTION = 'x", "admin": true, "y": "'


@pytest.mark.parametrize(
    "source",
    [
        pytest.param('{"t": "{{ row.tags }}"}', id="bare-list"),
        pytest.param('{"t": "{{ row.name | split: \',\' }}"}', id="filter-returning-list"),
        pytest.param('{% capture f %}{{ row.name }}{% endcapture %}{"t": "{{ f }}"}', id="capture"),
    ],
)
def test_no_value_can_inject_json(source: str) -> None:
    value, error = render(source, {"name": INJECTION, "tags": [INJECTION, "b"]})
    assert error is None and value is not None
    assert list(json.loads(value)) == ["t"]  # one field: nothing injected
    assert INJECTION.replace(",", "") in json.loads(value)["t"].replace(",", "")  # escaped once


@pytest.mark.parametrize("tag", ["echo row.name", "cycle 'a', 'b'", "include 'x'"])
def test_tags_that_bypass_escaping_are_refused(tag: str) -> None:
    with pytest.raises(ConfigError, match="the template does not parse"):
        template("{% " + tag + " %}")


def test_math_filters_keep_decimals_exact() -> None:
    row = {"price": Decimal("19.99"), "qty": 3}
    value, error = render(
        '{"total": {{ row.price | times: row.qty | json }},'
        ' "plus": {{ row.price | plus: 0.01 | json }}, "r": {{ row.price | round | json }}}',
        row,
    )
    assert error is None
    assert value == '{"total": 59.97, "plus": 20.00, "r": 20}'


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("{{ row.price | divided_by: 0 | json }}", "divided_by: DivisionByZero"),
        ("{{ row.zero | divided_by: 0 | json }}", "divided_by: InvalidOperation"),
        ("{{ row.price | modulo: 0 | json }}", "modulo: InvalidOperation"),
        ("{{ row.price | round: 400 | json }}", "round: InvalidOperation"),
        ("{{ row.huge | round | json }}", "round: OverflowError"),
        ("{{ row.nan | round | json }}", "round: ValueError"),
        ("{{ row.no | times: 0.5 | json }}", "times: InvalidOperation"),
    ],
)
def test_failing_math_fails_the_row_not_the_sync(source: str, error: str) -> None:
    row = {
        "price": Decimal("19.99"),
        "zero": Decimal("0.00"),
        "huge": float("inf"),
        "nan": float("nan"),
        "no": False,
    }
    value, reason = render(source, row)
    assert value is None and reason is not None and error in reason


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (10**12, "date: year 33658 is out of range"),
        ("99999999999999", "date: year"),
        ("99999999999999999999999", "date: "),
    ],
)
def test_a_date_python_cannot_hold_fails_the_row_not_the_sync(value: Any, error: str) -> None:
    # Seconds since 1970 beyond year 9999: datetime raised ValueError or OverflowError.
    result, reason = render('{"at": "{{ row.x | date: "%Y" }}"}', {"x": value})
    assert result is None and reason is not None and error in reason


@pytest.mark.parametrize("text", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(text: str) -> None:
    value, error = render('{"x": {{ row.s | raw_json }}}', {"s": text})
    assert value is None and error is not None and "not valid JSON" in error


def test_now_and_today_are_the_run_start_for_every_message() -> None:
    started = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)
    environment = make_environment(started)
    source = (
        "{{ 'now' | date: '%Y-%m-%dT%H:%M:%S' }} {{ 'Today' | date: '%d' }} {{ x | date: '%Y' }}"
    )
    bound = environment.from_string(source)

    rendered = {bound.render(x=dt.datetime(1999, 1, 1)) for _ in range(3)}

    assert rendered == {"2024-05-06T07:08:09 06 1999"}


@pytest.mark.parametrize(
    "text",
    [
        '{"a": 1}',
        " \n\t[1, 2.5e3, null, true]\r\n ",
        '"\\ud800"',
        "12345678901234567890123",
        "{}x",
        "",
        "   ",
        "\ufeff{}",
        "{} {}",
        '{"a": NaN}',
        "-Infinity",
        '{"a": 1,}',
        "[1]\u00a0",
        '"tab\there"',
        "nul",
        "{'a': 1}",
    ],
)
def test_the_quick_json_check_agrees_with_the_strict_parser(text: str) -> None:
    try:
        load_strict_json(text)
        accepted = True
    except ValueError:
        accepted = False
    assert is_strict_json(text) == accepted


def test_assigns_captures_and_counters_do_not_carry_over_between_rows() -> None:
    counting = template('{"n": [{% increment n %}, {% increment n %}], "m": {% decrement m %}}')
    assigning = template(
        '{% if row.first %}{% assign a = "yes" %}{% capture c %}x{% endcapture %}{% endif %}'
        '{"a": "{{ a }}"{% if row.first %}, "c": "{{ c }}"{% else %}, "c": "{{ c }}"{% endif %}}'
    )
    row = {"row": {"first": True}, "event": "added"}
    later = {"row": {"first": False}, "event": "added"}

    assert [counting.render(row) for _ in range(2)] == [('{"n": [0, 1], "m": -1}', None)] * 2
    assert assigning.render(row) == ('{"a": "yes", "c": "x"}', None)
    assert assigning.render(later) == (None, "template error: 'a' is undefined")


def test_rows_are_the_dicts_the_struct_converts_to() -> None:
    """Field by field conversion gives exactly what the struct's to_pylist gives."""
    with duckdb.connect() as con:
        table = con.sql(
            f"""SELECT CASE WHEN i % 4 = 3 THEN NULL ELSE struct_pack(
                    i := i, s := CASE WHEN i % 2 = 0 THEN 'x' || i END,
                    d := (i / 7)::DECIMAL(12, 3),
                    ts := TIMESTAMP '2024-01-01' + INTERVAL (i) SECOND,
                    l := CASE WHEN i % 3 = 0 THEN NULL ELSE [i, NULL] END,
                    m := MAP {{'k': i}}, inner_s := {{'a': i, 'b': [{{'c': 'z'}}]}},
                    n := union_value(numeric := (i * 1.25)::VARCHAR)
                ) END AS {message_batch.TEMPLATE_ROW}
            FROM range(10) t(i)"""
        ).to_arrow_table()
    [whole] = table.to_batches()
    for batch in (whole, whole.slice(3, 5)):
        rows = _python_rows(batch, message_batch.TEMPLATE_ROW)
        column = batch.column(message_batch.TEMPLATE_ROW)
        expected = column.to_pylist(maps_as_pydicts="strict")
        for row in expected:
            if row is not None:
                row["n"] = Decimal(row["n"])
        assert rows == expected
        assert [type(row["n"]) for row in rows if row] == [
            Decimal
        ] * column.is_valid().sum().as_py()
