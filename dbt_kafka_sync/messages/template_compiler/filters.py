"""Liquid filters as SQL, each reproducing the Python filter of the run's environment.

A filter is compiled only for the input types where DuckDB gives Python's exact result.
Where that holds for most rows but not all (upper() of 'ß'), the rows that might differ
are handed to Liquid: `needs_liquid` takes SQL true for such rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from dbt_kafka_sync.messages.template_compiler.values import (
    BOOL,
    DATE,
    DECIMAL,
    FLOAT,
    INT,
    JSON,
    LIST,
    NIL,
    STR,
    TIMESTAMP,
    Refused,
    Value,
    constant,
    filter_text_sql,
    float_differs,
    json_sql,
    spaces,
)
from dbt_kafka_sync.sql import quote_literal

NeedsLiquid = Callable[[str], None]
# strftime directives DuckDB writes as Python does (English names, zero padding).
DATE_DIRECTIVES = set("YmdHMSyjaAbBpI%")
_NOT_ASCII = "strlen({text}) <> length({text})"  # more bytes than characters
_INT_LIMIT = 2**120  # integer arithmetic runs in HUGEINT: it must not overflow


def apply(
    name: str, value: Value, args: list[Value], kwargs: dict[str, Value], needs_liquid: NeedsLiquid
) -> Value:
    """The value after the filter `name` (with its arguments)."""
    compile_filter = _FILTERS.get(name)
    if compile_filter is None:
        raise Refused(f"the `{name}` filter")
    if kwargs and name != "default":
        raise Refused(f"keyword arguments of `{name}`")
    label = f"{value.label} | {name}"
    result: Value = compile_filter(value, args, kwargs, needs_liquid, label)
    return result


def _arity(name: str, args: list[Value], most: int, least: int = 0) -> None:
    if not least <= len(args) <= most:
        raise Refused(f"`{name}` with {len(args)} arguments")


def _constant_text(name: str, arg: Value) -> str:
    """An argument that must be a string known before any row (the text to replace)."""
    if not arg.constant or not isinstance(arg.python, str):
        raise Refused(f"`{name}` with an argument that is not a string literal")
    return str(arg.python)


def _str(sql: str, label: str) -> Value:
    return Value(sql, STR, label)


def _case(function: str) -> Callable[..., Value]:
    def compile_case(
        value: Value, args: list[Value], kwargs: Any, needs_liquid: NeedsLiquid, label: str
    ) -> Value:
        name = label.rsplit(" | ", 1)[1]
        _arity(name, args, 0)
        text = filter_text_sql(value, name)
        # Python and DuckDB map some letters differently ('ß'.upper() is 'SS', a final
        # sigma lowers to 'ς'): Liquid renders rows with text beyond ASCII.
        needs_liquid(_NOT_ASCII.format(text=text))
        if function == "capitalize":
            return _str(f"concat(upper(left({text}, 1)), lower(substr({text}, 2)))", label)
        return _str(f"{function}({text})", label)

    return compile_case


def _strip(
    value: Value, args: list[Value], kwargs: Any, needs_liquid: NeedsLiquid, label: str
) -> Value:
    _arity("strip", args, 0)
    stripped = " || ".join(f"chr({ord(c)})" for c in spaces())
    return _str(f"trim({filter_text_sql(value, 'strip')}, {stripped})", label)


def _replace(
    value: Value, args: list[Value], kwargs: Any, needs_liquid: NeedsLiquid, label: str
) -> Value:
    _arity("replace", args, 2, 1)
    old = _constant_text("replace", args[0])
    new = _constant_text("replace", args[1]) if len(args) > 1 else ""
    if not old:
        raise Refused("`replace` of an empty string")
    text = filter_text_sql(value, "replace")
    return _str(f"replace({text}, {quote_literal(old)}, {quote_literal(new)})", label)


def _python_str(arg: Value, name: str) -> str:
    """SQL of str(arg) for an argument (a nil argument is 'None')."""
    if arg.constant:
        return quote_literal(str(arg.python))
    if arg.kind == STR:
        return f"COALESCE({arg.sql}, 'None')"
    if arg.kind == INT:
        return f"COALESCE(CAST({arg.sql} AS VARCHAR), 'None')"
    raise Refused(f"`{name}` with {arg.describe()}")


def _concat(after: bool) -> Callable[..., Value]:
    """`append` (after) and `prepend`: the argument's str() joined to the text."""

    def compile_concat(
        value: Value, args: list[Value], kwargs: Any, needs_liquid: NeedsLiquid, label: str
    ) -> Value:
        name = "append" if after else "prepend"
        _arity(name, args, 1, 1)
        text, arg = filter_text_sql(value, name), _python_str(args[0], name)
        return _str(f"concat({text}, {arg})" if after else f"concat({arg}, {text})", label)

    return compile_concat


def _split(
    value: Value, args: list[Value], kwargs: Any, needs_liquid: NeedsLiquid, label: str
) -> Value:
    _arity("split", args, 1, 1)
    separator = _constant_text("split", args[0])
    if separator == " ":
        raise Refused("`split` on a space (Python splits on any run of whitespace)")
    text = filter_text_sql(value, "split")
    sep = quote_literal(separator)
    nothing = f"{text} = '' OR {text} = {sep}"  # Python: no items at all
    sql = f"CASE WHEN {nothing} THEN []::VARCHAR[] ELSE string_split({text}, {sep}) END"
    return Value(sql, LIST, label, item=STR)


def _join(
    value: Value, args: list[Value], kwargs: Any, needs_liquid: NeedsLiquid, label: str
) -> Value:
    _arity("join", args, 1)
    separator = _constant_text("join", args[0]) if args else " "
    if value.kind != LIST or value.item not in (STR, INT):
        raise Refused(f"`join` on {value.describe()}")
    item = "COALESCE(CAST(__dks_join AS VARCHAR), 'None')"
    items = f"list_transform({value.sql}, lambda __dks_join: {item})"
    # A nil list is joined as [None]: 'None'.
    return _str(f"COALESCE(array_to_string({items}, {quote_literal(separator)}), 'None')", label)


def _size(
    value: Value, args: list[Value], kwargs: Any, needs_liquid: NeedsLiquid, label: str
) -> Value:
    _arity("size", args, 0)
    if value.kind == STR:
        return Value(
            f"COALESCE(length({value.sql}), 0)::HUGEINT", INT, label, python=2**64, never_nil=True
        )
    if value.kind == LIST:
        return Value(
            f"COALESCE(len({value.sql}), 0)::HUGEINT", INT, label, python=2**64, never_nil=True
        )
    if value.kind in (INT, DECIMAL, BOOL, DATE, TIMESTAMP, NIL):
        return constant(0, label)  # len() fails on them: size says 0
    raise Refused(f"`size` on {value.describe()}")


def _end(position: int) -> Callable[..., Value]:
    def compile_end(
        value: Value, args: list[Value], kwargs: Any, needs_liquid: NeedsLiquid, label: str
    ) -> Value:
        _arity("first", args, 0)
        if value.kind == LIST and value.item in (STR, INT, BOOL, DATE):
            return Value(f"list_extract({value.sql}, {position})", value.item, label)
        if value.kind in (STR, NIL, INT, DECIMAL, BOOL):
            return constant(None, label)  # not a list: nil
        raise Refused(f"`{label}` on {value.describe()}")

    return compile_end


def _default(
    value: Value, args: list[Value], kwargs: dict[str, Value], needs_liquid: NeedsLiquid, label: str
) -> Value:
    _arity("default", args, 1)
    fallback = args[0] if args else constant("", label)
    allow_false = kwargs.pop("allow_false", None)
    if kwargs or (allow_false is not None and not allow_false.constant):
        raise Refused("`default` with other keyword arguments")
    if fallback.kind != value.kind and not (value.kind == NIL):
        raise Refused(f"`default` of another type than {value.describe()}")
    if value.kind == NIL:
        return fallback
    if value.kind == STR:
        return _str(
            f"CASE WHEN COALESCE({value.sql}, '') = '' THEN {fallback.sql} ELSE {value.sql} END",
            label,
        )
    if value.kind == BOOL:
        falsy = (
            f"{value.sql} IS NULL"
            if allow_false and allow_false.python is True
            else f"NOT COALESCE({value.sql}, false)"
        )
        return Value(f"CASE WHEN {falsy} THEN {fallback.sql} ELSE {value.sql} END", BOOL, label)
    if value.kind in (INT, DECIMAL, DATE, TIMESTAMP):
        # Numbers are never empty, not even 0.
        return Value(f"COALESCE({value.sql}, {fallback.sql})", value.kind, label, column_type=None)
    raise Refused(f"`default` on {value.describe()}")


def _integer(value: Value, name: str) -> tuple[str, int]:
    """An integer input of a math filter (nil is 0) and a bound on its size."""
    if value.kind == INT:
        bound = abs(value.python) if value.constant else (value.python or 2**64)
        return f"COALESCE({value.sql}, 0)::HUGEINT", bound
    if value.kind == NIL:
        return "0::HUGEINT", 0
    if value.kind == DECIMAL:
        raise Refused(f"`{name}` on {value.describe()} (Decimal arithmetic)")
    raise Refused(f"`{name}` on {value.describe()}")


def _math(symbol: str) -> Callable[..., Value]:
    def compile_math(
        value: Value, args: list[Value], kwargs: Any, needs_liquid: NeedsLiquid, label: str
    ) -> Value:
        name = label.rsplit(" | ", 1)[1]
        _arity(name, args, 1, 1)
        arg = args[0]
        if not (arg.constant and isinstance(arg.python, int) and not isinstance(arg.python, bool)):
            raise Refused(f"`{name}` with an argument that is not an integer literal")
        left, bound = _integer(value, name)
        right = int(arg.python)
        if symbol == "//":
            if right == 0:
                raise Refused("`divided_by: 0`")
            # Python's floor division; DuckDB's // truncates towards zero.
            sql = (
                f"CASE WHEN {left} % {right} <> 0 AND ({left} < 0) <> ({right} < 0)"
                f" THEN {left} // {right} - 1 ELSE {left} // {right} END"
            )
        else:
            sql = f"({left} {symbol} {right}::HUGEINT)"
            bound = bound * abs(right) if symbol == "*" else bound + abs(right)
        if bound >= _INT_LIMIT:
            raise Refused(f"`{name}` on integers that may overflow")
        return Value(sql, INT, label, python=bound, never_nil=True)

    return compile_math


def _round(
    value: Value, args: list[Value], kwargs: Any, needs_liquid: NeedsLiquid, label: str
) -> Value:
    _arity("round", args, 1)
    if args and not (args[0].constant and isinstance(args[0].python, int)):
        raise Refused("`round` with an argument that is not an integer literal")
    left, bound = _integer(value, "round")
    if args and args[0].python < 0:
        return constant(0, label)
    return Value(left, INT, label, python=bound, never_nil=True)  # an integer rounds to itself


def _date(
    value: Value, args: list[Value], kwargs: Any, needs_liquid: NeedsLiquid, label: str
) -> Value:
    _arity("date", args, 1, 1)
    layout = _constant_text("date", args[0])
    paired = layout.replace("%%", "")
    unknown = set(re.findall("%(.)", paired)) - DATE_DIRECTIVES
    if unknown or paired.endswith("%"):
        raise Refused(f"`date` with {', '.join(sorted(f'%{d}' for d in unknown)) or 'a lone %'}")
    if value.kind not in (DATE, TIMESTAMP) or value.constant:
        raise Refused(f"`date` on {value.describe()}")
    # Liquid fails on nil; Python writes years before 1000 without zero padding.
    needs_liquid(f"COALESCE(year({value.sql}) < 1000, true)")
    # DuckDB's strftime takes a TIMESTAMP_MS or _S as TIMESTAMP_NS, and fails the whole
    # query for a year after 2262: as TIMESTAMP (microseconds), every year is written.
    moment = value.sql if value.kind == DATE else f"CAST({value.sql} AS TIMESTAMP)"
    return _str(f"strftime({moment}, {quote_literal(layout)})", label)


def _json(
    value: Value, args: list[Value], kwargs: Any, needs_liquid: NeedsLiquid, label: str
) -> Value:
    _arity("json", args, 0)
    if value.kind == FLOAT:
        needs_liquid(float_differs(value, as_json=True))
    return Value(json_sql(value), JSON, label)


_FILTERS: dict[str, Callable[..., Value]] = {
    "upcase": _case("upper"),
    "downcase": _case("lower"),
    "capitalize": _case("capitalize"),
    "strip": _strip,
    "replace": _replace,
    "append": _concat(after=True),
    "prepend": _concat(after=False),
    "split": _split,
    "join": _join,
    "size": _size,
    "first": _end(1),
    "last": _end(-1),
    "default": _default,
    "plus": _math("+"),
    "minus": _math("-"),
    "times": _math("*"),
    "divided_by": _math("//"),
    "round": _round,
    "date": _date,
    "json": _json,
}
