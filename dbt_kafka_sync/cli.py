"""The `dbt-kafka-sync` command. Thin: parse options, call the runner, map errors to exit codes.

Exit codes: 0 every message delivered; 1 a handled failure (bad config, unreachable
broker, rows that failed); 2 an unexpected error (a bug: please report it).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from dbt_kafka_sync.errors import SyncError

EXIT_OK, EXIT_FAILED, EXIT_BUG = 0, 1, 2

F = TypeVar("F", bound=Callable[..., Any])


def _configure_logging(_ctx: click.Context, _param: click.Parameter, level: str) -> str:
    logging.basicConfig(level=level.upper(), format="%(levelname)s %(name)s: %(message)s")
    return level


def _common_options(command: F) -> F:
    options = [
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
            "--select",
            "-s",
            multiple=True,
            help="Sync only these models (name or unique_id); repeat for several.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _handle_errors(command: F) -> F:
    """Turn handled errors into exit 1 and bugs into exit 2, each with a readable message."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except SyncError as exc:
            click.secho(f"Error: {exc.render()}", fg="red", err=True)
            sys.exit(EXIT_FAILED)
        except click.exceptions.Exit:
            raise
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
    """`dbt-kafka-sync [OPTIONS]` means `dbt-kafka-sync run [OPTIONS]`."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args or (args[0] not in self.commands and args[0] not in _GROUP_FLAGS):
            args = ["run", *args]
        return super().parse_args(ctx, args)


_GROUP_FLAGS = {"--help", "-h", "--version"}


@click.group(cls=_RunByDefault, context_settings={"help_option_names": ["--help", "-h"]})
@click.version_option(package_name="dbt-kafka-sync")
def main() -> None:
    """Publish dbt models to Kafka: one message per added, changed or removed row.

    Without a command, runs `dbt-kafka-sync run`.
    """


@main.command("run")
@_common_options
@_handle_errors
def run_command(
    project_dir: Path = Path("."),
    profiles_dir: Path | None = None,
    target: str | None = None,
    dbt_target: str | None = None,
    select: tuple[str, ...] = (),
) -> None:
    """Publish every configured model's rows to Kafka."""
    from dbt_kafka_sync.runner import RunOptions, load_context, run

    options = RunOptions(project_dir, profiles_dir, target, dbt_target, select)
    report = run(load_context(options))
    for result in report.results:
        _print_result(result)
    if not report.ok:
        sys.exit(EXIT_FAILED)


def _print_result(result: Any) -> None:
    name = f"{result.model}" + ("" if result.sync == "default" else f" [{result.sync}]")
    if result.error:
        click.secho(f"FAIL {name}: {result.error}", fg="red")
        return
    status, colour = ("OK  ", "green") if result.ok else ("FAIL", "red")
    click.secho(
        f"{status} {name} -> {result.topic}: {result.delivered} delivered, {result.failed} failed",
        fg=colour,
    )
    for row_key, reason in result.failures:
        click.echo(f"       row key {row_key!r}: {reason}")
