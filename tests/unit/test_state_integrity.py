"""A damaged state file is blamed, with its path and the ways out; other errors are not."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

from dbt_kafka_sync.errors import DamagedStateError
from dbt_kafka_sync.session import STATE_DATABASE
from dbt_kafka_sync.state.integrity import check_state, last_good_path, state_errors
from dbt_kafka_sync.state.last_good import keep_last_good, restore_last_good
from dbt_kafka_sync.state.local_file import StateFileRunner, file_bookkeeping, open_state

SNAPSHOT = "snapshot_0123456789abcdef"


def write_state(path: Path) -> None:
    """A state file with one sync of model `customers` and its 100,000-row snapshot."""
    with duckdb.connect() as connection:
        open_state(connection, path, read_only=False)
        table = f"{STATE_DATABASE}.main.{SNAPSHOT}"
        connection.execute(f"CREATE TABLE {table} AS SELECT range AS id FROM range(100000)")
        connection.execute(
            f"INSERT INTO {STATE_DATABASE}.main.syncs (sync_id, model, snapshot_table)"
            f" VALUES ('t:model.p.customers:default', 'model.p.customers', '{SNAPSHOT}')"
        )


def flip_snapshot(path: Path) -> None:
    """Flip bytes in the snapshot's first block (DuckDB's block checksum no longer matches)."""
    with duckdb.connect() as connection:
        connection.execute(f"ATTACH '{path}' AS s (READ_ONLY)")
        [(block, size)] = connection.execute(
            f"SELECT min(block_id), any_value(d.block_size)"
            f" FROM pragma_storage_info('s.main.{SNAPSHOT}'), pragma_database_size() d"
            " WHERE block_id >= 0 AND d.database_name = 's'"
        ).fetchall()
    data = bytearray(path.read_bytes())
    at = 3 * 4096 + block * size + 16
    data[at : at + 64] = bytes(byte ^ 0xFF for byte in data[at : at + 64])
    path.write_bytes(bytes(data))


@pytest.fixture
def state(tmp_path: Path) -> Path:
    path = tmp_path / "state.duckdb"
    write_state(path)
    return path


@pytest.fixture
def attached(state: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """The damaged file attached without the check at open, as if it broke during a run."""
    flip_snapshot(state)
    connection = duckdb.connect()
    connection.execute(f"ATTACH '{state}' AS {STATE_DATABASE}")
    yield connection
    connection.close()


def test_a_whole_file_passes(state: Path) -> None:
    with duckdb.connect() as connection:
        assert open_state(connection, state, read_only=True)


def test_a_damaged_snapshot_names_the_file_and_its_model(state: Path) -> None:
    flip_snapshot(state)
    with duckdb.connect() as connection, pytest.raises(DamagedStateError) as raised:
        open_state(connection, state, read_only=True)
    text = raised.value.render()
    assert f"the state file {state} looks damaged" in text
    assert "snapshot(s) of model(s) 'customers' cannot be read" in text
    assert "`dbt-kafka-sync reset customers`" in text
    assert "no last good copy" in text  # none was kept: restore-state is not offered


def test_a_cut_file_is_refused_even_where_no_table_is_read(state: Path) -> None:
    state.write_bytes(state.read_bytes()[:-4096])
    with duckdb.connect() as connection, pytest.raises(DamagedStateError, match="bytes long"):
        open_state(connection, state, read_only=True)


def test_a_diff_that_meets_a_damaged_block_blames_the_file(
    attached: duckdb.DuckDBPyConnection, state: Path
) -> None:
    with pytest.raises(DamagedStateError, match="looks damaged"), state_errors(attached, state):
        attached.execute(f"SELECT sum(id) FROM {STATE_DATABASE}.main.{SNAPSHOT}").fetchall()


def test_other_errors_are_not_blamed_on_a_whole_file(state: Path) -> None:
    with duckdb.connect() as connection:
        open_state(connection, state, read_only=False)
        runner = StateFileRunner(connection, state)
        book = file_bookkeeping(runner)
        with pytest.raises(duckdb.CatalogException), book.transaction():
            book.execute("SELECT * FROM no_such_model")  # the transaction is aborted
        assert runner.failed  # the file is not known good: no copy is kept of it
        check_state(connection, state)


def test_restore_puts_the_copy_back_and_keeps_the_damaged_file(state: Path) -> None:
    with duckdb.connect() as connection:
        open_state(connection, state, read_only=False)
        keep_last_good(connection, state)
    copy = last_good_path(state)
    state.write_bytes(state.read_bytes()[:10000])

    restored = restore_last_good(state)

    assert state.read_bytes() == copy.read_bytes()
    assert restored.kept_aside is not None
    assert restored.kept_aside.read_bytes() == copy.read_bytes()[:10000]
    with duckdb.connect() as connection:
        open_state(connection, state, read_only=True)  # whole again
