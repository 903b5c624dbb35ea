"""Liquid templates that render a row into a JSON message.

One environment for every template of a run:
- undefined variables are errors (StrictUndefined), never silently empty;
- `{{ row.x | json }}` writes a JSON literal for any value (exact decimals, ISO dates,
  base64 bytes, nested lists and objects, null);
- a string written bare, as in `"{{ row.name }}"`, is escaped for a JSON string, so a
  quote, a backslash or a newline in the data cannot break the message;
- `{{ row.payload | raw_json }}` writes a string that already holds JSON as it is.
Every rendered message is then checked to be valid JSON.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import io
import json
import math
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from dbt_kafka_sync.errors import ConfigError, quote_list
from dbt_kafka_sync.messages import batch as message_batch
from dbt_kafka_sync.sources.base import EXACT_NUMERIC_MEMBER

if TYPE_CHECKING:
    import pyarrow as pa
    from liquid import BoundTemplate, Environment
    from liquid.builtin.output import OutputNode
    from liquid.context import RenderContext

ROW_VARIABLES = ("row", "previous")  # the context variables that hold a row's columns
CONTEXT_VARIABLES = {"row", "previous", "event", "model", "run"}


class JsonText(str):
    """Text that already is JSON: written into the message as it is."""

    __slots__ = ()


def json_literal(value: object) -> JsonText:
    """Return any row value as a JSON literal (the `json` filter)."""
    return JsonText(to_json(value))


def raw_json(value: object) -> JsonText:
    """Mark a string that already holds JSON, to write it unescaped (the `raw_json` filter)."""
    return JsonText("null" if value is None else str(value))


def to_json(value: Any) -> str:
    """Write a Python value from a row as JSON text, the way the columns mode writes it.

    Decimals keep every digit (json.dumps would go through a float), NaN and Infinity
    become null, instants are ISO 8601 in UTC, bytes base64.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else "null"
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else "null"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        items = (f"{json.dumps(str(k), ensure_ascii=False)}:{to_json(v)}" for k, v in value.items())
        return "{" + ",".join(items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    return json.dumps(_scalar_text(value), ensure_ascii=False)


def _scalar_text(value: Any) -> str:
    if isinstance(value, dt.datetime):
        # As the columns mode writes them: no zero fraction digits, instants in UTC with 'Z'.
        zone = value.tzinfo is not None
        moment: dt.datetime = (
            value.astimezone(dt.timezone.utc).replace(tzinfo=None) if zone else value
        )
        text = moment.isoformat()
        if "." in text:
            text = text.rstrip("0")
        return text + ("Z" if zone else "")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode()
    return str(value)  # UUID, timedelta and other scalars: their text


# Tags that write text without going through the JSON-safe output statement, or load
# other templates: not available in message templates.
UNSAFE_TAGS = ("echo", "liquid", "cycle", "include", "render", "tablerow")


def output_text(value: object) -> str:
    """What `{{ ... }}` writes for a value: JSON text as it is, anything else escaped."""
    from liquid.stringify import to_liquid_string

    if isinstance(value, JsonText):
        return value
    if isinstance(value, (Decimal, dt.datetime)):
        text = format(value, "f") if isinstance(value, Decimal) else _scalar_text(value)
    else:
        text = to_liquid_string(value, autoescape=False)
    if _NEEDS_ESCAPE(text) is None:  # most text: json.dumps would leave it as it is
        return text
    # Escaped for a JSON string: harmless for numbers, safe between quotes.
    return json.dumps(text, ensure_ascii=False)[1:-1]


def _json_safe_tags() -> list[type]:
    """`{{ ... }}` escaping everything it writes, and `capture` keeping that escaping once.

    Built lazily: python-liquid is imported only by runs that have templates.
    """
    from liquid.builtin.output import Output, OutputNode
    from liquid.builtin.tags.capture_tag import CaptureNode, CaptureTag

    class JsonSafeOutputNode(OutputNode):
        def render_to_output(self, context: RenderContext, buffer: TextIO) -> int:
            return buffer.write(output_text(self.expression.evaluate(context)))

    class JsonSafeOutput(Output):
        node_class: type[OutputNode] = JsonSafeOutputNode

    class EscapedCaptureNode(CaptureNode):
        def _assign(self, context: RenderContext, buf: Any) -> None:
            context.assign(self.name, JsonText(buf.getvalue()))  # already escaped once

    class EscapedCapture(CaptureTag):
        node_class = EscapedCaptureNode

    return [JsonSafeOutput, EscapedCapture]


def _decimal(value: Any) -> Any:
    return Decimal(str(value)) if isinstance(value, (int, float)) else value


def _decimal_aware(name: str, original: Any, operation: Any) -> Any:
    """Wrap a math filter: python-liquid treats Decimal (DuckDB DECIMAL, HUGEINT) as 0.

    Arithmetic that fails (a Decimal divided by zero, rounding to 400 places, rounding
    an infinite double, `false | times: 0.5`) fails the row, as the filter does for a
    division of integers by zero, instead of the whole sync.
    """
    from liquid.exceptions import FilterArgumentError

    def apply(left: Any, *args: Any) -> Any:
        try:
            if isinstance(left, Decimal) or any(isinstance(arg, Decimal) for arg in args):
                return operation(_decimal(left), *(_decimal(arg) for arg in args))
            return original(left, *args)
        except (ArithmeticError, ValueError) as exc:  # OverflowError, decimal's errors
            raise FilterArgumentError(f"{name}: {type(exc).__name__}", token=None) from None

    return apply


_DECIMAL_MATH: dict[str, Any] = {
    "plus": lambda a, b: a + b,
    "minus": lambda a, b: a - b,
    "times": lambda a, b: a * b,
    "divided_by": lambda a, b: a / b,
    "modulo": lambda a, b: a % b,
    "abs": abs,
    "at_least": max,
    "at_most": min,
    "ceil": math.ceil,
    "floor": math.floor,
    "round": lambda a, places=0: round(a, int(places)) if places else round(a),
}


def _run_clock(original: Any, now: dt.datetime) -> Any:
    """Wrap the `date` filter: 'now' and 'today' mean the run's start.

    Every message of a run then carries the same time, and rendering a row again (to
    find the row of a failed message) gives the same message. A date Python cannot
    hold (`99999999999999 | date: ...`, seconds after year 9999) fails the row, as the
    filter's own errors do, instead of the whole sync.
    """
    from liquid.exceptions import FilterArgumentError

    @functools.wraps(original)  # keeps the filter's flags (it wants the environment)
    def date(value: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(value, str) and value.strip().lower() in ("now", "today"):
            value = now
        try:
            return original(value, *args, **kwargs)
        except (ValueError, OverflowError, OSError) as exc:
            raise FilterArgumentError(f"date: {exc}", token=None) from None

    return date


def make_environment(now: dt.datetime | None = None) -> Environment:
    """Build the Liquid environment shared by every template of a run started at `now`."""
    from liquid import Environment, StrictUndefined

    environment = Environment(undefined=StrictUndefined)
    for tag in _json_safe_tags():
        environment.add_tag(tag)
    for name in UNSAFE_TAGS:
        environment.tags.pop(name, None)
    for name, operation in _DECIMAL_MATH.items():
        environment.add_filter(name, _decimal_aware(name, environment.filters[name], operation))
    environment.add_filter("json", json_literal)
    environment.add_filter("raw_json", raw_json)
    run_start = now or dt.datetime.now(dt.timezone.utc)
    environment.add_filter("date", _run_clock(environment.filters["date"], run_start))
    return environment


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def load_strict_json(text: str) -> Any:
    """Parse JSON as consumers must read it: NaN and Infinity (which json accepts) raise."""
    return json.loads(text, parse_constant=_reject_constant)


# What json.dumps escapes in a string (ensure_ascii=False): quote, backslash, controls.
_NEEDS_ESCAPE = re.compile(r'[\x00-\x1f\\"]').search
_WHITESPACE = re.compile(r"[ \t\n\r]*").match  # what json.loads skips around a document
# The scanner json.loads builds for every call (a decoder with parse_constant), built once.
_SCAN: Any = getattr(json.JSONDecoder(parse_constant=_reject_constant), "scan_once")  # noqa: B009


def is_strict_json(text: str) -> bool:
    """Tell whether load_strict_json accepts the text, without its per-call decoder.

    The same scanner json.loads uses, so exactly the same documents pass; a text that
    fails goes through load_strict_json again for its error message.
    """
    try:
        _, end = _SCAN(text, _skip_whitespace(text, 0))
    except (StopIteration, ValueError):
        return False
    return _skip_whitespace(text, end) == len(text)


def _skip_whitespace(text: str, at: int) -> int:
    space = _WHITESPACE(text, at)
    return space.end() if space else at  # it always matches, if only nothing


@dataclass(frozen=True)
class MessageTemplate:
    """A parsed template and what it reads from a row."""

    name: str
    source: str
    template: BoundTemplate
    run_start: dt.datetime | None = None  # its environment's clock, when known

    def spec(self) -> TemplateSpec | None:
        """What a rendering process needs to parse the same template again, when known."""
        if self.run_start is None:
            return None
        return TemplateSpec(self.name, self.source, self.run_start)

    def row_columns(self) -> set[str] | None:
        """Columns the template reads from `row` or `previous`; None when it uses a whole row."""
        columns: set[str] = set()
        analysis = self.template.analyze()
        for variable in ROW_VARIABLES:
            for reference in analysis.globals.get(variable, []):
                column = reference.segments[1] if len(reference.segments) > 1 else None
                if isinstance(column, str):
                    columns.add(column)
                elif variable == "row":
                    return None  # `row | json`, `row[name]`: the whole row may be read
                # A bare `previous` (`{% if previous %}`) holds the same columns as `row`.
        return columns

    def check(self, model: str, columns: Iterable[str]) -> None:
        """Fail before publishing when the template reads a column the model lacks.

        Raises:
            ConfigError: naming the template, the line and column, and the model column.
        """
        available = set(columns)
        analysis = self.template.analyze()
        for name, references in analysis.globals.items():
            if name not in CONTEXT_VARIABLES:
                self._fail(model, name, references[0].span, f"unknown variable '{name}'")
            if name not in ROW_VARIABLES:
                continue
            for reference in references:
                column = reference.segments[1] if len(reference.segments) > 1 else None
                if isinstance(column, str) and column not in available:
                    self._fail(
                        model,
                        column,
                        reference.span,
                        f"{name}.{column} reads a column the model does not have"
                        f" (its columns: {quote_list(sorted(available))})",
                    )

    def reads_previous(self) -> bool:
        """Tell whether the template uses `previous` (which costs a join with the snapshot)."""
        return "previous" in self.template.analyze().globals

    def _fail(self, model: str, column: str, span: Any, message: str) -> None:
        line, col = span.line_col(self.source)
        raise ConfigError(
            message,
            model=model,
            column=column,
            location=f"template {self.name}, line {line}, column {col}",
            hint="`row` holds the model's columns, `previous` a changed row's old values;"
            " also available: event, model, run.id, run.started_at",
        )

    def render(self, context: dict[str, Any]) -> tuple[str | None, str | None]:
        """Render one message; return (value, None), or (None, why it cannot be sent)."""
        from liquid.exceptions import LiquidError

        try:
            text = self._render_text(context)
        except LiquidError as exc:
            return None, f"template error: {str(exc).splitlines()[0]}"
        if is_strict_json(text):
            return text, None
        try:
            load_strict_json(text)
        except ValueError as exc:
            return None, (
                f"the template's output is not valid JSON ({exc}); write values with"
                " `{{ row.x | json }}`"
            )
        return text, None

    def _render_text(self, context: dict[str, Any]) -> str:
        """BoundTemplate.render(**context), one mapping shorter on every variable lookup.

        render() chains the variables with the template's own globals and front matter;
        a template without either (every template of make_environment) is given the
        variables as they are. A new RenderContext for every row, as render() makes:
        nothing assigned, captured or counted carries over to the next row.
        """
        from liquid.context import RenderContext

        template = self.template
        if template.globals or template.matter or template.env.output_stream_limit:
            return template.render(**context)
        buffer = io.StringIO()
        template.render_with_context(RenderContext(template, globals=context), buffer)
        return buffer.getvalue()

    def render_batches(
        self,
        batches: Iterable[pa.RecordBatch],
        context: dict[str, Any],
        tombstone: bool,
    ) -> Iterator[pa.RecordBatch]:
        """Fill the value (or row_error) of each message batch by rendering its rows.

        Args:
            batches: message batches with the template's row (and previous) columns.
            context: what every message sees: model and run.
            tombstone: removed rows are tombstones, with nothing to render.
        """
        for batch in batches:
            values, errors = self.render_batch(batch, context, tombstone)
            yield with_rendered(batch, values, errors)

    def render_batch(
        self, batch: pa.RecordBatch, context: dict[str, Any], tombstone: bool
    ) -> tuple[pa.Array, pa.Array]:
        """The value and row_error columns of one message batch, its rows rendered.

        Only rows without a value (DuckDB builds the others) nor an error are rendered:
        a template DuckDB builds but for a few rows costs no Python per row elsewhere.
        """
        import pyarrow.compute as pc

        value, error = batch.column(message_batch.VALUE), batch.column(message_batch.ROW_ERROR)
        pending = pc.and_(pc.is_null(value), pc.is_null(error))
        if tombstone:
            kept = pc.not_equal(batch.column(message_batch.EVENT), "removed")
            pending = pc.and_(pending, kept.fill_null(True))
        count = pc.sum(pending).as_py() or 0
        if count == batch.num_rows:
            return self._render_rows(batch, context, tombstone)
        if count == 0:
            return value, error
        values, errors = self._render_rows(batch.filter(pending), context, tombstone)
        return pc.replace_with_mask(value, pending, values), pc.replace_with_mask(
            error, pending, errors
        )

    def _render_rows(
        self, batch: pa.RecordBatch, context: dict[str, Any], tombstone: bool
    ) -> tuple[pa.Array, pa.Array]:
        """Render the rows of a batch none of whose values DuckDB built (see render_batch)."""
        import pyarrow as pa

        events = batch.column(message_batch.EVENT).to_pylist()
        errors = batch.column(message_batch.ROW_ERROR).to_pylist()
        try:
            rows = _python_rows(batch, message_batch.TEMPLATE_ROW)
            previous = _python_rows(batch, message_batch.TEMPLATE_PREVIOUS)
        except (ValueError, OverflowError, pa.ArrowException) as exc:
            # e.g. 'infinity'::TIMESTAMP has no Python value: these rows cannot be rendered.
            reason = f"cannot hand the row's values to the template: {exc}"
            errors = [error or reason for error in errors]
            rows = previous = [None] * batch.num_rows
        values: list[str | None] = []
        for index, row in enumerate(rows):
            if errors[index] is not None or (tombstone and events[index] == "removed"):
                values.append(None)
                continue
            scope = {**context, "row": row, "previous": previous[index], "event": events[index]}
            value, errors[index] = self.render(scope)
            values.append(value)
        return pa.array(values, type=pa.string()), pa.array(errors, type=pa.string())


def with_rendered(batch: pa.RecordBatch, values: pa.Array, errors: pa.Array) -> pa.RecordBatch:
    """The message batch with its value and row_error columns replaced."""
    import pyarrow as pa

    names = batch.schema.names
    columns = [
        values
        if name == message_batch.VALUE
        else errors
        if name == message_batch.ROW_ERROR
        else column
        for name, column in zip(names, batch.columns, strict=True)
    ]
    return pa.RecordBatch.from_arrays(columns, names=names)


@dataclass(frozen=True)
class TemplateSpec:
    """A template as text and clock: what another process parses it again from."""

    name: str
    source: str
    run_start: dt.datetime

    def parse(self) -> MessageTemplate:
        """The template in an environment of its own, with the same run clock."""
        template = make_environment(self.run_start).from_string(self.source, name=self.name)
        return MessageTemplate(self.name, self.source, template, self.run_start)


def load_template(
    environment: Environment,
    model: str,
    inline: str | None,
    file: str | None,
    root: Path,
    run_start: dt.datetime | None = None,
) -> MessageTemplate:
    """Parse an inline template or a template file (relative to the dbt project).

    Args:
        environment: the run's Liquid environment (make_environment).
        model: the model, for errors.
        inline: the inline template, or None.
        file: the template file relative to `root`, or None.
        root: the dbt project folder.
        run_start: the environment's clock, for rendering processes to use the same.

    Raises:
        ConfigError: when the file is missing or the template does not parse.
    """
    from liquid.exceptions import LiquidError

    if file is not None:
        path = root / file
        if not path.is_file():
            raise ConfigError(
                f"template_file {file} not found (looked at {path})",
                model=model,
                hint="template_file is relative to the dbt project folder",
            )
        name, source = file, path.read_text(encoding="utf-8")
    else:
        name, source = f"<inline template of {model}>", inline or ""
    try:
        template = environment.from_string(source, name=name)
        template.analyze()  # what check() and row_columns() read later
    except LiquidError as exc:
        raise ConfigError(
            f"the template does not parse: {str(exc).splitlines()[0]}",
            model=model,
            location=name,
            hint=f"not available in message templates: {', '.join(UNSAFE_TAGS)}",
        ) from None
    return MessageTemplate(name, source, template, run_start)


def _python_rows(batch: pa.RecordBatch, column: str) -> list[Any]:
    """A struct column as Python dicts (maps as dicts too, as the columns mode writes them).

    Exact numbers (kept as text, see sources.base.EXACT_NUMERIC) become Decimals. Each
    field is converted whole, then zipped into the rows: a third of the time of the
    struct's own to_pylist, for the same dicts.
    """
    if column not in batch.schema.names:
        return [None] * batch.num_rows
    values = batch.column(column)
    valid = None
    if values.null_count:  # e.g. `previous` of added rows: the rows that are there first
        valid = values.is_valid()
        values = values.filter(valid)
    names = [field.name for field in values.type]
    fields = [
        _python_values(values.field(index), field.type) for index, field in enumerate(values.type)
    ]
    rows: list[Any] = [dict(zip(names, row, strict=True)) for row in zip(*fields, strict=True)]
    if valid is None:
        return rows
    present = iter(rows)
    return [next(present) if ok else None for ok in valid.to_pylist()]


def _python_values(values: pa.Array, arrow_type: Any) -> list[Any]:
    python: list[Any] = values.to_pylist(maps_as_pydicts="strict")
    if _is_exact_numeric(arrow_type):
        return [None if value is None else Decimal(value) for value in python]
    return python


def _is_exact_numeric(arrow_type: Any) -> bool:
    import pyarrow as pa

    return bool(
        pa.types.is_union(arrow_type)
        and arrow_type.num_fields == 1
        and arrow_type.field(0).name == EXACT_NUMERIC_MEMBER
    )


class TemplateLoader:
    """Parses each sync's template once per run, in one shared environment."""

    def __init__(self, project_dir: Path, now: dt.datetime | None = None) -> None:
        self.project_dir = project_dir
        self.now = now or dt.datetime.now(dt.timezone.utc)  # what `'now' | date` shows
        self._environment: Environment | None = None

    def for_sync(self, model: str, message: Any) -> MessageTemplate | None:
        """The template of a sync's `message` block, or None for the other modes."""
        if message is None or (message.template is None and message.template_file is None):
            return None
        if self._environment is None:
            self._environment = make_environment(self.now)
        return load_template(
            self._environment,
            model,
            message.template,
            message.template_file,
            self.project_dir,
            self.now,
        )
