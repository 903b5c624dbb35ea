"""dbt's target/run_results.json: which models the last dbt invocation failed to build.

A model whose last `dbt run` ended in error (or was skipped because a model it depends on
failed) still holds its previous rows, or half of a change: syncing it would publish
nothing true. It is left for the next run that builds it.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dbt_kafka_sync.errors import ManifestError

log = logging.getLogger(__name__)

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


def models_not_built(manifest_path: Path, manifest: dict[str, Any]) -> dict[str, NotBuilt]:
    """The models (by unique_id) whose last dbt execution failed or was skipped.

    Only a run_results.json of the dbt invocation that wrote the manifest counts (the same
    `invocation_id`; files without one: a run_results.json newer than the manifest). One
    from an earlier invocation belongs to a project that has changed since (`dbt parse`).
    """
    path = manifest_path.with_name(RUN_RESULTS)
    if not path.is_file():
        return {}
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if not _same_invocation(document, manifest, path, manifest_path):
            log.info("%s is from an earlier dbt invocation than the manifest: not used", path)
            return {}
        return {
            str(result["unique_id"]): NotBuilt(result["status"], _first_paragraph(result))
            for result in document["results"]
            if result.get("status") in NOT_BUILT
        }
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ManifestError(
            f"cannot read dbt's {path}: {exc!r}",
            hint="run dbt again to rewrite it, or pass --ignore-run-results",
        ) from None


def _same_invocation(
    run_results: dict[str, Any], manifest: dict[str, Any], path: Path, manifest_path: Path
) -> bool:
    # dbt writes both files in every run or build, with the invocation's id: a copy of
    # target/ between CI jobs keeps the ids, not always the files' times.
    ids = [_invocation_id(document) for document in (run_results, manifest)]
    if None not in ids:
        return ids[0] == ids[1]
    return path.stat().st_mtime > manifest_path.stat().st_mtime


def _invocation_id(document: dict[str, Any]) -> str | None:
    metadata = document.get("metadata")
    found = metadata.get("invocation_id") if isinstance(metadata, dict) else None
    return found if isinstance(found, str) and found else None


def _first_paragraph(result: dict[str, object]) -> str | None:
    # dbt's message goes on with the failing SQL after a blank line: the summary needs its head.
    message = result.get("message")
    if not isinstance(message, str) or not message.strip():
        return None
    head = message.strip().split("\n\n", 1)[0].split("\n  \n", 1)[0]
    return " ".join(head.split())
