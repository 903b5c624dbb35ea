"""Liquid message templates compiled to one DuckDB expression, when that is exact.

`compile_template` returns the SQL building each row's message exactly as the run's
Liquid environment renders it (byte for byte), or the reason Liquid must render the
whole template. A few rows may still need Liquid (text beyond ASCII under `upcase`, a
nil date under `date`...): `liquid_rows` is SQL true for them, and the job hands just
those rows to Liquid. See the README's "Templates DuckDB builds" for what compiles.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from dbt_kafka_sync.changes.diff import EVENT, PREVIOUS
from dbt_kafka_sync.messages.template_compiler.document import check_json, part_sql
from dbt_kafka_sync.messages.template_compiler.nodes import Columns, NodeCompiler
from dbt_kafka_sync.messages.template_compiler.values import Refused
from dbt_kafka_sync.sql import quote_identifier

if TYPE_CHECKING:
    from dbt_kafka_sync.messages.columns import MessageColumns
    from dbt_kafka_sync.messages.templating import MessageTemplate


@dataclass(frozen=True)
class CompiledTemplate:
    """A template as DuckDB SQL, or why Liquid renders it.

    Attributes:
        sql: SQL giving each row's message (VARCHAR), over a relation with the model's
            columns, the event column and (for templates reading `previous`) the
            previous-values struct; None when Liquid renders the template.
        reason: why Liquid renders the template (None when it compiled).
        liquid_rows: SQL true for the rows Liquid must render even so (their `sql`
            value is meaningless); None when DuckDB builds every row.
    """

    sql: str | None
    reason: str | None = None
    liquid_rows: str | None = None

    def messages(self, columns: MessageColumns) -> MessageColumns:
        """A template sync's message columns, with the values DuckDB builds."""
        if self.sql is None:
            return columns
        if self.liquid_rows is None:
            return replace(columns, value=self.sql, template=None)
        # The few rows DuckDB cannot write as Liquid does are left to Liquid.
        value = f"CASE WHEN {self.liquid_rows} THEN NULL ELSE {self.sql} END"
        return replace(columns, value=value, template_rows=self.liquid_rows)


def compile_template(
    template: MessageTemplate,
    types: dict[str, str],
    context: dict[str, Any],
    *,
    event: str = quote_identifier(EVENT),
    previous: str = quote_identifier(PREVIOUS),
) -> CompiledTemplate:
    """Compile a parsed template for a relation's columns.

    Args:
        template: the template, parsed in the run's environment.
        types: column -> DuckDB type of the relation the messages are built from.
        context: what every message sees besides its row: {"model": ..., "run": {...}}.
        event: SQL of the row's event ('added', 'changed' or 'removed').
        previous: SQL of the struct of a changed row's old values (NULL for others).
    """
    compiler = NodeCompiler(template.template, Columns(types, event, previous), context)
    try:
        document = compiler.template_part()
        check_json(document)
    except Refused as refusal:
        return CompiledTemplate(None, str(refusal))
    return CompiledTemplate(part_sql(document), None, compiler.liquid_rows())


__all__ = ["CompiledTemplate", "compile_template"]
