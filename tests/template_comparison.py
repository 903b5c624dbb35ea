"""Renders a generated case both ways, as a sync does: by Liquid and by the SQL compiler.

Both sides run the production code on the same DuckDB changes table: the job's
`diff_input` and `message_columns`, `select_messages` over a ChangeTable shaped like the
diff's, then `render_batches` (Liquid) or the compiled value expression (DuckDB).
`compile_template` is the one place that calls the compiler.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from template_generation import PRIMARY_KEY, Case

from dbt_kafka_sync.changes.diff import CHANGES, EVENT, PREVIOUS
from dbt_kafka_sync.changes.input import SEQ_COLUMN
from dbt_kafka_sync.config.sync import parse_syncs
from dbt_kafka_sync.errors import ConfigError
from dbt_kafka_sync.job import BATCH_ROWS, diff_input
from dbt_kafka_sync.messages import batch
from dbt_kafka_sync.messages import template_compiler as compiler
from dbt_kafka_sync.messages.columns import ChangeTable, message_columns, select_messages
from dbt_kafka_sync.messages.template_compiler import CompiledTemplate
from dbt_kafka_sync.messages.templating import MessageTemplate, load_template, make_environment
from dbt_kafka_sync.session import duckdb_session
from dbt_kafka_sync.sources.base import EXACT_NUMERIC_MEMBER, is_exact_numeric
from dbt_kafka_sync.sql import arrow_batches, quote_identifier

if TYPE_CHECKING:
    import duckdb
    from liquid import Environment

RUN_STARTED = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.timezone.utc)
INPUT = "dks_test_input"  # the rows as generated, before they take the changes' shape


@dataclass(frozen=True)
class Message:
    """One change's message as a sync would send it: a value, or why the row has none."""

    value: str | None
    error: str | None

    def __str__(self) -> str:
        if self.error is None:
            return f"value {self.value!r}"
        return f"row error {self.error!r} (value {self.value!r})"

    def matches(self, compiled: Message) -> bool:
        """Same bytes when this (Liquid's) is a message; no message either when it fails."""
        if self.error is not None:
            return compiled.value is None and compiled.error is not None
        return compiled.error is None and compiled.value == self.value


def compile_template(
    template: MessageTemplate, types: dict[str, str], context: dict[str, Any]
) -> CompiledTemplate:
    """Ask the compiler for a template's SQL: the one call to adapt when its interface changes.

    Args:
        template: the parsed template.
        types: the columns of the changes table (the diff's columns) and their types.
        context: what every message sees besides its row: model and run.
    """
    return compiler.compile_template(template, types, context)


@dataclass(frozen=True)
class Outcome:
    """Both renderings of a case, message by message (by seq)."""

    liquid: dict[int, Message]
    compiled: CompiledTemplate
    sql: dict[int, Message] | None  # None when the compiler refused


def environment() -> Environment:
    """The run's Liquid environment, with a fixed run start."""
    return make_environment(RUN_STARTED)


def parse(env: Environment, case: Case) -> MessageTemplate | None:
    """The case's template as a sync loads it; None when it does not parse."""
    try:
        return load_template(env, case.model, case.template, None, Path("."))
    except ConfigError:
        return None


def render_both(case: Case, template: MessageTemplate) -> Outcome:
    """Render every change of the case by Liquid, and by DuckDB when the compiler accepts."""
    block = {"primary_key": PRIMARY_KEY, "topic": "t", "message": {"template": case.template}}
    [sync] = parse_syncs(case.model, block)
    context = {"model": case.model, "run": case.run}  # as JobContext.template_context
    diff = diff_input(case.model, sync, case.types, template)
    messages = message_columns(case.model, sync, diff.columns, template)
    compiled = compile_template(template, diff.columns, context)
    columns = list(diff.columns)
    with duckdb_session("256MB") as connection:
        changes = _load_changes(connection, case, diff.columns, template.reads_previous())
        query = select_messages(messages, sync, list(sync.events), columns, changes)
        reader = arrow_batches(connection, query, BATCH_ROWS)
        try:
            liquid = _messages(template.render_batches(reader, context, tombstone=False))
        finally:
            reader.close()
        if compiled.sql is None:
            return Outcome(liquid, compiled, None)
        # As the job builds them: DuckDB's values, and Liquid's for the rows it flags.
        built = compiled.messages(messages)
        query = select_messages(built, sync, list(sync.events), columns, changes)
        reader = arrow_batches(connection, query, BATCH_ROWS)
        try:
            renderer = built.template
            hybrid = renderer.render_batches(reader, context, tombstone=False) if renderer else None
            sql = _messages(hybrid or reader)
        finally:
            reader.close()
    return Outcome(liquid, compiled, sql)


def _load_changes(
    connection: duckdb.DuckDBPyConnection, case: Case, types: dict[str, str], previous: bool
) -> ChangeTable:
    """The changes table as the diff leaves it: seq, event, the row's columns, previous."""
    names = list(types)
    typed = [f"{quote_identifier(n)} {types[n]}" for n in names]
    old = [f"{quote_identifier('p_' + n)} {types[n]}" for n in names]
    connection.execute(
        f"CREATE TEMP TABLE {INPUT} ({SEQ_COLUMN} BIGINT, {EVENT} VARCHAR,"
        f" {', '.join(typed + old)})"
    )
    loads = [_load(types[n]) for n in names]
    placeholders = ", ".join(["?", "?", *loads, *loads])
    for seq, change in enumerate(case.changes, start=1):
        before = change.previous or {}
        values = [_bindable(change.row.get(n)) for n in names]
        values += [_bindable(before.get(n)) for n in names]
        connection.execute(
            f"INSERT INTO {INPUT} VALUES ({placeholders})", [seq, change.event, *values]
        )
    fields = ", ".join(f"{quote_identifier(n)} := {quote_identifier('p_' + n)}" for n in names)
    kept = ", ".join(quote_identifier(n) for n in names)
    with_previous = (
        f", CASE WHEN {EVENT} = 'changed' THEN struct_pack({fields}) END AS {PREVIOUS}"
        if previous
        else ""
    )
    connection.execute(
        f"CREATE TEMP TABLE {CHANGES} AS SELECT {SEQ_COLUMN}, {EVENT}, {kept}{with_previous}"
        f" FROM {INPUT} ORDER BY {SEQ_COLUMN}"
    )
    return ChangeTable(CHANGES, SEQ_COLUMN, EVENT, PREVIOUS if previous else None)


def _load(column_type: str) -> str:
    """How a bound value enters a column: as the PostgreSQL source loads exact numbers."""
    if is_exact_numeric(column_type):
        return f'union_value("{EXACT_NUMERIC_MEMBER}" := CAST(? AS VARCHAR))'
    return f"CAST(? AS {column_type})"


def _bindable(value: Any) -> Any:
    """Decimals as text: DuckDB casts the text exactly, whatever the precision."""
    return format(value, "f") if isinstance(value, Decimal) else value


def _messages(batches: Any) -> dict[int, Message]:
    found: dict[int, Message] = {}
    for record_batch in batches:
        for row in record_batch.select([batch.SEQ, batch.VALUE, batch.ROW_ERROR]).to_pylist():
            found[row[batch.SEQ]] = Message(row[batch.VALUE], row[batch.ROW_ERROR])
    return found


def differences(case: Case, outcome: Outcome) -> list[str]:
    """Each change whose compiled message is not exactly Liquid's, described in full."""
    if outcome.sql is None:
        return []
    found = []
    for seq, change in enumerate(case.changes, start=1):
        liquid, sql = outcome.liquid[seq], outcome.sql[seq]
        if liquid.matches(sql):
            continue
        found.append(
            f"change {seq} ({change.event}):\n"
            f"  row:       {change.row!r}\n"
            f"  previous:  {change.previous!r}\n"
            f"  liquid:    {liquid}\n"
            f"  compiled:  {sql}"
        )
    return found


def assert_same_messages(case: Case, outcome: Outcome) -> None:
    """Fail with the template, the types, the rows and both outputs when they differ."""
    found = differences(case, outcome)
    if found:
        raise AssertionError(
            "the compiled template's messages differ from Liquid's\n"
            f"template:\n{case.template}\n"
            f"types: {json.dumps(case.types)}\n"
            f"context: model={case.model!r} run={case.run!r}\n"
            f"compiled SQL: {outcome.compiled.sql}\n"
            f"rows left to Liquid: {outcome.compiled.liquid_rows}\n" + "\n".join(found)
        )
