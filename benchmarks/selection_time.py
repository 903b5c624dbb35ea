"""Time of a run's selection step (manifest -> synced models -> --select), in fresh processes.

Each timing runs in a new Python process, as a run does: dbt-core's import is part of the
cost of a graph selector. Usage:

    python benchmarks/selection_time.py PROJECT_DIR [--synthetic N] [--repeats 5]

PROJECT_DIR is a parsed dbt project (target/manifest.json); with --synthetic N, a copy of
its manifest grown to N synced models (a chain of refs) is timed instead.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STEP = """
import sys, time
from pathlib import Path
started = time.perf_counter()
from dbt_kafka_sync.dbt.manifest import load_manifest, synced_models
from dbt_kafka_sync.dbt.project import load_dbt_project
from dbt_kafka_sync.dbt.selection import Selection, select_models
project = load_dbt_project(Path(sys.argv[1]))
models = synced_models(load_manifest(project.manifest_path))
chosen = select_models(models, Selection(tuple(sys.argv[2:])), project)
print(f"{time.perf_counter() - started:.3f} {len(models)} {len(chosen)}")
"""


def grow(project: Path, count: int, into: Path) -> Path:
    """A copy of the project whose manifest holds `count` synced models, each ref'ing the last."""
    shutil.copytree(project, into, ignore=shutil.ignore_patterns("dbt_packages", "logs"))
    path = into / "target" / "manifest.json"
    manifest = json.loads(path.read_text())
    template = next(
        node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and "kafka_sync" in node["config"]["meta"]
    )
    package = template["package_name"]
    previous = None
    for index in range(count):
        name = f"synthetic_{index:05d}"
        node = copy.deepcopy(template)
        node.update(name=name, alias=name, unique_id=f"model.{package}.{name}")
        node["fqn"] = [package, "synthetic", name]
        node["config"]["tags"] = node["tags"] = ["even"] if index % 2 == 0 else []
        node["depends_on"]["nodes"] = [previous] if previous else []
        manifest["nodes"][node["unique_id"]] = node
        previous = node["unique_id"]
    manifest["child_map"] = manifest["parent_map"] = {}
    path.write_text(json.dumps(manifest))
    return into


def timings(project: Path, selectors: list[str], repeats: int) -> list[float]:
    runs = []
    for _ in range(repeats):
        out = subprocess.run(
            [sys.executable, "-c", STEP, str(project), *selectors],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONPATH": str(REPO), "PATH": ""},
        ).stdout.split()
        runs.append(float(out[0]))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("project", type=Path)
    parser.add_argument("--synthetic", type=int, default=0)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        project = args.project
        if args.synthetic:
            project = grow(args.project, args.synthetic, Path(scratch) / "project")
        cases = {
            "no selector": [],
            "plain names": ["customers", "orders"],
            "graph selector": ["+orders", "tag:even,customers+"],
        }
        for label, selectors in cases.items():
            runs = timings(project, selectors, args.repeats)
            print(f"{label:15} {min(runs):.3f}-{max(runs):.3f} s ({args.repeats} runs)")


if __name__ == "__main__":
    main()
