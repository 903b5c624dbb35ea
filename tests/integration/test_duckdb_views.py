"""A dbt-duckdb model built as a view is read as dbt evaluated it: attachments and settings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import yaml
from harness import Kafka

VIEW = """{{ config(materialized='view', meta={'kafka_sync': {'primary_key': 'id',
    'key_column': 'id', 'topic': var('topic')}}) }}
select c.id, c.code, strftime(timestamptz '2024-01-01 00:00:00+00', '%H:%M') as local_time
from other.main.codes c
"""


def test_a_view_over_an_attached_database_with_settings(tmp_path: Path, kafka: Kafka) -> None:
    with duckdb.connect(str(tmp_path / "other.duckdb")) as other:
        other.execute("CREATE TABLE codes AS SELECT 1 AS id, 'a' AS code")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "coded.sql").write_text(VIEW)
    (tmp_path / "dbt_project.yml").write_text(
        yaml.safe_dump({"name": "views", "profile": "views", "config-version": 2})
    )
    dbt_output = {
        "type": "duckdb",
        "path": "warehouse.duckdb",
        "threads": 1,
        "attach": [{"path": str(tmp_path / "other.duckdb"), "alias": "other"}],
        "settings": {"TimeZone": "Asia/Tokyo"},  # changes the view's local_time
    }
    profiles = {
        "views": {"target": "dev", "outputs": {"dev": dbt_output}},
        "kafka_sync": {
            "target": "dev",
            "outputs": {"dev": {"bootstrap_servers": kafka.bootstrap_servers}},
        },
    }
    (tmp_path / "profiles.yml").write_text(yaml.safe_dump(profiles))
    env = {
        **os.environ,
        "DBT_PROFILES_DIR": str(tmp_path),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }
    env.pop("DBT_TARGET", None)
    topic = kafka.create_topic()

    def run(*command: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )

    dbt = str(Path(sys.executable).with_name("dbt"))
    built = run(dbt, "run", "--vars", json.dumps({"topic": topic}))
    assert built.returncode == 0, built.stdout

    synced = run(sys.executable, "-m", "dbt_kafka_sync", "--project-dir", str(tmp_path))

    assert synced.returncode == 0, synced.stdout + synced.stderr
    [record] = kafka.consume_all(topic)
    assert record.key == "1"
    assert json.loads(record.value or "") == {"id": 1, "code": "a", "local_time": "09:00"}
