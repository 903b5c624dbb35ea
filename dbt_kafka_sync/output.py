"""What the commands print: run summaries, plans and the run history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click
import yaml

if TYPE_CHECKING:
    from dbt_kafka_sync.runner import RunReport
    from dbt_kafka_sync.sync import SyncResult

MAX_PRINTED_FAILURES = 10
MAX_SAMPLE_CHARS = 300


def _name(result: SyncResult) -> str:
    return result.model + ("" if result.sync == "default" else f" [{result.sync}]")


def _counts(result: SyncResult) -> str:
    counts = result.counts
    return f"{counts.added} added, {counts.changed} changed, {counts.removed} removed"


def print_run(report: RunReport) -> None:
    """One line per sync, then the rows that failed."""
    for result in report.results:
        if result.error:
            click.secho(f"FAIL {_name(result)}: {result.error}", fg="red")
            continue
        status, colour = ("OK  ", "green") if result.ok else ("FAIL", "red")
        line = (
            f"{status} {_name(result)} -> {result.topic}: {_counts(result)};"
            f" {result.delivered} delivered, {result.failed} failed"
        )
        if result.rejected:
            line += f", {result.rejected} rejected (NULL primary key)"
        click.secho(line, fg=colour)
        _print_failures(result)
    if report.results:
        click.echo(f"run {report.run_id} (details: dbt-kafka-sync show {report.run_id})")


def _print_failures(result: SyncResult) -> None:
    for row in result.failures[:MAX_PRINTED_FAILURES]:
        click.echo(f"       row key {row.row_key!r} ({row.event}): {row.reason}")
    if result.failed > MAX_PRINTED_FAILURES:
        click.echo(f"       ... and {result.failed - MAX_PRINTED_FAILURES} more")
    for example in result.rejected_examples:
        click.echo(f"       rejected, primary key is NULL: {example}")


def print_plan(report: RunReport) -> None:
    """Counts and sample messages of what a run would publish."""
    for result in report.results:
        if result.error:
            click.secho(f"FAIL {_name(result)}: {result.error}", fg="red")
            continue
        click.echo(
            f"{_name(result)} -> {result.topic}: {_counts(result)};"
            f" {result.published} to publish"
            + (f", {result.rejected} rejected (NULL primary key)" if result.rejected else "")
        )
        for event, key, value in result.samples:
            shown = (
                value
                if value is None or len(value) <= MAX_SAMPLE_CHARS
                else (value[:MAX_SAMPLE_CHARS] + "...")
            )
            click.echo(f"    {event:<8} key={key}  value={shown}")
    click.echo("plan only: nothing was published and the state is unchanged")


def print_runs(runs: Sequence[tuple[Any, ...]]) -> None:
    """A table of recent runs."""
    if not runs:
        click.echo("no runs recorded yet")
        return
    click.echo(
        f"{'run id':<24} {'status':<8} {'target':<10} {'started (UTC)':<20} delivered failed"
    )
    for run_id, _command, target, started, _finished, status, delivered, failed, rejected in runs:
        click.echo(
            f"{run_id:<24} {status:<8} {target:<10} {started:%Y-%m-%d %H:%M:%S} "
            f"{delivered:>9} {failed + rejected:>6}"
        )


def print_run_details(
    run: tuple[Any, ...], syncs: Sequence[tuple[Any, ...]], failed: Sequence[tuple[Any, ...]]
) -> None:
    """One run: its status, each sync's counts and the rows that failed."""
    run_id, command, target, started, finished, status, error = run
    click.echo(f"run {run_id} ({command}, target {target}): {status}")
    click.echo(f"  started {started}, finished {finished or '-'}")
    if error:
        click.echo(f"  error: {error}")
    for (
        model,
        name,
        topic,
        added,
        changed,
        removed,
        published,
        delivered,
        n_failed,
        rejected,
        sync_status,
        sync_error,
    ) in syncs:
        click.echo(
            f"  {model} [{name}] -> {topic}: {sync_status}; {added} added, {changed} changed,"
            f" {removed} removed; {published} published, {delivered} delivered,"
            f" {n_failed} failed, {rejected} rejected"
        )
        if sync_error:
            click.echo(f"    error: {sync_error}")
    if failed:
        click.echo("  failed rows:")
    for model, row_key, event, reason in failed:
        click.echo(f"    {model} row key {row_key!r} ({event}): {reason}")


def print_profile(profile: dict[str, Any]) -> None:
    """The resolved kafka_sync output, secrets already masked."""
    click.echo(
        yaml.safe_dump(profile, sort_keys=False, default_flow_style=False)
        .rstrip()
        .replace("\n", "\n    ")
        .join(("    ", ""))
    )


def print_check(check: Any) -> None:
    """One line of `debug`: OK or FAIL, what was checked and what was found."""
    status, colour = ("OK  ", "green") if check.ok else ("FAIL", "red")
    click.secho(f"{status} {check.name}: {check.detail}", fg=colour)
