"""A compiled template as a tree of text, holes, choices and loops: its SQL, and its JSON check.

The same tree gives the SQL building each row's message, and the documents a template
can write with stand-ins for its values. Every message must be strict JSON; instead of
checking each row, the tree's text is checked: with every choice of branches (loops
run 0 to 3 times), with each hole holding stand-ins. A hole writing a JSON value must
sit where any JSON value may; a hole writing escaped text must sit inside a JSON string.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from dbt_kafka_sync.messages.template_compiler.conditions import Condition, Loops
from dbt_kafka_sync.messages.template_compiler.values import Refused
from dbt_kafka_sync.messages.templating import load_strict_json
from dbt_kafka_sync.sql import quote_literal

# Stand-ins: a JSON null and a value that would end a string; text that is harmless
# inside a JSON string and breaks the JSON anywhere else.
JSON_PROBES = ("null", '{"probe": ["\\"", 1]}')
TEXT_PROBES = ("", 'a\\"')
NUMBER_PROBES = ("0", "-1")  # an integer: JSON, and harmless inside a string
BOOL_PROBES = ("true", "false")
MOST_DOCUMENTS = 4096  # more choices than this: too many to check, refused
LOOP_TURNS = (0, 1, 2, 3)


@dataclass(frozen=True)
class Text:
    """Template text, written as it is."""

    text: str


@dataclass(frozen=True)
class Hole:
    """A value written by `{{ ... }}`: JSON text as it is, or text escaped for a string.

    Its stand-ins say which: JSON_PROBES, TEXT_PROBES...
    """

    expression: str
    probes: tuple[str, str]


@dataclass(frozen=True)
class Sequence:
    """Parts written one after the other."""

    parts: list[Part] = field(default_factory=list)


@dataclass(frozen=True)
class Choice:
    """`if`/`unless`/`case`: the first branch whose condition holds, else the default."""

    branches: list[tuple[Condition, Part]]
    default: Part


@dataclass(frozen=True)
class Loop:
    """`for`: the body once per item of a list, or the `else` part for none."""

    items: str  # SQL of the (sliced) list
    item: str  # the lambda's parameter names
    index: str
    depth: int
    body: Part
    empty: Part


Part = Text | Hole | Sequence | Choice | Loop


def part_sql(part: Part) -> str:
    """SQL writing a part for a row (never NULL)."""
    if isinstance(part, Text):
        return quote_literal(part.text)
    if isinstance(part, Hole):
        return part.expression
    if isinstance(part, Sequence):
        if len(part.parts) <= 1:
            return part_sql(part.parts[0]) if part.parts else "''"
        return f"concat({', '.join(part_sql(piece) for piece in part.parts)})"
    if isinstance(part, Choice):
        whens = " ".join(
            f"WHEN {condition.sql} THEN {part_sql(branch)}" for condition, branch in part.branches
        )
        return f"CASE {whens} ELSE {part_sql(part.default)} END"
    turns = f"list_transform({part.items}, lambda {part.item}, {part.index}: {part_sql(part.body)})"
    return (
        f"CASE WHEN COALESCE(len({part.items}), 0) = 0 THEN {part_sql(part.empty)}"
        f" ELSE array_to_string({turns}, '') END"
    )


def documents(part: Part, loops: Loops, probe: int) -> list[str]:
    """Every text a part may write with stand-ins (loops: depth -> (index, length))."""
    if isinstance(part, Text):
        return [part.text]
    if isinstance(part, Hole):
        return [part.probes[probe]]
    if isinstance(part, Sequence):
        return _joined([documents(piece, loops, probe) for piece in part.parts])
    if isinstance(part, Choice):
        return _chosen(part, loops, probe)
    found = list(documents(part.empty, loops, probe))
    for length in LOOP_TURNS[1:]:
        turns = [
            documents(part.body, {**loops, part.depth: (index, length)}, probe)
            for index in range(length)
        ]
        found += _joined(turns)
    return _capped(found)


def _chosen(choice: Choice, loops: Loops, probe: int) -> list[str]:
    """The branches a row may take; those known at this loop turn (forloop.last) only."""
    found: list[str] = []
    for condition, branch in choice.branches:
        answer = condition.probe(loops)
        if answer is False:
            continue
        found += documents(branch, loops, probe)
        if answer is True:
            return _capped(found)
    return _capped(found + documents(choice.default, loops, probe))


def _joined(pieces: list[list[str]]) -> list[str]:
    count = 1
    for options in pieces:
        count *= len(options)
        if count > MOST_DOCUMENTS:
            raise Refused("too many branches to check that every message is JSON")
    return _capped(["".join(choice) for choice in itertools.product(*pieces)])


def _capped(documents: list[str]) -> list[str]:
    unique = list(dict.fromkeys(documents))
    if len(unique) > MOST_DOCUMENTS:
        raise Refused("too many branches to check that every message is JSON")
    return unique


def check_json(document: Part) -> None:
    """Refuse a template whose text is not strict JSON for some row."""
    for probe in (0, 1):
        for text in documents(document, {}, probe):
            try:
                load_strict_json(text)
            except ValueError as exc:
                raise Refused(
                    f"its text is not JSON for every row ({exc}; e.g. {text[:80]!r})"
                ) from None
