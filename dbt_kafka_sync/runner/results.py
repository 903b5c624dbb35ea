"""The results file (target/kafka_sync_results.json), written however a command ends."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from dbt_kafka_sync.dbt.project import load_dbt_project
from dbt_kafka_sync.errors import SyncError
from dbt_kafka_sync.runner.context import (
    RunOptions,
    RunReport,
)

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


@contextmanager
def recording_results(options: RunOptions, report: RunReport, full_refresh: bool) -> Iterator[None]:
    """Write the results file (target/kafka_sync_results.json) when the command ends, however.

    A run stopped by an error gets one too, saying so, with the syncs done before it.
    """
    error: str | None = None
    try:
        yield
    except BaseException as exc:
        error = exc.render() if isinstance(exc, SyncError) else f"stopped by {type(exc).__name__}"
        raise
    finally:
        _write_results(options, report, full_refresh, error)


def _write_results(
    options: RunOptions, report: RunReport, full_refresh: bool, error: str | None
) -> None:
    from dbt_kafka_sync.report.results import Invocation, results_document, write_results

    args = {name: _plain(value) for name, value in vars(options).items() if name != "selection"}
    selection = options.selection
    args |= {
        "select": list(selection.select),
        "exclude": list(selection.exclude),
        "state": _plain(selection.state_dir),
    }
    invocation = Invocation(
        report.run_id,
        report.command,
        report.target,
        {**args, "full_refresh": full_refresh},
        report.started_at,
    )
    status = "error" if error else "success" if report.ok else "failed"
    document = results_document(
        invocation, report.results, status, error, datetime.now(timezone.utc)
    )
    try:
        write_results(load_dbt_project(options.project_dir.resolve()).target_path, document)
    except (OSError, SyncError) as exc:  # the run's own outcome matters more
        log.warning("could not write the results file: %s", exc)


def _plain(value: object) -> object:
    """An option's value as JSON holds it."""
    if isinstance(value, Path):
        return str(value)
    return list(value) if isinstance(value, tuple) else value
