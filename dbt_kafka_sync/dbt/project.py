"""dbt_project.yml: the dbt project's profile name and where dbt writes its artifacts."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from dbt_kafka_sync.errors import ProfileError


@dataclass(frozen=True)
class DbtProject:
    """The parts of dbt_project.yml this tool needs."""

    root: Path
    name: str
    profile: str
    target_path: Path

    @property
    def manifest_path(self) -> Path:
        """Where `dbt parse` / `dbt run` wrote the manifest."""
        return self.target_path / "manifest.json"


def load_dbt_project(project_dir: Path) -> DbtProject:
    """Read dbt_project.yml for the profile name and the target path."""
    path = project_dir / "dbt_project.yml"
    if not path.is_file():
        raise ProfileError(
            f"no dbt_project.yml in {project_dir}",
            hint="run from the dbt project's folder or pass --project-dir",
        )
    data = read_yaml(path)
    target_path = Path(os.environ.get("DBT_TARGET_PATH") or data.get("target-path") or "target")
    return DbtProject(
        root=project_dir,
        name=str(data.get("name") or project_dir.name),
        profile=str(data.get("profile") or ""),
        target_path=target_path if target_path.is_absolute() else project_dir / target_path,
    )


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML file that must hold a mapping."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ProfileError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{path} is empty or not a mapping")
    return data
