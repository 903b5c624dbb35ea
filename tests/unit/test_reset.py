"""`reset NAME`: which syncs a name matches, and what the command lists before it asks."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
import yaml
from click.testing import CliRunner

from dbt_kafka_sync.cli import main
from dbt_kafka_sync.state.local_file import local_bookkeeping, open_state
from dbt_kafka_sync.state.store import find_syncs, forget_syncs, snapshot_name, sync_id
from dbt_kafka_sync.state.tables import Bookkeeping

MODELS = ["model.a.customers", "model.b.customers", "model.a.orders.v2", "model.a.orders.v1"]


def remember(book: Bookkeeping, target: str, model: str) -> str:
    """A sync record with its snapshot table, as a commit leaves them."""
    sync = sync_id(target, model, "default")
    table = snapshot_name(sync)
    book.execute(f"CREATE TABLE {book.table(table)} (id INTEGER)")
    book.execute(
        f"INSERT INTO {book.table('syncs')} (sync_id, target, model, sync_name, snapshot_table)"
        " VALUES ($1, $2, $3, 'default', $4)",
        [sync, target, model, table],
    )
    return sync


def fill(path: Path) -> None:
    """A state file with a sync of each model for the target `dev`, and one for `prod`."""
    connection = duckdb.connect()
    open_state(connection, path, read_only=False)
    book = local_bookkeeping(connection)
    for model in MODELS:
        remember(book, "dev", model)
    remember(book, "prod", "model.a.customers")
    connection.close()


@pytest.fixture
def book(tmp_path: Path) -> Iterator[Bookkeeping]:
    fill(tmp_path / "state.duckdb")
    connection = duckdb.connect()
    open_state(connection, tmp_path / "state.duckdb", read_only=False)
    yield local_bookkeeping(connection)
    connection.close()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        pytest.param("customers", ["model.a.customers", "model.b.customers"], id="name-in-2-pkgs"),
        pytest.param("model.b.customers", ["model.b.customers"], id="unique-id"),
        pytest.param("orders", ["model.a.orders.v1", "model.a.orders.v2"], id="every-version"),
        pytest.param("orders.v2", ["model.a.orders.v2"], id="one-version"),
        pytest.param("model.a.orders.v1", ["model.a.orders.v1"], id="version-unique-id"),
        pytest.param("v2", [], id="version-alone"),
        pytest.param("a.customers", [], id="package-and-name"),
        pytest.param("custom", [], id="prefix"),
        pytest.param("model.a.orders", [], id="unversioned-id-of-versioned"),
    ],
)
def test_a_name_matches_exactly(book: Bookkeeping, name: str, expected: list[str]) -> None:
    assert sorted(sync.model for sync in find_syncs(book, name, "dev")) == expected


def test_only_the_syncs_found_are_forgotten(book: Bookkeeping) -> None:
    [orders_v2] = find_syncs(book, "orders.v2", "dev")

    assert forget_syncs(book, [orders_v2.sync_id, "dev:model.a.gone:default"]) == [
        orders_v2.sync_id
    ]
    left = book.records(f"SELECT model, target FROM {book.table('syncs')} ORDER BY ALL")
    assert [(row["model"], row["target"]) for row in left] == [
        ("model.a.customers", "dev"),
        ("model.a.customers", "prod"),
        ("model.a.orders.v1", "dev"),
        ("model.b.customers", "dev"),
    ]
    tables = book.records(
        "SELECT table_name FROM duckdb_tables() WHERE table_name = $1",
        [snapshot_name(orders_v2.sync_id)],
    )
    assert tables == []


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "dbt_project.yml").write_text(yaml.safe_dump({"name": "p", "profile": "p"}))
    profiles = {
        "p": {"target": "dev", "outputs": {"dev": {"type": "duckdb", "path": "wh.duckdb"}}},
        "kafka_sync": {"target": "dev", "outputs": {"dev": {"bootstrap_servers": "x:9092"}}},
    }
    (tmp_path / "profiles.yml").write_text(yaml.safe_dump(profiles))
    (tmp_path / ".dbt_kafka_sync").mkdir()
    fill(tmp_path / ".dbt_kafka_sync" / "state.duckdb")
    return tmp_path


def reset(project: Path, *args: str, answer: str = "") -> tuple[int, str]:
    result = CliRunner().invoke(main, ["reset", *args, "--project-dir", str(project)], answer)
    return result.exit_code, result.output


def test_reset_lists_what_it_will_forget_before_asking(project: Path) -> None:
    code, printed = reset(project, "customers", answer="n\n")

    assert code == 1 and "Aborted" in printed and "bug" not in printed  # declining: exit 1
    listing, prompt = printed.split("Forget these?")
    assert "'customers' names models of several packages (a, b)" in listing
    assert "dev:model.a.customers:default" in listing
    assert "dev:model.b.customers:default" in listing
    assert "prod:" not in listing and "orders" not in listing
    assert "reset dev:" not in prompt  # declined: nothing was reset
    assert "dev:model.a.customers:default" in reset(project, "customers", answer="n\n")[1]


def test_reset_with_yes_prints_what_it_resets(project: Path) -> None:
    assert reset(project, "orders.v2", "--yes") == (0, "reset dev:model.a.orders.v2:default\n")
    code, printed = reset(project, "orders", answer="y\n")
    assert code == 0
    assert printed.endswith("reset dev:model.a.orders.v1:default\n")
    assert "  dev:model.a.orders.v1:default\n" in printed.split("Forget these?")[0]


def test_a_name_of_several_packages_with_yes_resets_nothing(project: Path) -> None:
    code, printed = reset(project, "customers", "--yes")

    assert code == 1
    assert "'customers' names models of several packages ('a', 'b')" in printed
    assert "hint: name one of them by its unique_id" in printed
    assert reset(project, "model.b.customers", "--yes") == (
        0,
        "reset dev:model.b.customers:default\n",
    )
    assert reset(project, "customers", "--yes") == (0, "reset dev:model.a.customers:default\n")
