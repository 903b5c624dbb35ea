"""The debugger's commands' options and printing: `show RUN_ID --messages` and `messages --key`."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from dbt_kafka_sync.runner.history import RunMessages
    from dbt_kafka_sync.state.message_log import MessageFilter, SentMessage

F = TypeVar("F", bound=Callable[..., Any])

KEY_HELP = (
    "The message key, or the primary key as text; a composite primary key as a JSON array"
    ' of its values as text, e.g. \'["7","2"]\'.'
)


def message_filters(command: F) -> F:
    """The options of `show` that list the run's messages, and filter them."""
    options = [
        click.option(
            "--messages",
            "with_messages",
            is_flag=True,
            help="List the messages the run sent, with their outcome (the debugger's log).",
        ),
        click.option("--key", help=KEY_HELP + " Implies --messages."),
        click.option(
            "--event",
            type=click.Choice(["added", "changed", "removed"]),
            help="Only messages of this event. Implies --messages.",
        ),
        click.option(
            "--failed",
            "failed_only",
            is_flag=True,
            help="Only messages that failed or were refused. Implies --messages.",
        ),
        click.option("--model", help="Only this model's messages (its name). Implies --messages."),
        click.option(
            "--limit",
            default=100,
            show_default=True,
            type=click.IntRange(min=1),
            help="Messages to list at most.",
        ),
    ]
    return functools.reduce(lambda wrapped, option: option(wrapped), reversed(options), command)


def message_filter(
    with_messages: bool,
    key: str | None,
    event: str | None,
    failed_only: bool,
    model: str | None,
    limit: int,
) -> MessageFilter | None:
    """The filter `show`'s options ask for; None when they ask for no message."""
    from dbt_kafka_sync.state.message_log import MessageFilter

    if not (with_messages or key is not None or event or failed_only or model):
        return None
    return MessageFilter(key, event, failed_only, model, limit)


def print_run_messages(found: RunMessages, wanted: MessageFilter) -> None:
    """The run's stage timings, send rate and the messages the filter keeps."""
    if found.timings:
        click.echo("  stages:")
    for timing in found.timings:
        click.echo(f"    {timing.model} [{timing.sync}] {timing.stage}: {timing.seconds:.3f}s")
    for sync_id, per_second in _rates(found).items():
        click.echo(f"  send rate of {sync_id} (messages/s): {', '.join(map(str, per_second))}")
    shown = len(found.messages)
    more = f" (the first {wanted.limit}; raise --limit for more)" if shown == wanted.limit else ""
    click.echo(f"  messages: {shown}{more}")
    for message in found.messages:
        _print_message(message, "    ")


def _rates(found: RunMessages) -> dict[str, list[int]]:
    """Messages per second of each sync, idle seconds as 0."""
    rates: dict[str, list[int]] = {}
    for rate in found.rates:
        seconds = rates.setdefault(rate.sync_id, [])
        seconds.extend([0] * (rate.second - len(seconds)))
        seconds.append(rate.messages)
    return rates


def print_key_history(key: str, messages: Sequence[SentMessage]) -> None:
    """Every message recorded for a key, newest first, with its run."""
    if not messages:
        click.echo(f"no message recorded for key {key!r} (see `debugger` in the README)")
        return
    for message in messages:
        sent = message.sent_at.isoformat(sep=" ", timespec="seconds") if message.sent_at else "-"
        click.echo(f"run {message.run_id} at {sent}")
        _print_message(message, "  ")


def _print_message(message: SentMessage, indent: str) -> None:
    where = message.topic or "-"
    if message.partition is not None:
        where += f"[{message.partition}]"
    if message.offset is not None:
        where += f"@{message.offset}"
    outcome = message.outcome + (f" ({message.reason})" if message.reason else "")
    click.echo(
        f"{indent}{message.model} [{message.sync}] #{message.seq} {message.event}"
        f" row {message.row_key} key {json.dumps(message.key)} -> {where}: {outcome};"
        f" {message.size} bytes"
    )
    if message.value is not None:
        # A multi-line value (a Liquid template's) keeps its lines, aligned under the first.
        label = f"{indent}  value: "
        click.echo(label + message.value.replace("\n", "\n" + " " * len(label)))
