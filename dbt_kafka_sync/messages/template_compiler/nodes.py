"""Liquid's tags and expressions, node by node, turned into the parts of a document.

Variables: `row.x` and `previous.x` are the changes table's columns, `event` its event
column, `model` and `run` constants of the sync; `assign` and `capture` at the top of the
template bind names (inside a block they would depend on the branch taken: refused);
`for` binds its item and `forloop` to a lambda's parameters.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dbt_kafka_sync.messages.template_compiler.conditions import (
    Condition,
    both,
    contains,
    either,
    equal,
    negate,
    ordered,
    truthy,
)
from dbt_kafka_sync.messages.template_compiler.document import (
    BOOL_PROBES,
    JSON_PROBES,
    LOOP_TURNS,
    NUMBER_PROBES,
    TEXT_PROBES,
    Choice,
    Hole,
    Loop,
    Part,
    Sequence,
    Text,
)
from dbt_kafka_sync.messages.template_compiler.filters import apply as apply_filter
from dbt_kafka_sync.messages.template_compiler.values import (
    BLANK,
    BOOL,
    DATE,
    EMPTY,
    FLOAT,
    INT,
    JSON,
    LIST,
    OTHER,
    STR,
    TIMESTAMP,
    TIMESTAMPTZ,
    Refused,
    Value,
    column_value,
    constant,
    escaped_sql,
    float_differs,
    row_column,
    text_sql,
)
from dbt_kafka_sync.messages.templating import output_text
from dbt_kafka_sync.sql import quote_literal

if TYPE_CHECKING:
    from liquid import BoundTemplate

CONTEXT_NAMES = ("row", "previous", "event", "model", "run", "forloop")


@dataclass(frozen=True)
class Columns:
    """Where a row's values are in the changes table."""

    types: dict[str, str]  # column -> DuckDB type
    event: str  # the event column's SQL
    previous: str  # the previous-values struct column's SQL


@dataclass
class _Loop:
    """An enclosing `for`: its item, and SQL names of the turn and the list."""

    name: str
    item: Value
    turn: str
    items: str
    depth: int


@dataclass
class _Scope:
    """Rows Liquid must render, found within one loop level (or the template)."""

    needs_liquid: list[str] = field(default_factory=list)


class NodeCompiler:
    """Compiles one template's nodes; refuses (raises Refused) what it cannot copy exactly."""

    def __init__(self, template: BoundTemplate, columns: Columns, context: dict[str, Any]) -> None:
        self.template = template
        self.columns = columns
        self.context = context
        self.variables: dict[str, Value | Part] = {}  # assign and capture, top level
        self.loops: list[_Loop] = []
        self.scopes = [_Scope()]
        self.guards: list[str] = []  # conditions of the branches being compiled

    # -- nodes ---------------------------------------------------------------------

    def template_part(self) -> Part:
        """The whole template."""
        return self.nodes(self.template.nodes, top=True)

    def liquid_rows(self) -> str | None:
        """SQL true for the rows Liquid must render, None when there are none."""
        found = self.scopes[0].needs_liquid
        return " OR ".join(dict.fromkeys(found)) if found else None

    def nodes(self, nodes: list[Any], top: bool = False) -> Part:
        """Nodes one after the other (`top`: those of the template, not of a block)."""
        parts = [self.node(node, top) for node in nodes]
        return Sequence([part for part in parts if part != Text("")])

    def block(self, block: Any) -> Part:
        """The block of a tag (if, for...)."""
        part = self.nodes(block.nodes)
        # python-liquid writes nothing for a block of whitespace and tags only.
        if block.blank and self.template.env.suppress_blank_control_flow_blocks:
            return Text("")
        return part

    def node(self, node: Any, top: bool) -> Part:
        """One node: text, output or tag."""
        from liquid.builtin.content import ContentNode
        from liquid.builtin.output import OutputNode
        from liquid.builtin.tags.assign_tag import AssignNode
        from liquid.builtin.tags.capture_tag import CaptureNode
        from liquid.builtin.tags.case_tag import CaseNode
        from liquid.builtin.tags.comment_tag import CommentNode
        from liquid.builtin.tags.for_tag import ForNode
        from liquid.builtin.tags.if_tag import IfNode
        from liquid.builtin.tags.unless_tag import UnlessNode

        if isinstance(node, ContentNode):
            return Text(node.text)
        if isinstance(node, CommentNode):
            return Text("")
        if isinstance(node, OutputNode):
            return self.output(node.expression)
        if isinstance(node, IfNode):
            return self.conditional(self.condition(node.condition), node)
        if isinstance(node, UnlessNode):
            return self.conditional(negate(self.condition(node.condition)), node)
        if isinstance(node, CaseNode):
            return self.case(node)
        if isinstance(node, ForNode):
            return self.loop(node)
        if isinstance(node, (AssignNode, CaptureNode)):
            self.bind(node, top)
            return Text("")
        name = getattr(getattr(node, "token", None), "value", None) or type(node).__name__
        raise Refused(f"the `{name}` tag")

    def output(self, expression: Any) -> Part:
        """`{{ ... }}`: JSON text as it is, anything else escaped for a JSON string."""
        captured = self._captured(expression)
        if captured is not None:
            return captured
        value = self.value(expression)
        if value.constant:
            return Text(output_text(value.python))
        if value.kind == FLOAT:
            self.needs_liquid(float_differs(value, as_json=False))
        if value.kind == JSON:
            return Hole(value.sql, JSON_PROBES)
        if value.never_nil and value.kind in (INT, BOOL):
            # An integer's or a boolean's text is JSON, and harmless inside a string too.
            return Hole(text_sql(value), NUMBER_PROBES if value.kind == INT else BOOL_PROBES)
        return Hole(escaped_sql(text_sql(value)), TEXT_PROBES)

    def _captured(self, expression: Any) -> Part | None:
        from liquid.builtin.expressions.filtered import FilteredExpression
        from liquid.builtin.expressions.path import Path

        left = expression.left if isinstance(expression, FilteredExpression) else expression
        if not isinstance(left, Path) or not isinstance(self.variables.get(str(left.head())), Part):
            return None
        if expression.filters or len(left.path) != 1:
            raise Refused(f"filters or fields of the captured `{left.head()}`")
        part = self.variables[str(left.head())]
        assert isinstance(part, Part)
        return part

    def conditional(self, condition: Condition, node: Any) -> Part:
        """`if`/`unless` with its `elsif` and `else` blocks."""
        conditions = [condition, *(self.condition(a.expression) for a in node.alternatives)]
        blocks = [node.consequence, *(alternative.block for alternative in node.alternatives)]
        branches: list[tuple[Condition, Part]] = []
        for taken, block in zip(conditions, blocks, strict=True):
            branches.append((taken, self.guarded(_first(taken, branches), block)))
        default: Part = Text("")
        if node.default is not None:
            default = self.guarded(_first(_always(), branches), node.default)
        return Choice(branches, default)

    def case(self, node: Any) -> Part:
        """`case`: every matching `when` is written; `else` when none before it matched."""
        from liquid.builtin.tags.case_tag import MultiExpressionBlockNode

        subject = self.value(node.expression)
        parts: list[Part] = []
        matched: list[Condition] = []
        for block in node.blocks:
            if isinstance(block, MultiExpressionBlockNode):
                options = [self.value(option) for option in block.expression.expressions]
                if len(options) > 1 and not _distinct_constants(options):
                    # A value matching twice writes the block twice.
                    raise Refused("`when` with several values that are not distinct literals")
                condition = _any([equal(subject, option) for option in options])
                matched.append(condition)
                parts.append(Choice([(condition, self.guarded(condition, block.block))], Text("")))
            else:
                none = negate(_any(matched)) if matched else _always()
                parts.append(Choice([(none, self.guarded(none, block))], Text("")))
        return Sequence(parts)

    def loop(self, node: Any) -> Part:
        """`for item in list`: a lambda over the list's items."""
        expression = node.expression
        name = str(expression.identifier)
        if (
            name in CONTEXT_NAMES
            or name in self.variables
            or any(loop.name == name for loop in self.loops)
        ):
            raise Refused(f"a loop variable `{name}` hiding another variable")
        if expression.cols is not None:
            raise Refused("`for` with cols")
        items = self.value(expression.iterable)
        if items.kind != LIST:
            raise Refused(f"`for` over {items.describe()}")
        sliced = _sliced(
            items.sql, _literal_int(expression.limit, "limit"), _offset(expression.offset)
        )
        if expression.reversed:
            sliced = f"list_reverse({sliced})"
        depth = len(self.loops) + 1
        item_sql, turn = f"__dks_loop{depth}", f"__dks_turn{depth}"
        item = _item(items, item_sql, name)
        self.loops.append(_Loop(name, item, turn, sliced, depth))
        self.scopes.append(_Scope())
        try:
            self.held(item)
            body = self.block(node.block)
        finally:
            self.loops.pop()
            inner = self.scopes.pop().needs_liquid
        if inner:
            flags = " OR ".join(dict.fromkeys(inner))
            each = f"list_transform({sliced}, lambda {item_sql}, {turn}: {flags})"
            self.needs_liquid(f"COALESCE(list_bool_or({each}), false)")
        empty = self.block(node.default) if node.default is not None else Text("")
        return Loop(sliced, item_sql, turn, depth, body, empty)

    def bind(self, node: Any, top: bool) -> None:
        """`assign` and `capture`, at the top of the template only."""
        from liquid.builtin.tags.assign_tag import AssignNode

        name = str(node.name)
        kind = "assign" if isinstance(node, AssignNode) else "capture"
        if not top:
            raise Refused(f"`{kind}` inside a block")
        if name in CONTEXT_NAMES:
            raise Refused(f"`{kind}` of `{name}`, which hides a variable of the template")
        if isinstance(node, AssignNode):
            self.variables[name] = self.value(node.expression)
        else:
            self.variables[name] = self.block(node.block)

    def needs_liquid(self, sql: str) -> None:
        """Hand the rows where `sql` is true to Liquid (in the branches being compiled)."""
        self.scopes[-1].needs_liquid.append(" AND ".join([*self.guards, f"({sql})"]))

    def guarded(self, condition: Condition, block: Any) -> Part:
        """A branch's block: Liquid reads its values only where the branch is taken."""
        self.guards.append(condition.sql)
        try:
            return self.block(block)
        finally:
            self.guards.pop()

    # -- conditions ------------------------------------------------------------------

    def condition(self, expression: Any) -> Condition:
        """A tag's condition, as Liquid decides it."""
        from liquid.builtin.expressions import logical

        if isinstance(expression, logical.BooleanExpression):
            return self.condition(expression.expression)
        if isinstance(expression, logical.LogicalNotExpression):
            return negate(self.condition(expression.right))
        if isinstance(expression, logical.LogicalAndExpression):
            return both(self.condition(expression.left), self.condition(expression.right))
        if isinstance(expression, logical.LogicalOrExpression):
            return either(self.condition(expression.left), self.condition(expression.right))
        comparisons = {
            logical.LtExpression: "<",
            logical.GtExpression: ">",
            logical.LeExpression: "<=",
            logical.GeExpression: ">=",
        }
        if type(expression) in comparisons:
            left, right = self.value(expression.left), self.value(expression.right)
            return ordered(comparisons[type(expression)], left, right)
        if isinstance(expression, logical.EqExpression):
            return equal(self.value(expression.left), self.value(expression.right))
        if isinstance(expression, logical.NeExpression):
            same = equal(self.value(expression.left), self.value(expression.right))
            return negate(same)
        if isinstance(expression, logical.ContainsExpression):
            return contains(self.value(expression.left), self.value(expression.right))
        return truthy(self.value(expression))

    # -- values ----------------------------------------------------------------------

    def value(self, expression: Any) -> Value:
        """A filtered expression, literal or variable as a Value."""
        from liquid.builtin.expressions import primitive
        from liquid.builtin.expressions.filtered import FilteredExpression
        from liquid.builtin.expressions.path import Path

        if self._constant(expression):
            return self._evaluated(expression)
        if isinstance(expression, FilteredExpression):
            value = self.value(expression.left)
            for applied in expression.filters or []:
                args, kwargs = self._arguments(applied)
                value = apply_filter(applied.name, value, args, kwargs, self.needs_liquid)
            return value
        if isinstance(expression, primitive.Empty):
            return Value("NULL", EMPTY, "empty")
        if isinstance(expression, primitive.Blank):
            return Value("NULL", BLANK, "blank")
        if isinstance(expression, Path):
            return self.path(expression)
        raise Refused(f"the expression `{expression}`")

    def _arguments(self, applied: Any) -> tuple[list[Value], dict[str, Value]]:
        from liquid.builtin.expressions.arguments import KeywordArgument

        args: list[Value] = []
        kwargs: dict[str, Value] = {}
        for argument in applied.args:
            if isinstance(argument, KeywordArgument):
                kwargs[argument.name] = self.value(argument.value)
            else:
                args.append(self.value(argument.value))
        return args, kwargs

    def path(self, path: Any) -> Value:
        """A variable: loop item, forloop, assigned name, event, row.x, previous.x."""
        segments = list(path.path)
        if not all(isinstance(segment, (str, int)) for segment in segments):
            raise Refused(f"the variable index in `{path}`")
        head, rest = str(segments[0]), segments[1:]
        for loop in reversed(self.loops):
            if head == loop.name and not rest:
                return loop.item
        if head == "forloop" and self.loops and len(rest) == 1:
            return _forloop(self.loops[-1], str(rest[0]))
        bound = self.variables.get(head)
        if isinstance(bound, Value) and not rest:
            return bound
        if head == "event" and not rest:
            return Value(self.columns.event, STR, "event")
        if head == "row" and len(rest) == 1 and rest[0] in self.columns.types:
            name = str(rest[0])
            return self.held(row_column(name, self.columns.types[name], f"row.{name}"))
        if head == "previous":
            return self.held(self._previous(rest))
        raise Refused(f"the variable `{path}`")

    def held(self, value: Value) -> Value:
        """A value read from a row, whose row goes to Liquid when Python cannot hold it.

        Python has no 'infinity' date, nor years before 1 or after 9999: Liquid fails
        such a row, where DuckDB would write it.
        """
        if value.kind in (DATE, TIMESTAMP, TIMESTAMPTZ):
            self.needs_liquid(
                f"NOT COALESCE(year({value.sql}) BETWEEN 1 AND 9999, {value.sql} IS NULL)"
            )
        return value

    def _previous(self, rest: list[Any]) -> Value:
        """`previous.x`: the old value of a changed row.

        For other rows `previous` is nil and Liquid fails wherever it reads `previous.x`:
        those rows go to Liquid (only where the branch reading it is taken).
        """
        if not rest:
            return Value(self.columns.previous, OTHER, "previous")  # only its truthiness
        name = str(rest[0])
        if len(rest) != 1 or name not in self.columns.types:
            raise Refused(f"the variable `previous.{'.'.join(map(str, rest))}`")
        sql = f"struct_extract({self.columns.previous}, {quote_literal(name)})"
        value = column_value(sql, self.columns.types[name], f"previous.{name}")
        self.needs_liquid(f"{self.columns.previous} IS NULL")
        return value

    def _constant(self, expression: Any) -> bool:
        """True when every variable the expression reads is the same for every row."""
        from liquid.builtin.expressions import primitive
        from liquid.builtin.expressions.path import Path

        if isinstance(expression, (primitive.Empty, primitive.Blank, primitive.RangeLiteral)):
            return False
        if isinstance(expression, Path):
            head = str(expression.head())
            bound = self.variables.get(head)
            shadowed = any(loop.name == head for loop in self.loops)
            if shadowed:
                return False
            if isinstance(bound, Value):
                return bound.constant
            return bound is None and head in ("model", "run")
        children = expression.children()
        if hasattr(expression, "filters"):
            for applied in expression.filters or []:
                children += [argument.value for argument in applied.args]
        return all(self._constant(child) for child in children)

    def _evaluated(self, expression: Any) -> Value:
        """A constant expression, evaluated by Liquid itself (`'now' | date: '%Y'`)."""
        from liquid import RenderContext
        from liquid.exceptions import LiquidError
        from liquid.undefined import is_undefined

        names = {name: v.python for name, v in self.variables.items() if isinstance(v, Value)}
        context = RenderContext(self.template, globals={**self.context, **names})
        try:
            python = expression.evaluate(context)
        except LiquidError as exc:
            raise Refused(f"`{expression}` fails: {str(exc).splitlines()[0]}") from None
        if is_undefined(python):
            raise Refused(f"`{expression}` is undefined")
        return constant(python, str(expression))


def _distinct_constants(options: list[Value]) -> bool:
    if not all(option.constant for option in options):
        return False
    keys = [(type(option.python), option.python) for option in options]
    kinds = {type(option.python) for option in options}
    return len(set(keys)) == len(keys) and len(kinds) == 1 and bool not in kinds


def _any(found: list[Condition]) -> Condition:
    result = found[0]
    for condition in found[1:]:
        result = either(result, condition)
    return result


def _first(condition: Condition, earlier: list[tuple[Condition, Part]]) -> Condition:
    """A branch is taken when its condition holds and no earlier branch's does."""
    for taken, _ in earlier:
        condition = both(negate(taken), condition)
    return condition


def _always() -> Condition:
    return Condition("true", lambda loops: True)


def _literal_int(expression: Any, name: str) -> int | None:
    from liquid.builtin.expressions.primitive import IntegerLiteral

    if expression is None:
        return None
    if not isinstance(expression, IntegerLiteral) or expression.value < 0:
        raise Refused(f"`{name}` that is not a whole number literal")
    return int(expression.value)


def _offset(expression: Any) -> int:
    return _literal_int(expression, "offset") or 0


def _sliced(items: str, limit: int | None, offset: int) -> str:
    """The items `limit:` and `offset:` keep, as python-liquid slices them."""
    stop = None if limit is None else limit + offset
    if not stop:  # no limit, or limit:0 with no offset: python-liquid keeps every item
        return items if offset == 0 else f"list_slice({items}, {offset + 1}, len({items}))"
    return f"list_slice({items}, {offset + 1}, {stop})"


def _item(items: Value, sql: str, name: str) -> Value:
    from dbt_kafka_sync.messages.columns import parse_type

    if items.column_type:
        child = dict(parse_type(items.column_type).children)["child"]
        return column_value(sql, str(child), name)
    return Value(sql, items.item or STR, name)


def _forloop(loop: _Loop, attribute: str) -> Value:
    """`forloop.index` and the like, with their values at a probed turn."""
    turn, length, depth = loop.turn, f"len({loop.items})", loop.depth
    # SQL, kind, value at a turn, and from which value all turns are alike (see Value).
    known: dict[str, tuple[str, str, Callable[[int, int], Any], int | None]] = {
        "index": (f"{turn}::HUGEINT", INT, lambda i, n: i + 1, 2),
        "index0": (f"({turn} - 1)::HUGEINT", INT, lambda i, n: i, 1),
        "rindex": (f"({length} - {turn} + 1)::HUGEINT", INT, lambda i, n: n - i, 2),
        "rindex0": (f"({length} - {turn})::HUGEINT", INT, lambda i, n: n - i - 1, 1),
        "first": (f"({turn} = 1)", BOOL, lambda i, n: i == 0, None),
        "last": (f"({turn} = {length})", BOOL, lambda i, n: i == n - 1, None),
        "length": (f"{length}::HUGEINT", INT, lambda i, n: n, max(LOOP_TURNS)),
    }
    if attribute not in known:
        raise Refused(f"`forloop.{attribute}`")
    sql, kind, python, alike_from = known[attribute]

    def probe(loops: dict[int, tuple[int, int]]) -> Any:
        index, count = loops[depth]
        return python(index, count)

    return Value(
        sql,
        kind,
        f"forloop.{attribute}",
        probe=probe,
        python=2**64,
        never_nil=True,
        alike_from=alike_from,
    )
