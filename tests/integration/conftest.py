"""Fixtures for the integration tier: a real Kafka broker, real dbt, real DuckDB."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import local_servers.kafka as local_kafka
import pytest
import yaml
from harness import EXAMPLE_PROJECT, REPO, Kafka, Project


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.path):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kafka]:
    """A real broker: KAFKA_BOOTSTRAP_SERVERS if set, else a local one started for the session."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield Kafka(external, None)
        return
    broker = local_kafka.start(tmp_path_factory.mktemp("kafka"))
    try:
        yield Kafka(broker.plaintext, broker)
    finally:
        broker.stop()


def copy_example(path: Path, kafka: Kafka) -> Project:
    """A fresh copy of integration_tests/ with dbt deps installed; not built yet."""
    shutil.copytree(
        EXAMPLE_PROJECT,
        path,
        ignore=shutil.ignore_patterns("target", "dbt_packages", "logs", ".dbt_kafka_sync"),
    )
    (path / "packages.yml").write_text(yaml.safe_dump({"packages": [{"local": str(REPO)}]}))
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_PROFILES_DIR": str(path),
    }
    env.pop("DBT_DUCKDB_PATH", None)
    project = Project(path, env)
    project.dbt("deps")
    return project


@pytest.fixture
def project(tmp_path: Path, kafka: Kafka) -> Project:
    """A fresh copy of the example project for one test."""
    return copy_example(tmp_path / "project", kafka)


@pytest.fixture(scope="module")
def built_project(tmp_path_factory: pytest.TempPathFactory, kafka: Kafka) -> Project:
    """One copy of the example project, built once, shared by a module's tests.

    Tests that share it give each their own kafka_sync output (--target): a snapshot
    belongs to a target, so each test's first run publishes every row.
    """
    project = copy_example(tmp_path_factory.mktemp("shared") / "project", kafka)
    project.build(kafka)
    return project
