"""Liquid conditions as SQL booleans: truthiness, comparisons, `contains`, and/or/not.

Every condition is a non-NULL SQL boolean. Only nil and false are falsy in Liquid (0 and
'' are true), comparisons between types Liquid does not compare are false (or errors,
which are refused), and `and`/`or` simply follow the tree the parser built (it groups
right to left).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from dbt_kafka_sync.messages.template_compiler.values import (
    BLANK,
    BOOL,
    DATE,
    DECIMAL,
    EMPTY,
    INT,
    LIST,
    NIL,
    STR,
    TIMESTAMP,
    UNKNOWN,
    Refused,
    Value,
    filter_text_sql,
    space_class,
)

Loops = dict[int, tuple[int, int]]
_ORDERED = {STR: "str", INT: "number", DECIMAL: "number"}


@dataclass(frozen=True)
class Condition:
    """A condition: SQL true or false per row, and its answer at a loop turn if known."""

    sql: str
    probe: Callable[[Loops], Any]


def _known(value: bool) -> Condition:
    return Condition("true" if value else "false", lambda loops: value)


def _row_dependent(sql: str) -> Condition:
    return Condition(sql, lambda loops: UNKNOWN)


def truthy(value: Value) -> Condition:
    """Liquid truthiness: everything but nil and false is true."""
    if value.constant:
        return _known(value.python is not None and value.python is not False)
    sql = f"COALESCE({value.sql}, false)" if value.kind == BOOL else f"({value.sql} IS NOT NULL)"
    if value.probe is None:
        return _row_dependent(sql)

    def probe(loops: Loops) -> Any:
        answer = value.at(loops)
        return UNKNOWN if answer is UNKNOWN else answer is not None and answer is not False

    return Condition(sql, probe)


def negate(condition: Condition) -> Condition:
    """`not`, and `unless`."""

    def probe(loops: Loops) -> Any:
        answer = condition.probe(loops)
        return answer if answer is UNKNOWN else not answer

    return Condition(f"(NOT {condition.sql})", probe)


def both(left: Condition, right: Condition) -> Condition:
    """`and`."""
    return _logical("AND", left, right)


def either(left: Condition, right: Condition) -> Condition:
    """`or`."""
    return _logical("OR", left, right)


def _logical(word: str, left: Condition, right: Condition) -> Condition:
    decisive = word == "OR"  # the answer of one side that decides: true for `or`

    def probe(loops: Loops) -> Any:
        answers = (left.probe(loops), right.probe(loops))
        if decisive in answers:
            return decisive
        return UNKNOWN if UNKNOWN in answers else not decisive

    return Condition(f"({left.sql} {word} {right.sql})", probe)


def _with_probe(
    sql: str, left: Value, right: Value, compare: Callable[[Any, Any], bool]
) -> Condition:
    """A comparison whose answer is known where both sides are (forloop.index == 2).

    The JSON check runs loops of at most 3 items: an answer at those turns is known only
    when it is the same at every turn of longer loops (not for `forloop.index == 4`).
    """
    if not _alike_in_longer_loops(left, right, compare):
        return _row_dependent(sql)

    def probe(loops: Loops) -> Any:
        a, b = left.at(loops), right.at(loops)
        if a is UNKNOWN or b is UNKNOWN or a is None or b is None:
            return UNKNOWN
        return compare(a, b)

    return Condition(sql, probe)


def _alike_in_longer_loops(left: Value, right: Value, compare: Callable[[Any, Any], bool]) -> bool:
    """True when a comparison with a `forloop` value answers alike from its `alike_from` on."""
    if left.alike_from is None and right.alike_from is None:
        return True
    if left.alike_from is not None and right.alike_from is not None:
        # Two turn counters: only one against the length (index == length: the last turn).
        return "forloop.length" in (left.label, right.label)
    counter, other = (left, right) if left.alike_from is not None else (right, left)
    if not other.constant or type(other.python) is not int:
        return False
    start = counter.alike_from or 0
    near = {start, start + 1, other.python - 1, other.python, other.python + 1}
    answers = {
        compare(value, other.python) if counter is left else compare(other.python, value)
        for value in near
        if value >= start
    }
    return len(answers) == 1


def equal(left: Value, right: Value) -> Condition:
    """`==`, as python-liquid's _eq compares Python values."""
    if left.kind in (EMPTY, BLANK):
        left, right = right, left
    if right.kind in (EMPTY, BLANK):
        return _is_empty(left, right.kind == BLANK)
    if left.kind == NIL or right.kind == NIL:
        other = right if left.kind == NIL else left
        return (
            _known(other.python is None)
            if other.constant
            else _row_dependent(f"({other.sql} IS NULL)")
        )
    if left.kind == right.kind and left.kind in (STR, BOOL, INT, DATE, TIMESTAMP):
        sql = f"COALESCE({left.sql} IS NOT DISTINCT FROM {right.sql}, false)"
        return _with_probe(sql, left, right, operator.eq)
    if {left.kind, right.kind} == {INT, DECIMAL} or left.kind == right.kind == DECIMAL:
        _check_decimals(left, right)
        return _row_dependent(f"COALESCE({left.sql} IS NOT DISTINCT FROM {right.sql}, false)")
    if _comparable(left) and _comparable(right) and left.kind != right.kind:
        # Values of different Python types are never equal; nil equals nil.
        return _row_dependent(f"({left.sql} IS NULL AND {right.sql} IS NULL)")
    raise Refused(f"comparing {left.describe()} with {right.describe()}")


def _comparable(value: Value) -> bool:
    return value.kind in (STR, BOOL, INT, DECIMAL, DATE, TIMESTAMP)


def _check_decimals(left: Value, right: Value) -> None:
    """Refuse a comparison with a decimal that DuckDB may not do exactly, or may fail.

    DuckDB casts both sides to one DECIMAL(38, scale): two columns of the same type, or
    a column and an integer literal that fits that type, compare exactly.
    """
    columns = [value for value in (left, right) if not value.constant]
    literal = next((value for value in (left, right) if value.constant), None)
    if len(columns) == 2:
        if (left.column_type or "").upper() == (right.column_type or "-").upper():
            return
    elif literal is not None and columns and literal.kind == INT and columns[0].column_type:
        scale = _scale(columns[0].column_type)
        if scale is not None and abs(literal.python) < 10 ** (38 - scale):
            return
    raise Refused(f"comparing {left.describe()} with {right.describe()}")


def _scale(column_type: str) -> int | None:
    """The scale of a DECIMAL(width, scale) or HUGEINT column."""
    if column_type.upper() == "HUGEINT":
        return 0
    found = re.fullmatch(r"DECIMAL\(\d+,\s*(\d+)\)", column_type.strip().upper())
    return int(found.group(1)) if found else None


def _is_empty(value: Value, blank: bool) -> Condition:
    """`x == empty` ('' or an empty list) and `x == blank` (also whitespace only)."""
    if value.constant:
        raise Refused("comparing a constant with empty or blank")
    if value.kind == STR:
        spaces = f" OR regexp_full_match({value.sql}, '{space_class()}+')" if blank else ""
        return _row_dependent(f"COALESCE({value.sql} = ''{spaces}, false)")
    if value.kind == LIST:
        return _row_dependent(f"COALESCE(len({value.sql}) = 0, false)")
    if value.kind in (INT, DECIMAL, BOOL, DATE, TIMESTAMP, NIL):
        return _known(False)
    raise Refused(f"comparing {value.describe()} with {'blank' if blank else 'empty'}")


def ordered(symbol: str, left: Value, right: Value) -> Condition:
    """`<`, `>`, `<=`, `>=` between two strings or two numbers (nil: false)."""
    if symbol in (">", ">="):
        left, right = right, left
        symbol = "<" if symbol == ">" else "<="
    if NIL in (left.kind, right.kind):
        return _known(False)
    kinds = (_ORDERED.get(left.kind), _ORDERED.get(right.kind))
    if None in kinds or kinds[0] != kinds[1]:
        raise Refused(f"`{symbol}` between {left.describe()} and {right.describe()}")
    if DECIMAL in (left.kind, right.kind):
        _check_decimals(left, right)
    sql = f"COALESCE({left.sql} {symbol} {right.sql}, false)"
    return _with_probe(sql, left, right, operator.lt if symbol == "<" else operator.le)


def contains(left: Value, right: Value) -> Condition:
    """`contains`: a substring of a string, or an item of a list (nil on a side: false)."""
    if right.kind == NIL or left.kind == NIL:
        return _known(False)
    if left.kind == STR:
        needle = filter_text_sql(right, "contains")
        found = f"contains({left.sql}, {needle})"
        return _row_dependent(
            f"COALESCE({left.sql} IS NOT NULL AND {_defined(right)} AND {found}, false)"
        )
    if left.kind == LIST and left.item == right.kind and right.kind in (STR, INT):
        return _row_dependent(f"COALESCE(list_contains({left.sql}, {right.sql}), false)")
    raise Refused(f"`contains` between {left.describe()} and {right.describe()}")


def _defined(value: Value) -> str:
    """SQL true where the value is truthy (contains is false for a falsy side)."""
    if value.kind == BOOL:
        return f"COALESCE({value.sql}, false)"
    return f"({value.sql} IS NOT NULL)"
