"""Templates built by DuckDB write, byte for byte, the messages Liquid renders.

For generated templates, column types and rows: when the compiler accepts a template,
each change's compiled message is exactly the one Liquid renders, and a row Liquid
cannot render (a template error, invalid JSON) gets no compiled message either.
A refused template passes; `hypothesis.event` shows how many were compiled
(`pytest --hypothesis-show-statistics`).
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from decimal import Decimal

import pytest
from hypothesis import currently_in_test_context, event, given, settings
from template_comparison import assert_same_messages, environment, parse, render_both
from template_generation import Case, Change, cases

from dbt_kafka_sync.sources.base import EXACT_NUMERIC

ENVIRONMENT = environment()

# Same examples on every run, in seconds; HYPOTHESIS_PROFILE=thorough (`make difftest`)
# searches much longer, with new examples each time.
settings.register_profile("ci", derandomize=True, max_examples=100, deadline=None, database=None)
settings.register_profile("thorough", max_examples=5000, deadline=None)
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def record(what: str) -> None:
    """Count an outcome in hypothesis' statistics (the table-driven tests run outside it)."""
    if currently_in_test_context():
        event(what)


def check(case: Case) -> bool:
    """Render the case both ways and compare; tell whether the compiler accepted it."""
    template = parse(ENVIRONMENT, case)
    if template is None:
        record("template does not parse")
        return False
    outcome = render_both(case, template)
    errors = sum(message.error is not None for message in outcome.liquid.values())
    record(f"liquid: {'some rows fail' if errors else 'every row renders'}")
    if outcome.sql is None:
        reason = outcome.compiled.reason
        record(f"{case.shape}: refused" + (f" ({reason})" if reason else ""))
        return False
    record(f"{case.shape}: compiled")
    assert_same_messages(case, outcome)
    return True


@PROFILE
@given(cases())
def test_compiled_templates_write_what_liquid_renders(case: Case) -> None:
    check(case)


@PROFILE
@given(cases(shapes=("skeleton",)))
def test_compiled_skeletons_write_what_liquid_renders(case: Case) -> None:
    check(case)


TRICKY_TEXT = 'ß İ \u0131 e\u0301 😀 "q" \\ \n\t\x00\x01\x0b\x1f\x7f \u2028 /'
ROW = {
    "id": 1,
    "big": 2**63 - 1,
    "n": -(2**31),
    "money": Decimal("-9999999999999999999999999999.9999999999"),
    "flag": True,
    "name": TRICKY_TEXT,
    "day": dt.date(1, 1, 1),
    "at": dt.datetime(9999, 12, 31, 23, 59, 59, 999999),
    "instant": dt.datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=dt.timezone.utc),
    "uid": uuid.UUID(int=10),
    "zero": Decimal("0"),
    "score": 1e16,
    "exact": "-0.50",
}
TYPES = {
    "id": "BIGINT",
    "big": "BIGINT",
    "n": "INTEGER",
    "money": "DECIMAL(38,10)",
    "flag": "BOOLEAN",
    "name": "VARCHAR",
    "day": "DATE",
    "at": "TIMESTAMP",
    "instant": "TIMESTAMP WITH TIME ZONE",
    "uid": "UUID",
    "zero": "DECIMAL(4,0)",
    "score": "DOUBLE",
    "exact": EXACT_NUMERIC,
}
NULLS = {name: (1 if name == "id" else None) for name in TYPES}


@pytest.mark.parametrize(
    "source",
    [
        pytest.param('{"id": {{ row.id | json }}}', id="one-value"),
        pytest.param(
            "{" + ", ".join(f'"{n}": {{{{ row.{n} | json }}}}' for n in TYPES) + "}",
            id="every-type",
        ),
        pytest.param(
            '{\n  "customer": {"name": {{ row.name | json }}, "tags": [1, "two", null]},\n'
            '  "at": [{{ row.at | json }}, {{ row.instant | json }}], "ключ 😀": {}\n}',
            id="nested-and-constants",
        ),
        pytest.param(
            '{"a":{{ row.money | json }},"b":{{ row.money | json }},"c":{{ row.zero | json }}}',
            id="repeated-column",
        ),
    ],
)
def test_representative_templates_compile_and_match(source: str) -> None:
    changes = [
        Change("added", ROW, None),
        Change("changed", NULLS, ROW),
        Change("removed", {**ROW, "name": ""}, None),
    ]
    case = Case(source, TYPES, changes, "customers", {"id": "r1", "started_at": "t"}, "fixed")
    assert check(case), "the compiler refused a template it builds today"
