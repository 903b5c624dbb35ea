"""Hypothesis strategies for message templates, the column types they read and rows of values.

A generated case is a template (Liquid source text), the DuckDB types of the columns it
may read and a few changes (added, changed with its previous values, removed) with
values chosen to find differences between two writers of JSON: NULLs, non-ASCII text,
quotes, backslashes, control characters, extreme decimals, dates and instants.

Templates are built as text with a random shape, from JSON skeletons with `row.x | json`
values (what DuckDB builds today) to tags, loops, variables and filter chains (what
only Liquid renders today), some of them rendering invalid JSON on purpose.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from dbt_kafka_sync.sources.base import EXACT_NUMERIC

PRIMARY_KEY = "id"
EVENTS = ("added", "changed", "removed")

# Text that two JSON writers may escape, case-map or trim differently.
SPECIAL_CHARACTERS = (
    '"', "\\", "/", "\n", "\r", "\t", "\b", "\f", "\x00", "\x01", "\x0b", "\x1f", "\x7f",
    "\u2028", "\u2029", "\ufeff", "ß", "İ", "\u0131", "i̇", "e\u0301", "é", "😀", "👩‍💻", "中",
    " ", "\u00a0", "'", "{", "}", "[", "]", ",", ":", "{{", "%}", "-",
)  # fmt: skip
SPECIAL_STRINGS = (
    "", " ", "  padded  ", "null", "true", "0", "-1.50", "1e5", "NaN", "ß", "straße", "İstanbul",
    "\u0131i", "e\u0301", "😀", "a\u2028b", 'say "hi"', "back\\slash", "line\nbreak", "\\u001F",
    "a,b,,c", "2024-02-29", "now", "nil", "blank", "99999999999999",
)  # fmt: skip

text_values = st.one_of(
    st.sampled_from(SPECIAL_STRINGS),
    st.lists(
        st.sampled_from(SPECIAL_CHARACTERS)
        | st.characters(max_codepoint=0x1F)
        | st.characters(codec="utf-8"),
        max_size=12,
    ).map("".join),
)
# Doubles whose shortest text differs between writers: exponents, negative zero, limits.
SPECIAL_DOUBLES = (
    0.0, -0.0, 0.1, 1.5, 1e15, 1e16, 1e22, 1e-4, 1e-5, 1e-7, 5e-324, 1.7976931348623157e308,
    123456789012345678.0, float("nan"), float("inf"), float("-inf"),
)  # fmt: skip

UTC = dt.timezone.utc
_json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | text_values
)
json_documents = st.one_of(
    _json_scalars,
    st.lists(_json_scalars, max_size=3),
    st.dictionaries(text_values, _json_scalars, max_size=3),
).map(lambda value: json.dumps(value, ensure_ascii=False))


def _decimals(precision: int, scale: int) -> st.SearchStrategy[Decimal]:
    """Every digit count up to the type's, both signs, at exactly the type's scale."""
    biggest = 10**precision - 1
    digits = st.one_of(
        st.sampled_from([0, 1, -1, biggest, -biggest]), st.integers(-biggest, biggest)
    )
    return digits.map(lambda number: Decimal(f"{number}E-{scale}"))


def _exact_numeric_text() -> st.SearchStrategy[str]:
    """Exact numbers as the PostgreSQL source hands them over: plain decimal text."""
    return st.one_of(
        st.sampled_from(["0", "-0.50", "1.000", "123456789012345678901234567890.0123456789"]),
        st.decimals(allow_nan=False, allow_infinity=False, places=4).map(lambda d: f"{d:f}"),
    )


@dataclass(frozen=True)
class ColumnType:
    """A DuckDB column type the tool supports, how to write its values, and what they are.

    Attributes:
        sql: the type as DuckDB names it.
        values: a strategy for its non-NULL values (Python objects DuckDB binds).
        kind: a family of values, to choose filters and comparisons that make sense.
    """

    sql: str
    values: st.SearchStrategy[Any]
    kind: str  # integer, number, text, bool, date, time, list (of text), integers, other


def _whole_milliseconds(moment: dt.datetime) -> dt.datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def _fixed_types() -> list[ColumnType]:
    datetimes = st.one_of(
        st.sampled_from([dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999)]),
        st.datetimes(),
    )
    bigints = st.integers(-(2**63), 2**63 - 1)
    return [
        ColumnType("BIGINT", bigints, "integer"),
        ColumnType("INTEGER", st.integers(-(2**31), 2**31 - 1), "integer"),
        ColumnType("HUGEINT", st.integers(-(2**127) + 1, 2**127 - 1), "number"),
        ColumnType("DOUBLE", st.sampled_from(SPECIAL_DOUBLES) | st.floats(), "number"),
        ColumnType("BOOLEAN", st.booleans(), "bool"),
        ColumnType("VARCHAR", text_values, "text"),
        ColumnType("UUID", st.uuids(), "other"),
        ColumnType("DATE", st.dates(), "date"),
        ColumnType("TIMESTAMP", datetimes, "date"),
        # Whole milliseconds: DuckDB would round 9999-12-31 23:59:59.999999 into year 10000.
        ColumnType("TIMESTAMP_MS", datetimes.map(_whole_milliseconds), "date"),
        ColumnType("TIMESTAMP_S", datetimes.map(lambda d: d.replace(microsecond=0)), "date"),
        ColumnType(
            "TIMESTAMP WITH TIME ZONE", datetimes.map(lambda d: d.replace(tzinfo=UTC)), "time"
        ),
        ColumnType("VARCHAR[]", st.lists(st.none() | text_values, max_size=4), "list"),
        ColumnType("BIGINT[]", st.lists(st.none() | bigints, max_size=4), "integers"),
        ColumnType(EXACT_NUMERIC, _exact_numeric_text(), "number"),
        # Types the compiler refuses today: their JSON is not the json filter's.
        ColumnType("FLOAT", st.floats(width=32), "number"),
        ColumnType("JSON", json_documents, "other"),
        ColumnType("TIME", st.times(), "time"),
        ColumnType("BLOB", st.binary(max_size=8), "other"),
        ColumnType(  # nanoseconds since 1970 in 64 bits: years 1678 to 2261
            "TIMESTAMP_NS",
            st.datetimes(dt.datetime(1678, 1, 1), dt.datetime(2261, 12, 31)),
            "time",
        ),
    ]


FIXED_TYPES = _fixed_types()
[VARCHAR] = [column for column in FIXED_TYPES if column.sql == "VARCHAR"]


@st.composite
def column_types(draw: Callable[..., Any]) -> ColumnType:
    """One of the supported types; DECIMAL with any precision and scale up to 38.

    Text, the commonest type and the one with the most ways to differ, comes up as often
    as all the others but decimals.
    """
    choice = draw(st.integers(0, 9))
    if choice < 4:
        return VARCHAR
    if choice < 6:
        precision = draw(st.sampled_from([1, 4, 18, 19, 38]) | st.integers(1, 38))
        scale = draw(st.sampled_from([0, precision]) | st.integers(0, precision))
        return ColumnType(f"DECIMAL({precision},{scale})", _decimals(precision, scale), "number")
    fixed: ColumnType = draw(st.sampled_from(FIXED_TYPES))
    return fixed


@dataclass(frozen=True)
class Change:
    """One row of the changes: its event, its values and (for 'changed') the previous ones."""

    event: str
    row: dict[str, Any]
    previous: dict[str, Any] | None


@dataclass(frozen=True)
class Case:
    """A template with the model's columns, a few changes and the context every row sees."""

    template: str
    types: dict[str, str]
    changes: list[Change]
    model: str
    run: dict[str, str]
    shape: str  # "skeleton" (row.x | json in a JSON skeleton), "rich", "rich, any construct"


def _row(draw: Callable[..., Any], columns: dict[str, ColumnType], key: int) -> dict[str, Any]:
    row: dict[str, Any] = {PRIMARY_KEY: key}
    for name, column in columns.items():
        row[name] = None if draw(st.integers(0, 4)) == 0 else draw(column.values)
    return row


@st.composite
def cases(draw: Callable[..., Any], shapes: tuple[str, ...] = ("skeleton", "rich")) -> Case:
    """A template, the types of the columns it reads, and up to four changes."""
    columns = {f"c{index}": draw(column_types()) for index in range(draw(st.integers(1, 4)))}
    shape = draw(st.sampled_from(shapes))
    # A rich template mostly uses what the compiler builds, for the right types; one in
    # four uses any construct on any type, most of them refused.
    if shape == "rich" and draw(st.integers(0, 3)) == 0:
        shape = "rich, any construct"
    builder = TemplateBuilder(
        draw, columns, rich=shape != "skeleton", wild=shape == "rich, any construct"
    )
    template = builder.document()
    changes = []
    for key in range(1, draw(st.integers(1, 4)) + 1):
        event = draw(st.sampled_from(EVENTS))
        previous = _row(draw, columns, key) if event == "changed" else None
        changes.append(Change(event, _row(draw, columns, key), previous))
    types = {PRIMARY_KEY: "BIGINT", **{name: column.sql for name, column in columns.items()}}
    model = draw(st.sampled_from(["customers", "m"]) | text_values)
    run = {
        "id": draw(st.uuids()).hex,
        "started_at": draw(st.sampled_from(["2024-05-01T12:00:00Z"]) | text_values),
    }
    return Case(template, types, changes, model, run, shape)


# Filters: name -> arguments (Liquid literals) drawn for it, from any literal.
FILTER_ARGUMENTS: dict[str, Callable[[Callable[..., Any]], list[str]]] = {
    "default": lambda draw: [draw(st.sampled_from(['"none"', "0", '""', "false"]))],
    "upcase": lambda draw: [],
    "downcase": lambda draw: [],
    "capitalize": lambda draw: [],
    "strip": lambda draw: [],
    "replace": lambda draw: [_string_literal(draw), _string_literal(draw)],
    "append": lambda draw: [_string_literal(draw)],
    "prepend": lambda draw: [_string_literal(draw)],
    "split": lambda draw: [draw(st.sampled_from(['","', '" "', '""', '"-"']))],
    "join": lambda draw: [draw(st.sampled_from(['","', '" "', '""', '"-"']))],
    "size": lambda draw: [],
    "first": lambda draw: [],
    "last": lambda draw: [],
    "plus": lambda draw: [_number_literal(draw)],
    "minus": lambda draw: [_number_literal(draw)],
    "times": lambda draw: [_number_literal(draw)],
    "divided_by": lambda draw: [_number_literal(draw)],
    "round": lambda draw: draw(st.sampled_from([[], ["0"], ["2"], ["-1"]])),
    "date": lambda draw: [draw(st.sampled_from(['"%Y-%m-%d"', '"%Y-%m-%dT%H:%M:%S"', '"%s"']))],
}
TEXT_FILTERS = ("upcase", "downcase", "capitalize", "strip", "replace", "append", "prepend")
NUMBER_FILTERS = ("plus", "minus", "times", "divided_by", "round")
# The filters the compiler builds for a kind of value, and the kind they give.
KIND_FILTERS = {
    "text": (*TEXT_FILTERS, "size", "split", "default", "first"),
    "integer": (*NUMBER_FILTERS, "default", "append", "prepend", "size"),
    "date": ("date",),
    "list": ("join", "size", "first", "last"),
    "integers": ("join", "size", "first", "last"),
    "bool": ("default", "append"),
}
FILTER_KINDS = {
    **dict.fromkeys(TEXT_FILTERS, "text"),
    **dict.fromkeys(NUMBER_FILTERS, "integer"),
    "size": "integer",
    "split": "list",
    "join": "text",
    "date": "text",
}
ITEM_KINDS = {"list": "text", "integers": "integer"}
LIST_KINDS = tuple(ITEM_KINDS)
# Kinds whose bare text the compiler writes inside a JSON string.
BARE_KINDS = ("text", "integer", "number", "bool", "date", "list")
LITERALS = ("literal", "model", "run.id", "run.started_at")  # the same for every row


def _string_literal(draw: Callable[..., Any]) -> str:
    text = draw(st.sampled_from(["", "a", " ", "ß", "İ", "😀", "-", "x y", "'", "\\"]))
    quote = '"' if "'" in text else draw(st.sampled_from(['"', "'"]))
    return f"{quote}{text}{quote}"


def _number_literal(draw: Callable[..., Any]) -> str:
    return str(draw(st.sampled_from([0, 1, -1, 2, 3, 7, 100, 0.5, -2.5, 1.005, 10**20])))


def _integer_literal(draw: Callable[..., Any]) -> str:
    return str(draw(st.sampled_from([0, 1, -1, 2, 3, 4, 7, 100, -12345678901])))


def _literal(draw: Callable[..., Any], kind: str, wild: bool) -> str:
    """A literal to compare or match a value of a kind with."""
    if kind == "bool":
        return str(draw(st.sampled_from(["true", "false"])))
    if kind in ("integer", "integers", "number"):
        return (_number_literal if wild else _integer_literal)(draw)
    return _string_literal(draw)


@dataclass
class TemplateBuilder:
    """Draws a template as text: a JSON document whose values are Liquid constructs.

    Attributes:
        wild: any construct on any value; otherwise mostly what the compiler builds
            (filters for the value's type, literals of its type...).
    """

    draw: Callable[..., Any]
    columns: dict[str, ColumnType]
    rich: bool
    wild: bool = False
    locals: dict[str, str] = field(default_factory=dict)  # assigned/loop names -> kind
    captures: set[str] = field(default_factory=set)  # captured names, written bare
    depth: int = 0
    blocks: int = 0  # enclosing tags (if, for...)

    def document(self) -> str:
        """A JSON object, as message templates are; sometimes led by assign or capture."""
        prefix = self._definitions() if self.rich else ""
        return prefix + self._object()

    def _rarely(self, one_in: int) -> bool:
        """True in wild templates, else once in `one_in` draws."""
        return self.wild or self.draw(st.integers(1, one_in)) == 1

    # --- JSON structure -------------------------------------------------------------

    def _space(self) -> str:
        return str(self.draw(st.sampled_from(["", "", " ", "\n  ", "\t"])))

    def _value(self) -> str:
        options = ["json", "json", "constant"]
        if self.depth < 3:
            options += ["object", "array"]
        if self.rich:
            options += ["json", "string", "string", "bare"]
            if self.wild:
                options += ["raw_json"]
            if self.depth < 3:
                options += ["if", "unless", "case", "for"]
                if self.blocks == 0 or self.wild:  # assign in a block is refused
                    options += ["assign", "capture"]
        choice = self.draw(st.sampled_from(options))
        self.depth += 1
        try:
            return str(getattr(self, f"_value_{choice}")())
        finally:
            self.depth -= 1

    def _object(self) -> str:
        count = self.draw(st.integers(0 if self.depth else 1, 3))
        fields = [
            f"{self._space()}{self._key()}{self._space()}:{self._space()}{self._value()}"
            for _ in range(count)
        ]
        return "{" + ",".join(fields) + self._space() + "}"

    def _key(self) -> str:
        if self.rich and self.draw(st.integers(0, 9)) == 0:
            return f'"{self._bare_output()}"'
        name = self.draw(st.sampled_from(["id", "name", "a b", "ключ", "😀", 'q"uote', "", "x"]))
        return json.dumps(name, ensure_ascii=self.draw(st.booleans()))

    def _value_object(self) -> str:
        return self._object()

    def _value_array(self) -> str:
        items = [self._value() for _ in range(self.draw(st.integers(0, 3)))]
        return "[" + ",".join(f"{self._space()}{item}" for item in items) + "]"

    def _value_constant(self) -> str:
        constant = self.draw(
            st.sampled_from([None, True, False, 0, -1.5, 1e100, "", "é\n", 'q"', [1, "two"]])
        )
        return json.dumps(constant, ensure_ascii=self.draw(st.booleans()))

    # --- outputs ----------------------------------------------------------------------

    def _value_json(self) -> str:
        if not self.rich:
            return f"{{{{ row.{self._column()} | json }}}}"
        return self._output(self._expression()[0], "json")

    def _value_raw_json(self) -> str:
        return self._output(self._expression()[0], "raw_json")

    def _value_bare(self) -> str:
        """A value written bare where JSON wants a value.

        Integers that are never nil (a size, a sum, forloop.index) are JSON; anything
        else makes the row an error, on purpose (and the compiler refuses it).
        """
        if self._rarely(4):
            return self._bare_output(kinds=("integer",))
        counters = [name for name in self.locals if name.startswith("forloop.")]
        counters = [name for name in counters if self.locals[name] == "integer"]
        options = ["size", "math", *(["forloop"] if counters else [])]
        choice = self.draw(st.sampled_from(options))
        if choice == "forloop":
            return self._output(self.draw(st.sampled_from(counters)))
        if choice == "size":
            primary, _ = self._primary(("text", *LIST_KINDS))
            return self._output(f"{primary} | size")
        primary, _ = self._primary(("integer",))
        name = self.draw(st.sampled_from(NUMBER_FILTERS))
        return self._output(f"{primary} | {self._filter(name, 'integer')}")

    def _value_string(self) -> str:
        parts = []
        for _ in range(self.draw(st.integers(0, 3))):
            if self.draw(st.booleans()):
                parts.append(self._bare_output())
            else:
                text = self.draw(st.sampled_from(["", "-", " ", "é", "😀", "\\n", '\\"', ": "]))
                parts.append(text)
        return '"' + "".join(parts) + '"'

    def _bare_output(self, kinds: tuple[str, ...] | None = None) -> str:
        """A value written bare inside a JSON string (or anywhere, in wild templates)."""
        if self.captures and self.draw(st.integers(0, 3)) == 0:
            # A capture is written as it is: with filters or fields, Liquid renders it.
            name = self.draw(st.sampled_from(sorted(self.captures)))
            return self._output(name + (" | upcase" if self._rarely(10) and self.wild else ""))
        if kinds is None and not self.wild:
            kinds = BARE_KINDS
        expression, kind = self._expression(kinds)
        if kind == "integers" and not self.wild:  # an integer list's text is refused
            expression += f" | {self._filter('join', kind)}"
        return self._output(expression)

    def _output(self, expression: str, last_filter: str | None = None) -> str:
        dash_left, dash_right = self._dashes()
        end = f" | {last_filter}" if last_filter else ""
        return f"{{{{{dash_left} {expression}{end} {dash_right}}}}}"

    def _dashes(self) -> tuple[str, str]:
        dashes = self.draw(st.sampled_from([("", ""), ("", ""), ("-", ""), ("", "-"), ("-", "-")]))
        return dashes[0], dashes[1]

    # --- expressions --------------------------------------------------------------------

    def _column(self, kinds: tuple[str, ...] | None = None) -> str:
        names = [n for n, c in self.columns.items() if kinds is None or c.kind in kinds]
        return str(self.draw(st.sampled_from(names or [PRIMARY_KEY])))

    def _kind_of(self, column: str) -> str:
        return self.columns[column].kind if column in self.columns else "integer"

    def _primary(self, kinds: tuple[str, ...] | None = None) -> tuple[str, str]:
        """A variable or literal, and its kind (of those asked for, where it can)."""
        options = ["row", "row", "row", "previous", "context", "literal"]
        names = [n for n, k in self.locals.items() if kinds is None or k in kinds]
        if names:
            options += ["local", "local"]
        choice = self.draw(st.sampled_from(options))
        wanted = kinds if kinds and "integer" not in kinds and not self.wild else None
        if wanted and not any(c.kind in wanted for c in self.columns.values()):
            choice = "context" if choice in ("row", "previous") else choice  # `event`: text
        if choice in ("row", "previous"):
            column = self._column(kinds)
            path = f"{choice}.{column}"
            kind = self._kind_of(column)
            if kind in ("text", *LIST_KINDS) and self._rarely(6) and self.draw(st.booleans()):
                # Liquid reads a field of a string or list; the compiler refuses it.
                path += "." + self.draw(st.sampled_from(["size", "first", "last"]))
            return path, kind
        if choice == "context" and (kinds is None or "text" in kinds):
            name = self.draw(st.sampled_from(["event", "model", "run.id", "run.started_at"]))
            return name, "text"
        if choice == "local":
            name = self.draw(st.sampled_from(sorted(names)))
            return name, self.locals[name]
        if self.wild:
            literal = self.draw(st.sampled_from([_string_literal, _number_literal]))(self.draw)
            return literal, "number" if literal[0] not in "'\"" else "text"
        literal_kinds = [k for k in ("text", "integer") if not kinds or k in kinds]
        kind = self.draw(st.sampled_from(literal_kinds or ["integer"]))
        return _literal(self.draw, kind, wild=False), kind

    def _filter(self, name: str, kind: str) -> str:
        """A filter with its arguments, for a value of a kind."""
        if self.wild:
            arguments = FILTER_ARGUMENTS[name](self.draw)
        elif name == "default":
            arguments = [_literal(self.draw, kind, wild=False)]
        elif name in NUMBER_FILTERS and name != "round":
            arguments = [_integer_literal(self.draw)]
            if name == "divided_by" and arguments == ["0"]:
                arguments = ["7"]
        elif name in ("split", "date"):
            arguments = [a for a in FILTER_ARGUMENTS[name](self.draw) if a not in ('" "', '"%s"')]
            arguments = arguments or ['"-"' if name == "split" else '"%Y"']
        else:
            arguments = FILTER_ARGUMENTS[name](self.draw)
        return name + (": " + ", ".join(arguments) if arguments else "")

    def _expression(self, kinds: tuple[str, ...] | None = None) -> tuple[str, str]:
        """A variable or literal with a chain of filters (with arguments), and its kind."""
        primary, found = self._primary(kinds)
        filters = []
        for _ in range(self.draw(st.integers(0, 2))):
            allowed = KIND_FILTERS.get(found, ())
            if self.wild and self.draw(st.integers(0, 2)) == 0:
                name = self.draw(st.sampled_from(sorted(FILTER_ARGUMENTS)))
            elif self.wild or allowed:
                name = self.draw(st.sampled_from(allowed or ("default",)))
            else:
                break
            if not self.wild and kinds and FILTER_KINDS.get(name, found) not in kinds:
                break
            filters.append(self._filter(name, found))
            if name in ("first", "last"):
                found = ITEM_KINDS.get(found, "nil")
            else:
                found = FILTER_KINDS.get(name, found)
        return " | ".join([primary, *filters]), found

    def _condition(self) -> str:
        parts = [self._comparison() for _ in range(self.draw(st.integers(1, 2)))]
        joiners = [self.draw(st.sampled_from([" and ", " or "])) for _ in parts[1:]]
        return parts[0] + "".join(j + p for j, p in zip(joiners, parts[1:], strict=True))

    def _comparison(self) -> str:
        forms = ["truthy", "compare", "contains", "blank", "nil"]
        form = self.draw(st.sampled_from(forms))
        if self.wild:
            primary, kind = self._primary()
        else:
            kinds = {
                "truthy": None,
                "nil": None,
                "compare": ("text", "integer", "bool", "date"),
                "contains": ("text", *LIST_KINDS),
                "blank": ("text", *LIST_KINDS),
            }[form]
            primary, kind = self._primary(kinds)
            if form == "blank" and (primary in LITERALS or primary[0] in "'\"-0123456789"):
                form = "nil"  # a constant compared with blank is refused
        if form == "truthy":
            return primary
        if form == "contains":
            needle = _literal(self.draw, ITEM_KINDS.get(kind, "text"), self.wild)
            return f"{primary} contains {needle}"
        if form in ("blank", "nil"):
            operator = self.draw(st.sampled_from(["==", "!="]))
            other = self.draw(st.sampled_from(["blank", "empty"])) if form == "blank" else "nil"
            return f"{primary} {operator} {other}"
        operators = ["==", "!=", "<", ">", "<=", ">="]
        if not self.wild and kind in ("bool", "date"):
            operators = ["==", "!="]  # no order between booleans, nor dates and text
        operator = self.draw(st.sampled_from(operators))
        return f"{primary} {operator} {_literal(self.draw, kind, self.wild)}"

    # --- tags -----------------------------------------------------------------------------

    def _tag(self, body: str) -> str:
        left, right = self._dashes()
        return f"{{%{left} {body} {right}%}}"

    def _block(self) -> str:
        """A value inside a tag's block."""
        self.blocks += 1
        try:
            return self._value()
        finally:
            self.blocks -= 1

    def _value_if(self) -> str:
        text = self._tag(f"if {self._condition()}") + self._block()
        for _ in range(self.draw(st.integers(0, 2))):
            text += self._tag(f"elsif {self._condition()}") + self._block()
        # Without else, the value may be missing: invalid JSON for such rows, on purpose.
        if self.draw(st.integers(0, 5)):
            text += self._tag("else") + self._block()
        return text + self._tag("endif")

    def _value_unless(self) -> str:
        text = self._tag(f"unless {self._condition()}") + self._block()
        return text + self._tag("else") + self._block() + self._tag("endunless")

    def _value_case(self) -> str:
        subject, kind = self._primary(None if self.wild else ("text", "integer"))
        text = self._tag(f"case {subject}")
        for _ in range(self.draw(st.integers(1, 2))):
            count = self.draw(st.integers(1, 2))
            literals = [_literal(self.draw, kind, self.wild) for _ in range(count)]
            if not self.wild:  # the same value twice writes the block twice: refused
                literals = list(dict.fromkeys(literals))
            separator: str = self.draw(st.sampled_from([", ", " or "]))
            text += self._tag(f"when {separator.join(literals)}") + self._block()
        return text + self._tag("else") + self._block() + self._tag("endcase")

    def _value_for(self) -> str:
        source = self.draw(st.sampled_from(["row", "previous"]))
        lists = [n for n, c in self.columns.items() if c.kind in LIST_KINDS]
        texts = [n for n, c in self.columns.items() if c.kind == "text"]
        if lists and not (texts and self.draw(st.integers(0, 3)) == 0):
            column = self.draw(st.sampled_from(lists))
            target, item = f"{source}.{column}", ITEM_KINDS[self.columns[column].kind]
        elif texts or self.wild:  # a string split into a list (or, wild, anything)
            split_on = self.draw(st.sampled_from(['","', '"-"', '""']))
            target = f"{source}.{self._column(('text',))} | split: {split_on}"
            item = "text"
        else:
            target, item = 'event | split: "e"', "text"
        names = ["item", "x", "tag"]
        if not self.wild:  # a loop variable hiding another is refused
            names = [name for name in names if name not in self.locals] or ["item2"]
        variable = self.draw(st.sampled_from(names))
        options = ""
        if self.draw(st.booleans()):
            options += f" limit: {self.draw(st.integers(0, 3))}"
        if self.draw(st.booleans()):
            options += f" offset: {self.draw(st.integers(0, 3))}"
        if self.draw(st.integers(0, 5)) == 0:
            options += " reversed"
        if "|" in target:  # filters are not allowed in a for tag: assign first
            if self.blocks and not self.wild:
                return self._value_json()  # assign in a block is refused
            assigned = f"{{% assign parts = {target} %}}"
            target = "parts"
        else:
            assigned = ""
        outer = dict(self.locals)
        self.locals[variable] = item
        self.locals.update({f"forloop.{n}": "integer" for n in ("index", "index0", "rindex")})
        self.locals.update({f"forloop.{n}": "integer" for n in ("rindex0", "length")})
        self.locals.update({"forloop.first": "bool", "forloop.last": "bool"})
        body = self._block()
        self.locals = outer
        separator: str = self.draw(
            st.sampled_from(
                [
                    "{% unless forloop.last %},{% endunless %}",
                    "{% if forloop.first %}{% else %},{% endif %}",
                    ",",  # a trailing comma: invalid JSON when the list is not empty
                ]
            )
        )
        if separator.startswith("{% if"):
            loop = self._tag(f"for {variable} in {target}{options}") + separator + body
        else:
            loop = self._tag(f"for {variable} in {target}{options}") + body + separator
        empty = self._tag("else") + self._block() if self.draw(st.integers(0, 5)) == 0 else ""
        return assigned + "[" + loop + empty + self._tag("endfor") + "]"

    def _definitions(self) -> str:
        text = ""
        for _ in range(self.draw(st.integers(0, 2))):
            text += self.draw(st.sampled_from([self._assign, self._capture]))()
        return text

    def _assign(self) -> str:
        name = self.draw(st.sampled_from(["v", "total", "label"]))
        expression, kind = self._expression()
        self.locals[name] = kind
        self.captures.discard(name)
        return self._tag(f"assign {name} = {expression}")

    def _capture(self) -> str:
        name = self.draw(st.sampled_from(["captured", "label"]))
        body = self._value_string()[1:-1]  # string content: bare outputs, escaped once
        if self.wild:
            self.locals[name] = "text"  # then read with filters, compared...: refused
        else:
            self.locals.pop(name, None)
            self.captures.add(name)
        return self._tag(f"capture {name}") + body + self._tag("endcapture")

    def _value_assign(self) -> str:
        outer, captures = dict(self.locals), set(self.captures)
        text = self._assign() + self._value()
        self.locals, self.captures = outer, captures
        return text

    def _value_capture(self) -> str:
        outer, captures = dict(self.locals), set(self.captures)
        text = self._capture() + self._value()
        self.locals, self.captures = outer, captures
        return text
