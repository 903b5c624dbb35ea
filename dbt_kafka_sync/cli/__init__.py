"""The `dbt-kafka-sync` command. Thin: parse options, call the runner, map errors to exit codes.

Exit codes: 0 every message delivered; 1 a handled failure (bad config, unreachable
broker, rows that failed); 2 an unexpected error (a bug: please report it).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Mapping
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from dbt_kafka_sync.cli import debugger_output, output
from dbt_kafka_sync.errors import ConfigError, StateError, SyncError, quote_list

EXIT_OK, EXIT_FAILED, EXIT_BUG = 0, 1, 2

F = TypeVar("F", bound=Callable[..., Any])


def _configure_logging(_ctx: click.Context, _param: click.Parameter, level: str) -> str:
    # Only this tool's loggers follow --log-level: libraries such as botocore log request
    # details, credentials included, at debug level.
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("dbt_kafka_sync").setLevel(level.upper())
    return level


def _project_options(command: F) -> F:
    """Options that locate the dbt project, the profiles and the state; bundled as `options`."""

    @wraps(command)
    def wrapper(**kwargs: Any) -> Any:
        from dbt_kafka_sync.dbt.selection import Selection
        from dbt_kafka_sync.runner.context import RunOptions

        selection = Selection(
            kwargs.pop("select", ()), kwargs.pop("exclude", ()), kwargs.pop("dbt_state", None)
        )
        options = RunOptions(
            project_dir=kwargs.pop("project_dir"),
            profiles_dir=kwargs.pop("profiles_dir"),
            target=kwargs.pop("target"),
            dbt_target=kwargs.pop("dbt_target"),
            selection=selection,
            ignore_run_results=kwargs.pop("ignore_run_results", False),
            state_path=kwargs.pop("state_path"),
        )
        return command(options=options, **kwargs)

    decorators = [
        click.option(
            "--log-level",
            type=click.Choice(["debug", "info", "warning", "error"]),
            default="info",
            show_default=True,
            expose_value=False,
            is_eager=True,
            callback=_configure_logging,
        ),
        click.option(
            "--project-dir",
            type=click.Path(file_okay=False, path_type=Path),
            default=Path("."),
            envvar="DBT_PROJECT_DIR",
            show_default=True,
            help="The dbt project (holds dbt_project.yml and target/manifest.json).",
        ),
        click.option(
            "--profiles-dir",
            type=click.Path(file_okay=False, path_type=Path),
            default=None,
            help="Folder of profiles.yml. Default: DBT_PROFILES_DIR, the project, ~/.dbt.",
        ),
        click.option("--target", "-t", default=None, help="Output of the kafka_sync profile."),
        click.option(
            "--dbt-target",
            default=None,
            envvar="DBT_TARGET",
            help="Output of the dbt profile the models were built with. Default: its target.",
        ),
        click.option(
            "--state-path",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="The state file. Default: state_path of the profile "
            "(.dbt_kafka_sync/state.duckdb in the project).",
        ),
    ]
    for decorator in reversed(decorators):
        wrapper = decorator(wrapper)
    return wrapper  # type: ignore[return-value]


def _select_option(command: F) -> F:
    """--select, --exclude and --state: dbt's node selection syntax."""
    decorators = [
        click.option(
            "--select",
            "-s",
            multiple=True,
            help="Only these models, in dbt's selection syntax (names, tag:, path:, config.,"
            " +graph operators, state:modified); repeat or separate with spaces.",
        ),
        click.option(
            "--exclude",
            multiple=True,
            help="Leave out these models (dbt's selection syntax, as --select).",
        ),
        click.option(
            "--state",
            "dbt_state",
            type=click.Path(file_okay=False, path_type=Path, resolve_path=True),
            default=None,
            help="Folder of the manifest.json that state: selectors compare with.",
        ),
    ]
    for decorator in reversed(decorators):
        command = decorator(command)
    return command


_run_results_option = click.option(
    "--ignore-run-results",
    is_flag=True,
    help="Also sync models whose last dbt run (target/run_results.json) failed or skipped them.",
)
_full_refresh_option = click.option(
    "--full-refresh",
    is_flag=True,
    help="Also resend the rows that did not change, as added.",
)


def _handle_errors(command: F) -> F:
    """Turn handled errors into exit 1 and bugs into exit 2, each with a readable message."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except SyncError as exc:
            click.secho(f"Error: {exc.render()}", fg="red", err=True)
            sys.exit(EXIT_FAILED)
        except (click.exceptions.Abort, click.ClickException):
            raise  # click prints these itself (e.g. "Aborted!" when a prompt is declined)
        except Exception as exc:
            logging.getLogger(__name__).debug("unexpected error", exc_info=True)
            click.secho(
                f"Unexpected error ({type(exc).__name__}): {exc}\n"
                "This is a bug in dbt-kafka-sync; rerun with --log-level debug and report it.",
                fg="red",
                err=True,
            )
            sys.exit(EXIT_BUG)

    return wrapper  # type: ignore[return-value]


class _RunByDefault(click.Group):
    """`dbt-kafka-sync [OPTIONS]` means `dbt-kafka-sync run [OPTIONS]`.

    Options may also come before the command (`dbt-kafka-sync --log-level debug runs`).
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] in _GROUP_FLAGS:
            return super().parse_args(ctx, args)
        position = _command_position(args, self.commands)
        if position is None:
            args = ["run", *args]
        else:
            args = [args[position], *args[:position], *args[position + 1 :]]
        return super().parse_args(ctx, args)


_GROUP_FLAGS = {"--help", "-h", "--version"}
# options that take no value
_FLAGS = {*_GROUP_FLAGS, "--full-refresh", "--yes", "-y", "--force", "--ignore-run-results"}


def _command_position(args: list[str], commands: Mapping[str, object]) -> int | None:
    """Where the command name is, skipping option values (`--log-level debug` is no command)."""
    expects_value = False
    for index, arg in enumerate(args):
        if expects_value:
            expects_value = False
        elif arg.startswith("-"):
            expects_value = arg not in _FLAGS and "=" not in arg
        elif arg in commands:
            return index
        else:
            return None  # a positional argument before any command: not ours to move
    return None


@click.group(cls=_RunByDefault, context_settings={"help_option_names": ["--help", "-h"]})
@click.version_option(package_name="dbt-kafka-sync")
def main() -> None:
    """Publish dbt models to Kafka: one message per added, changed or removed row.

    Without a command, runs `dbt-kafka-sync run`.
    """


@main.command("run")
@_project_options
@_select_option
@_full_refresh_option
@_run_results_option
@_handle_errors
def run_command(options: Any, full_refresh: bool) -> None:
    """Publish what changed in every configured model since the last run."""
    from dbt_kafka_sync.runner.alerting import load_alerting
    from dbt_kafka_sync.runner.alerting import send_run_alerts as alert
    from dbt_kafka_sync.runner.context import RunReport, load_context, new_run_id
    from dbt_kafka_sync.runner.results import recording_results
    from dbt_kafka_sync.runner.run import run

    report = RunReport(new_run_id())
    alerting = None
    try:
        with recording_results(options, report, full_refresh):  # written first, whatever happens
            alerting = load_alerting(options)
            run(load_context(options), full_refresh, report)
    except Exception as exc:  # alert, then let _handle_errors report it as usual
        error = exc.render() if isinstance(exc, SyncError) else f"a bug: {type(exc).__name__}"
        output.print_alerts(alert(alerting, report, error))
        raise
    output.print_run(report)
    output.print_alerts(alert(alerting, report))
    if not report.ok:
        sys.exit(EXIT_FAILED)


@main.command("plan")
@_project_options
@_select_option
@_full_refresh_option
@_run_results_option
@_handle_errors
def plan_command(options: Any, full_refresh: bool) -> None:
    """Show what `run` would publish (counts and sample messages); publish nothing."""
    from dbt_kafka_sync.runner.context import RunReport, load_context
    from dbt_kafka_sync.runner.results import recording_results
    from dbt_kafka_sync.runner.run import plan

    report = RunReport("plan", command="plan")
    with recording_results(options, report, full_refresh):
        plan(load_context(options), full_refresh, report)
    output.print_plan(report)
    if not report.ok:
        sys.exit(EXIT_FAILED)


@main.command("runs")
@_project_options
@click.option(
    "--limit",
    default=20,
    show_default=True,
    type=click.IntRange(min=1),
    help="How many runs to list.",
)
@_handle_errors
def runs_command(options: Any, limit: int) -> None:
    """List recent runs, newest first."""
    from dbt_kafka_sync.runner.history import recent_runs

    output.print_runs(recent_runs(options, limit))


@main.command("show")
@click.argument("run_id")
@_project_options
@click.option("--rows", default=100, show_default=True, help="Failed rows to show at most.")
@debugger_output.message_filters
@_handle_errors
def show_command(options: Any, run_id: str, rows: int, **filters: Any) -> None:
    """Show one run: each sync's counts and the rows that failed; --messages: what it sent."""
    from dbt_kafka_sync.errors import StateError
    from dbt_kafka_sync.runner.history import run_details, run_messages

    details = run_details(options, run_id, rows)
    if details is None:
        raise StateError(f"no run '{run_id}'", hint="`dbt-kafka-sync runs` lists the run ids")
    output.print_run_details(details)
    wanted = debugger_output.message_filter(**filters)
    if wanted is not None:
        debugger_output.print_run_messages(run_messages(options, run_id, wanted), wanted)


@main.command("messages")
@_project_options
@click.option("--key", required=True, help=debugger_output.KEY_HELP)
@click.option("--model", help="Only this model's messages (its name).")
@click.option(
    "--limit",
    default=100,
    show_default=True,
    type=click.IntRange(min=1),
    help="Messages to list at most.",
)
@_handle_errors
def messages_command(options: Any, key: str, model: str | None, limit: int) -> None:
    """Follow one key across runs: every message recorded for it, newest first."""
    from dbt_kafka_sync.runner.history import messages_for_key

    debugger_output.print_key_history(key, messages_for_key(options, key, model, limit))


@main.command("report")
@click.argument("run_id", required=False)
@_project_options
@_handle_errors
def report_command(options: Any, run_id: str | None) -> None:
    """Write a run's HTML report (default: the latest run) into the dbt project's target/."""
    from dbt_kafka_sync.report.html import render_report
    from dbt_kafka_sync.runner.history import report_data, report_path

    data = report_data(options, run_id)
    path = report_path(options, data.details.run.run_id)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_report(data), encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot write the report to {path}: {exc.strerror or exc}",
            hint="check that the dbt project's target folder is writable",
        ) from None
    click.echo(f"report of run {data.details.run.run_id}: {path}")


@main.command("reset")
@click.argument("model")
@_project_options
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@_handle_errors
def reset_command(options: Any, model: str, yes: bool) -> None:
    """Forget MODEL's snapshot: its next run sends rows as on a first run.

    MODEL is a model's name (every version of it), `name.vN` (one version) or a unique_id.
    """
    from dbt_kafka_sync.runner.history import reset, reset_candidates

    found = reset_candidates(options, model)
    if not found:
        click.echo(f"nothing to reset: no sync of '{model}' in the state")
        return
    packages = sorted({sync.package for sync in found})
    if yes and len(packages) > 1:
        raise StateError(
            f"'{model}' names models of several packages ({quote_list(packages)}):"
            f" {quote_list([sync.model for sync in found])}; nothing was reset",
            hint="name one of them by its unique_id",
        )
    if not yes:
        output.print_reset_plan(model, found, packages)
        click.confirm("Forget these? Their next run follows initial_sync again", abort=True)
    for identity in reset(options, [sync.sync_id for sync in found]):
        click.echo(f"reset {identity}")


@main.command("restore-state")
@_project_options
@click.option(
    "--force",
    is_flag=True,
    help="Restore even when the state file is not damaged.",
)
@_handle_errors
def restore_state_command(options: Any, force: bool) -> None:
    """Put the last good copy of a damaged state file in its place (the file is kept aside)."""
    from dbt_kafka_sync.runner.history import restore_state

    output.print_restored(restore_state(options, force))


@main.command("copy-state")
@_project_options
@_select_option
@click.option(
    "--to",
    "destination",
    type=click.Choice(["warehouse", "local"]),
    required=True,
    help="Where the state goes: from the local file to the warehouse schema, or back.",
)
@_handle_errors
def copy_state_command(options: Any, destination: str) -> None:
    """Copy the state between the local file and the warehouse; nothing is sent again."""
    from dbt_kafka_sync.runner.context import load_context
    from dbt_kafka_sync.runner.copy_state import copy_state

    copied = copy_state(load_context(options), to_warehouse=destination == "warehouse")
    output.print_copied(copied)
    if any(item.status == "refused" for item in copied):
        sys.exit(EXIT_FAILED)


@main.command("debug")
@_project_options
@_select_option
@_handle_errors
def debug_command(options: Any) -> None:
    """Check the profiles, the manifest, the warehouse, Kafka and every topic; send nothing."""
    from dbt_kafka_sync.debug import run_checks

    failed = False
    for item in run_checks(
        options.project_dir,
        options.profiles_dir,
        options.target,
        options.selection,
        options.dbt_target,
    ):
        if isinstance(item, dict):
            output.print_profile(item)
            continue
        output.print_check(item)
        failed |= not item.ok
    click.echo("Some checks failed." if failed else "All checks passed!")
    if failed:
        sys.exit(EXIT_FAILED)
