"""The results file: target/kafka_sync_results.json, what a run did, for CI systems.

Like dbt's run_results.json: rewritten by every `run` and `plan`, also one that fails.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from dbt_kafka_sync import __version__
from dbt_kafka_sync.state.history import SyncOutcome

RESULTS_FILE = "kafka_sync_results.json"
SCHEMA_VERSION = "dbt-kafka-sync/results/v1"
MAX_FAILED_ROWS = 100  # per sync; the counts are always exact


@dataclass(frozen=True)
class Invocation:
    """One command as it was called.

    Attributes:
        args: the command's options by name (paths, selection, flags): never a secret,
            which only profiles.yml and the environment hold.
        target: the kafka_sync output; None when the run stopped before reading it.
    """

    run_id: str
    command: str
    target: str | None
    args: Mapping[str, Any]
    started_at: datetime


def results_document(
    invocation: Invocation,
    outcomes: Sequence[SyncOutcome],
    status: str,
    error: str | None,
    finished_at: datetime,
) -> dict[str, Any]:
    """The results file's content (its schema is in the README, "Results file").

    Args:
        invocation: the command as it was called.
        outcomes: each sync's outcome, in the order they ran.
        status: `success`, `failed` (some sync or row failed) or `error` (the run stopped).
        error: why the run stopped, for status `error`.
        finished_at: when the command ended.
    """
    return {
        "metadata": {
            "schema_version": SCHEMA_VERSION,
            "dbt_kafka_sync_version": __version__,
            "generated_at": _timestamp(finished_at),
            "run_id": invocation.run_id,
            "command": invocation.command,
            "target": invocation.target,
            "args": dict(invocation.args),
        },
        "started_at": _timestamp(invocation.started_at),
        "elapsed_time": round((finished_at - invocation.started_at).total_seconds(), 3),
        "status": status,
        "error": error,
        "results": [sync_result(outcome) for outcome in outcomes],
    }


def sync_result(outcome: SyncOutcome) -> dict[str, Any]:
    """One sync's entry of the results file."""
    shown = outcome.recorded_failures()[:MAX_FAILED_ROWS]
    return {
        "unique_id": outcome.unique_id,
        "model": outcome.model,
        "sync": outcome.sync,
        "topic": outcome.topic,
        "status": outcome.result_status,
        "counts": asdict(outcome.counts),
        "messages": outcome.message_counts(),
        "timing": {
            "started_at": _timestamp(outcome.started_at) if outcome.started_at else None,
            "elapsed_time": None if outcome.seconds is None else round(outcome.seconds, 3),
        },
        "error": outcome.error,
        "skipped_reason": outcome.skipped or outcome.nothing_sent,
        "failed_rows": [
            {"key": row.row_key, "event": row.event, "reason": row.reason} for row in shown
        ],
        "failed_rows_truncated": len(shown) < outcome.failed + outcome.rejected,
        "notes": list(outcome.notes),
    }


def write_results(target_dir: Path, document: Mapping[str, Any]) -> Path:
    """Write the results file atomically: a reader sees the old file or the new, whole."""
    target_dir.mkdir(parents=True, exist_ok=True)
    path = target_dir / RESULTS_FILE
    handle, temporary = tempfile.mkstemp(dir=target_dir, prefix=f".{RESULTS_FILE}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            json.dump(document, out, indent=2, ensure_ascii=False)
            out.write("\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _timestamp(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
