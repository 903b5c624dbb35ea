"""dbt's target/run_results.json: which models the last dbt invocation failed to build.

A model whose last `dbt run` ended in error (or was skipped because a model it depends on
failed) still holds its previous rows, or half of a change: syncing it would publish
nothing true. It is left for the next run that builds it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from dbt_kafka_sync.errors import ManifestError

RUN_RESULTS = "run_results.json"
NOT_BUILT = ("error", "skipped")


@dataclass(frozen=True)
class NotBuilt:
    """A model the last dbt invocation did not build, and dbt's word for why."""

    status: str  # error | skipped
    message: str | None

    def reason(self) -> str:
        """Why its sync is skipped, as the run summary says it."""
        if self.status == "error":
            return f"its last dbt run ended in error: {self.message or 'no message'}"
        detail = f": {self.message}" if self.message else " (a model it depends on failed)"
        return f"its last dbt run skipped it{detail}"


def models_not_built(manifest_path: Path) -> dict[str, NotBuilt]:
    """The models (by unique_id) whose last dbt execution failed or was skipped.

    Only a run_results.json newer than the manifest counts: an older one belongs to an
    invocation before the manifest was rewritten (e.g. by `dbt parse`).
    """
    path = manifest_path.with_name(RUN_RESULTS)
    if not path.is_file() or path.stat().st_mtime <= manifest_path.stat().st_mtime:
        return {}
    try:
        results = json.loads(path.read_text(encoding="utf-8"))["results"]
        return {
            str(result["unique_id"]): NotBuilt(result["status"], _first_paragraph(result))
            for result in results
            if result.get("status") in NOT_BUILT
        }
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ManifestError(
            f"cannot read dbt's {path}: {exc!r}",
            hint="run dbt again to rewrite it, or pass --ignore-run-results",
        ) from None


def _first_paragraph(result: dict[str, object]) -> str | None:
    # dbt's message goes on with the failing SQL after a blank line: the summary needs its head.
    message = result.get("message")
    if not isinstance(message, str) or not message.strip():
        return None
    head = message.strip().split("\n\n", 1)[0].split("\n  \n", 1)[0]
    return " ".join(head.split())
