"""Fixtures for the integration tier: a real Kafka broker, real dbt, real DuckDB and PostgreSQL.

Tests that take `project` run on DuckDB; a module or test marked with
`pytest.mark.parametrize("project", ENGINES, indirect=True)` (harness.ENGINES) runs on
both engines: the example project built by dbt-duckdb and by dbt-postgres.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import local_servers.kafka as local_kafka
import local_servers.postgres as local_postgres
import pytest
from harness import TEST_LEASE_SECONDS, Kafka, Project, copy_example, postgres_env


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.path):
            item.add_marker(pytest.mark.integration)


@contextmanager
def one_worker_at_a_time(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Test workers (pytest -n) start their servers in turn.

    On a fresh machine the first one fetches Kafka's jars and creates PostgreSQL's user;
    the others must not do it at the same time.
    """
    lock_file = tmp_path_factory.getbasetemp().parent / "dks-servers.lock"
    with lock_file.open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


@pytest.fixture(scope="session")
def kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kafka]:
    """A real broker: KAFKA_BOOTSTRAP_SERVERS if set, else a local one started for the session."""
    external = os.environ.get("KAFKA_BOOTSTRAP_SERVERS")
    if external:
        yield Kafka(external, None)
        return
    with one_worker_at_a_time(tmp_path_factory):
        broker = local_kafka.start(tmp_path_factory.mktemp("kafka"))
    try:
        yield Kafka(broker.plaintext, broker)
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[local_postgres.Server]:
    """A real PostgreSQL server, started for the session the first time a test needs it."""
    with one_worker_at_a_time(tmp_path_factory):
        server = local_postgres.start(tmp_path_factory.mktemp("postgres"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def project(request: pytest.FixtureRequest, tmp_path: Path, kafka: Kafka) -> Project:
    """A fresh copy of the example project for one test, on DuckDB unless parametrized.

    A parameter "<engine>+warehouse" keeps the state in the warehouse.
    """
    engine, _, state = getattr(request, "param", "duckdb").partition("+")
    engine_env = postgres_env(request.getfixturevalue("postgres")) if engine == "postgres" else {}
    project = copy_example(tmp_path / "project", kafka, engine_env)
    if state == "warehouse":
        project.use_state({"type": "warehouse", "lease_seconds": TEST_LEASE_SECONDS})
    return project


@pytest.fixture(scope="session")
def built_project(tmp_path_factory: pytest.TempPathFactory, kafka: Kafka) -> Project:
    """One copy of the example project, built once, shared by the session's tests.

    Tests that share it give each their own kafka_sync output (--target): a snapshot
    belongs to a target, so each test's first run publishes every row. A test that
    changes a file of it puts the file back.
    """
    project = copy_example(tmp_path_factory.mktemp("shared") / "project", kafka)
    project.build(kafka)
    return project
