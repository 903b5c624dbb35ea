"""Reads dbt's manifest.json and finds the models that carry a `kafka_sync` block."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dbt_kafka_sync.config.sync import SyncConfig, parse_syncs
from dbt_kafka_sync.errors import ManifestError

META_KEY = "kafka_sync"


@dataclass(frozen=True)
class SyncedModel:
    """A dbt model with its validated syncs and where its rows live."""

    unique_id: str
    name: str
    database: str | None
    schema: str
    identifier: str
    location: str
    syncs: tuple[SyncConfig, ...]


def load_manifest(path: Path) -> dict[str, Any]:
    """Read manifest.json, telling the user how to produce it when it is missing."""
    if not path.is_file():
        raise ManifestError(
            f"no dbt manifest at {path}",
            hint="run `dbt parse` (or `dbt run`) in the dbt project first, "
            "or point --project-dir at the project that holds target/manifest.json",
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ManifestError(
            f"cannot read the dbt manifest {path}: {exc}",
            hint="run `dbt parse` again to rewrite it",
        ) from None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("nodes"), dict):
        raise ManifestError(f"{path} is not a dbt manifest (no 'nodes')")
    return manifest


def synced_models(manifest: dict[str, Any]) -> list[SyncedModel]:
    """Return every model with a `kafka_sync` block, all validated before any is synced."""
    models = [
        _to_synced_model(node)
        for node in manifest["nodes"].values()
        if node.get("resource_type") == "model" and _sync_block(node) is not None
    ]
    return sorted(models, key=lambda model: model.unique_id)


def _sync_block(node: dict[str, Any]) -> object | None:
    # dbt >= 1.10 keeps meta under config; older projects and some versions mirror it on the node.
    for meta in ((node.get("config") or {}).get("meta"), node.get("meta")):
        if isinstance(meta, dict) and META_KEY in meta:
            block: object = meta[META_KEY]
            return block
    return None


def _to_synced_model(node: dict[str, Any]) -> SyncedModel:
    location = _node_location(node)
    syncs = parse_syncs(node["name"], _sync_block(node), location)
    return SyncedModel(
        unique_id=node["unique_id"],
        name=node["name"],
        database=node.get("database"),
        schema=node["schema"],
        identifier=node.get("alias") or node["name"],
        location=location,
        syncs=tuple(syncs),
    )


def _node_location(node: dict[str, Any]) -> str:
    # meta may come from the SQL file, its schema.yml (patch_path) or dbt_project.yml.
    where = str(node.get("original_file_path") or node["unique_id"])
    patch = node.get("patch_path")
    if isinstance(patch, str) and "://" in patch:
        where += f", described in {patch.split('://', 1)[1]}"
    return where
