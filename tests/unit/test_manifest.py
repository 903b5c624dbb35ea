from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from dbt_kafka_sync.dbt.manifest import load_manifest, synced_models
from dbt_kafka_sync.errors import ConfigError, ManifestError

BLOCK = {"primary_key": "id", "topic": "t"}


def node(name: str, config_meta: Any = None, meta: Any = None) -> dict[str, Any]:
    return {
        "resource_type": "model",
        "unique_id": f"model.proj.{name}",
        "name": name,
        "database": "warehouse",
        "schema": "main",
        "alias": name,
        "original_file_path": f"models/{name}.sql",
        "patch_path": "proj://models/schema.yml",
        "config": {"meta": config_meta or {}},
        "meta": meta or {},
    }


def manifest(*nodes: dict[str, Any]) -> dict[str, Any]:
    return {"nodes": {n["unique_id"]: n for n in nodes}}


def test_missing_manifest_tells_how_to_make_one(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as raised:
        load_manifest(tmp_path / "target" / "manifest.json")
    assert "run `dbt parse`" in raised.value.render()


def test_unreadable_manifest(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text("{not json")
    with pytest.raises(ManifestError, match="cannot read the dbt manifest"):
        load_manifest(path)


def test_finds_block_in_config_meta_or_node_meta() -> None:
    models = synced_models(
        manifest(
            node("a", config_meta={"kafka_sync": BLOCK}),
            node("b", meta={"kafka_sync": BLOCK}),
            node("c", config_meta={"owner": "x"}),
        )
    )
    assert [m.name for m in models] == ["a", "b"]
    assert models[0].location == "models/a.sql, described in models/schema.yml"


def test_one_bad_model_fails_validation_of_the_whole_manifest() -> None:
    with pytest.raises(ConfigError, match="model 'b'"):
        synced_models(
            manifest(
                node("a", config_meta={"kafka_sync": BLOCK}),
                node("b", config_meta={"kafka_sync": {"topik": "t"}}),
            )
        )


def test_manifest_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest(node("a", config_meta={"kafka_sync": BLOCK}))))
    assert [m.identifier for m in synced_models(load_manifest(path))] == ["a"]
