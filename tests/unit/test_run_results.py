"""Which models the last dbt invocation did not build, from target/run_results.json."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from dbt_kafka_sync.dbt.run_results import NotBuilt, models_not_built
from dbt_kafka_sync.errors import ManifestError

ERROR = "Runtime Error in model a (models/a.sql)\n  Catalog Error: no table x\n\n  LINE 3: from x"


def write_target(
    tmp_path: Path,
    results: object,
    results_newer: bool = True,
    invocations: tuple[str | None, str | None] = (None, None),
) -> Path:
    """manifest.json and run_results.json, with these invocation ids (run results' first)."""
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps(_with_invocation({}, invocations[1])))
    run_results = tmp_path / "run_results.json"
    run_results.write_text(json.dumps(_with_invocation({"results": results}, invocations[0])))
    manifest_time = manifest.stat().st_mtime
    later = manifest_time + (10 if results_newer else -10)
    os.utime(run_results, (later, later))
    return manifest


def _with_invocation(document: dict[str, object], invocation: str | None) -> dict[str, object]:
    return (
        document if invocation is None else {**document, "metadata": {"invocation_id": invocation}}
    )


def not_built(manifest: Path) -> dict[str, NotBuilt]:
    return models_not_built(manifest, json.loads(manifest.read_text()))


def test_errors_and_skips_are_not_built(tmp_path: Path) -> None:
    manifest = write_target(
        tmp_path,
        [
            {"unique_id": "model.p.a", "status": "error", "message": ERROR},
            {"unique_id": "model.p.b", "status": "skipped", "message": None},
            {"unique_id": "model.p.c", "status": "success", "message": "OK"},
        ],
    )
    found = not_built(manifest)

    assert sorted(found) == ["model.p.a", "model.p.b"]  # absent models sync as usual
    assert found["model.p.a"].reason() == (
        "its last dbt run ended in error: Runtime Error in model a (models/a.sql)"
        " Catalog Error: no table x"
    )
    assert found["model.p.b"].reason() == (
        "its last dbt run skipped it (a model it depends on failed)"
    )


def test_results_older_than_the_manifest_do_not_count(tmp_path: Path) -> None:
    results = [{"unique_id": "model.p.a", "status": "error", "message": ERROR}]
    assert not_built(write_target(tmp_path, results, results_newer=False)) == {}


def test_no_run_results_means_every_model_syncs(tmp_path: Path) -> None:
    (tmp_path / "manifest.json").write_text("{}")
    assert not_built(tmp_path / "manifest.json") == {}


def test_a_damaged_run_results_is_a_clear_error(tmp_path: Path) -> None:
    manifest = write_target(tmp_path, [{"status": "error"}])
    with pytest.raises(ManifestError, match="--ignore-run-results"):
        not_built(manifest)


ERRORED = [{"unique_id": "model.p.a", "status": "error", "message": ERROR}]


@pytest.mark.parametrize(
    ("results_newer", "invocations", "counted"),
    [
        (False, ("i-1", "i-1"), True),  # target/ copied between CI jobs: times reset, ids kept
        (True, ("i-1", "i-2"), False),  # `dbt parse` since the run: a new manifest
    ],
    ids=["same-invocation-older-file", "other-invocation-newer-file"],
)
def test_the_invocation_id_decides_over_file_times(
    tmp_path: Path, results_newer: bool, invocations: tuple[str, str], counted: bool
) -> None:
    manifest = write_target(tmp_path, ERRORED, results_newer, invocations)
    assert bool(not_built(manifest)) is counted


def test_malformed_results_are_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="--ignore-run-results"):
        not_built(write_target(tmp_path, [None]))
