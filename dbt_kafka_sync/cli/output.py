"""What the commands print: run summaries, plans and the run history."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click
import yaml

if TYPE_CHECKING:
    from dbt_kafka_sync.alerts.delivery import Delivery
    from dbt_kafka_sync.runner.context import RunReport
    from dbt_kafka_sync.runner.copy_state import CopiedSync
    from dbt_kafka_sync.state.history import RunDetails, RunSummary, SyncOutcome
    from dbt_kafka_sync.state.last_good import Restored
    from dbt_kafka_sync.state.store import StoredSync

MAX_PRINTED_FAILURES = 10
MAX_SAMPLE_CHARS = 300


def _name(result: SyncOutcome) -> str:
    return result.model + ("" if result.sync == "default" else f" [{result.sync}]")


def _counts(result: SyncOutcome) -> str:
    counts = result.counts
    return f"{counts.added} added, {counts.changed} changed, {counts.removed} removed"


def print_run(report: RunReport) -> None:
    """One line per sync, then the rows that failed."""
    for result in report.results:
        if result.error:
            click.secho(f"FAIL {_name(result)}: {result.error}", fg="red")
            continue
        if _print_skipped(result):
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


def print_alerts(deliveries: Sequence[Delivery]) -> None:
    """Which channels the run's alerts reached, and why the others did not."""
    for delivery in deliveries:
        if delivery.ok:
            click.echo(f"alert sent to {delivery.channel}: {delivery.detail}")
        else:
            click.secho(f"ALERT NOT SENT to {delivery.channel}: {delivery.detail}", fg="yellow")


def _print_skipped(result: SyncOutcome) -> bool:
    if result.skipped is None:
        return False
    click.secho(f"SKIP {_name(result)}: {result.skipped}", fg="yellow")
    return True


def _print_failures(result: SyncOutcome) -> None:
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
        if _print_skipped(result):
            continue
        click.echo(
            f"{_name(result)} -> {result.topic}: {_counts(result)};"
            f" {result.published} to publish"
            + (f", {result.rejected} rejected (NULL primary key)" if result.rejected else "")
        )
        if result.template_builder is not None:
            click.echo(f"    template messages built by {result.template_builder}")
        for sample in result.samples:
            value = sample.value
            shown = (
                value
                if value is None or len(value) <= MAX_SAMPLE_CHARS
                else (value[:MAX_SAMPLE_CHARS] + "...")
            )
            click.echo(f"    {sample.event:<8} key={sample.key}  value={shown}")
    click.echo("plan only: nothing was published and the state is unchanged")


def print_runs(runs: Sequence[RunSummary]) -> None:
    """A table of recent runs."""
    if not runs:
        click.echo("no runs recorded yet")
        return
    click.echo(
        f"{'run id':<24} {'status':<8} {'target':<10} {'started (UTC)':<20} delivered failed"
    )
    for run in runs:
        click.echo(
            f"{run.run_id:<24} {run.status:<8} {run.target:<10} {run.started_at:%Y-%m-%d %H:%M:%S} "
            f"{run.delivered:>9} {run.failed + run.rejected:>6}"
        )


def print_run_details(details: RunDetails) -> None:
    """One run: its status, each sync's counts and the rows that failed."""
    run = details.run
    click.echo(f"run {run.run_id} ({run.command}, target {run.target}): {run.status}")
    click.echo(f"  started {run.started_at}, finished {run.finished_at or '-'}")
    if run.error:
        click.echo(f"  error: {run.error}")
    for sync in details.syncs:
        click.echo(
            f"  {sync.model} [{sync.sync}] -> {sync.topic}: {sync.status}; {_counts(sync)};"
            f" {sync.published} published, {sync.delivered} delivered,"
            f" {sync.failed} failed, {sync.rejected} rejected"
        )
        if sync.error:
            click.echo(f"    error: {sync.error}")
        if sync.skipped:
            click.echo(f"    skipped: {sync.skipped}")
    if any(sync.failures for sync in details.syncs):
        click.echo("  failed rows:")
    for sync in details.syncs:
        for row in sync.failures:
            click.echo(f"    {sync.model} row key {row.row_key!r} ({row.event}): {row.reason}")


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


def print_copied(copied: Sequence[CopiedSync]) -> None:
    """One line per sync of copy-state."""
    if not copied:
        click.echo("no model has a kafka_sync block: nothing to copy")
    for item in copied:
        click.echo(f"{item.status.upper():8} {item.model} [{item.sync}]: {item.detail}")


def print_reset_plan(name: str, syncs: Sequence[StoredSync], packages: Sequence[str]) -> None:
    """What `reset NAME` would forget, before it asks."""
    if len(packages) > 1:
        click.secho(
            f"'{name}' names models of several packages ({', '.join(packages)});"
            " to reset one of them only, give its unique_id",
            fg="yellow",
        )
    click.echo(f"reset '{name}' forgets the snapshot of {len(syncs)} sync(s):")
    for sync in syncs:
        click.echo(f"  {sync.sync_id}")


def print_restored(restored: Restored) -> None:
    """What restore-state did, and what the next run will send again."""
    if restored.kept_aside is not None:
        click.echo(f"kept the damaged state file aside as {restored.kept_aside}")
    click.echo(f"restored {restored.path} from its last good copy {restored.copy}")
    run = restored.last_run
    if run is None:
        click.echo("the restored state records no run yet")
    else:
        started = f"{run.started_at:%Y-%m-%d %H:%M:%S}"
        click.echo(f"the restored state ends with run {run.run_id} (started {started} UTC)")
    click.echo(
        "Rows published after the copy was taken are sent again by the next run (duplicates,"
        " never a loss). If a run after it was cut short, run the next one with --full-refresh:"
        " it also resends rows that changed and changed back since."
    )
