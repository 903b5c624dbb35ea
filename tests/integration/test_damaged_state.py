"""A truncated or corrupted state file: refused by every command, then restored in one command."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import duckdb
import pytest
from harness import Kafka, Project

ROWS = 200
# A view over a table the test changes in place, so that no test needs a dbt build of its own.
SOURCE_MODEL = f"select range as id, 'v1 ' || range as label from range({ROWS})"
LEDGER_MODEL = """
{{ config(materialized='view', meta={'kafka_sync': {
    'primary_key': 'id',
    'topic': var('kafka_topic_prefix', 'demo.') ~ 'ledger',
    'key_column': 'id'}}) }}
select id, label from {{ ref('ledger_source') }}
"""
COMMANDS = (("run",), ("plan",), ("runs",), ("show", "RUN_ID"))


@pytest.fixture(scope="module")
def ledger(tmp_path_factory: pytest.TempPathFactory, kafka: Kafka) -> Project:
    """The example project with a small `ledger` model, built once for the module."""
    from harness import copy_example

    project = copy_example(tmp_path_factory.mktemp("damaged") / "project", kafka)
    project.write_model("ledger_source", SOURCE_MODEL)
    project.write_model("ledger", LEDGER_MODEL)
    project.create_topics(kafka, ("ledger",))
    project.dbt(
        "build", "--select", "ledger_source", "ledger", "--vars", json.dumps(_vars(project))
    )
    return project


def _vars(project: Project) -> dict[str, str]:
    return {"kafka_topic_prefix": project.prefix}


def set_rows(project: Project, rows: dict[int, str | None]) -> None:
    """Change, add (label) or remove (None) rows of the ledger model, in the warehouse."""
    with duckdb.connect(str(project.path / "target" / "warehouse.duckdb")) as warehouse:
        for key, label in rows.items():
            warehouse.execute("DELETE FROM ledger_source WHERE id = ?", [key])
            if label is not None:
                warehouse.execute("INSERT INTO ledger_source VALUES (?, ?)", [key, label])


def reset_rows(project: Project) -> None:
    """The ledger model's first version: ROWS rows, labelled v1."""
    with duckdb.connect(str(project.path / "target" / "warehouse.duckdb")) as warehouse:
        warehouse.execute("DELETE FROM ledger_source")
        warehouse.execute(f"INSERT INTO ledger_source {SOURCE_MODEL}")


def model_rows(project: Project) -> dict[str, str]:
    with duckdb.connect(str(project.path / "target" / "warehouse.duckdb")) as warehouse:
        rows = warehouse.execute("SELECT id, label FROM ledger_source").fetchall()
    return {str(key): label for key, label in rows}


class Ledger:
    """One test's view of the ledger: its own state file, the shared topic."""

    def __init__(self, project: Project, kafka: Kafka, state: Path) -> None:
        self.project, self.kafka, self.state = project, kafka, state
        self.topic = project.prefix + "ledger"
        self.earlier = len(self.messages())  # other tests' messages, in the shared topic

    def sync(self, *args: str) -> subprocess.CompletedProcess[str]:
        options = ["--state-path", str(self.state)]
        if args[0] in ("run", "plan"):
            options += ["--select", "ledger"]
        return self.project.sync(*args, *options)

    def messages(self) -> list[tuple[str, str, str | None]]:
        """(key, event, label) of every message in the topic, in order."""
        found = []
        for record in self.kafka.consume_all(self.topic):
            value = json.loads(record.value) if record.value else {}
            event = record.headers.get("dbt-kafka-sync-event", "")
            found.append((record.key or "", event, value.get("label")))
        return found

    def latest(self) -> dict[str, str]:
        """Each key's last message of this test: what a consumer of the topic holds."""
        holds: dict[str, str] = {}
        for key, event, label in self.messages()[self.earlier :]:
            if event == "removed":
                holds.pop(key, None)
            else:
                holds[key] = label or ""
        return holds


def _cut(fraction: float) -> Callable[[bytes, Path], bytes]:
    return lambda data, _copy: data[: int(len(data) * fraction)]


def _flip_at(offset: int, data: bytes) -> bytes:
    damaged = bytearray(data)
    damaged[offset : offset + 64] = bytes(byte ^ 0xFF for byte in damaged[offset : offset + 64])
    return bytes(damaged)


def _flip_table(which: str) -> Callable[[bytes, Path], bytes]:
    """Flip bytes in the first block of a table of the state (`snapshot`: the ledger's)."""

    def damage(data: bytes, copy: Path) -> bytes:
        with duckdb.connect() as connection:
            connection.execute(f"ATTACH '{copy}' AS s (READ_ONLY)")
            table = which
            if which == "snapshot":
                [(table,)] = connection.execute(
                    "SELECT snapshot_table FROM s.main.syncs"
                ).fetchall()
            [(block,)] = connection.execute(
                f"SELECT min(block_id) FROM pragma_storage_info('s.main.\"{table}\"')"
                " WHERE block_id >= 0"
            ).fetchall()
            [(size, blocks)] = connection.execute(
                "SELECT block_size, total_blocks FROM pragma_database_size()"
                " WHERE database_name = 's'"
            ).fetchall()
        headers = len(data) - size * blocks  # DuckDB's file headers come before the blocks
        return _flip_at(headers + block * size + 16, data)  # past the block's checksum

    return damage


DAMAGE: dict[str, Callable[[bytes, Path], bytes]] = {
    "empty": lambda _data, _copy: b"",
    "cut-to-header": lambda data, _copy: data[:4096],
    "cut-at-10pct": _cut(0.1),
    "cut-at-50pct": _cut(0.5),
    "cut-at-90pct": _cut(0.9),
    "flipped-header": lambda data, _copy: _flip_at(40, data),
    "flipped-history": _flip_table("runs"),
    "flipped-snapshot": _flip_table("snapshot"),
}


@pytest.mark.parametrize("kind", list(DAMAGE))
def test_a_damaged_state_is_refused_then_restored(
    ledger: Project, kafka: Kafka, tmp_path: Path, kind: str
) -> None:
    book = Ledger(ledger, kafka, tmp_path / "state.duckdb")
    reset_rows(ledger)
    first = book.sync("run")
    assert first.returncode == 0, first.stdout + first.stderr
    run_id = first.stdout.split("show ")[-1].split(")")[0]
    copy = tmp_path / "state.duckdb.last-good"
    assert copy.read_bytes() == book.state.read_bytes()  # the copy of a whole file

    damaged = DAMAGE[kind](book.state.read_bytes(), copy)
    book.state.write_bytes(damaged)
    # What happens next is sent by the run after the restore: one change, one removal, one row.
    set_rows(ledger, {3: "v2 3", 4: None, ROWS: f"v2 {ROWS}"})
    before = len(book.messages())

    for command in COMMANDS:
        args = [run_id if arg == "RUN_ID" else arg for arg in command]
        result = book.sync(*args)
        output = result.stdout + result.stderr
        assert result.returncode == 1, f"{command}: {output}"
        assert f"the state file {book.state} looks damaged" in result.stderr, output
        assert "dbt-kafka-sync restore-state" in result.stderr, output
        assert "Traceback" not in output
        assert len(book.messages()) == before, f"{command} published"
        assert book.state.read_bytes() == damaged, f"{command} wrote to the damaged file"
    if kind == "flipped-snapshot":
        assert "`dbt-kafka-sync reset ledger`" in result.stderr  # only that snapshot is lost

    restored = book.sync("restore-state")

    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert f"last good copy {copy}" in restored.stdout
    [aside] = tmp_path.glob("state.duckdb.damaged-*")
    assert aside.read_bytes() == damaged  # kept, never deleted
    assert book.state.read_bytes() == copy.read_bytes()
    after = book.sync("run")
    assert after.returncode == 0, after.stdout + after.stderr
    assert "1 added, 1 changed, 1 removed; 3 delivered" in after.stdout
    assert book.latest() == model_rows(ledger)  # every row delivered, the last value last


def test_restoring_an_older_copy_resends_and_loses_nothing(
    ledger: Project, kafka: Kafka, tmp_path: Path
) -> None:
    """A copy older than the damaged file (its last run never finished): what was published
    since is sent again, nothing is lost."""
    book = Ledger(ledger, kafka, tmp_path / "state.duckdb")
    reset_rows(ledger)
    assert book.sync("run").returncode == 0
    older = tmp_path / "older"
    shutil.copyfile(tmp_path / "state.duckdb.last-good", older)
    set_rows(ledger, {7: "v2 7", 8: None, ROWS + 1: "new"})
    second = book.sync("run")
    assert "1 added, 1 changed, 1 removed; 3 delivered" in second.stdout
    shutil.copyfile(older, tmp_path / "state.duckdb.last-good")  # the copy before that run
    book.state.write_bytes(book.state.read_bytes()[:8192])
    sent = len(book.messages())

    assert book.sync("restore-state").returncode == 0
    third = book.sync("run")

    assert third.returncode == 0, third.stdout + third.stderr
    assert "1 added, 1 changed, 1 removed; 3 delivered" in third.stdout  # the same, again
    assert len(book.messages()) == sent + 3
    assert book.latest() == model_rows(ledger)


def test_restore_state_refuses_a_whole_file_and_a_missing_copy(
    ledger: Project, kafka: Kafka, tmp_path: Path
) -> None:
    book = Ledger(ledger, kafka, tmp_path / "state.duckdb")
    missing = book.sync("restore-state")
    assert missing.returncode == 1
    assert "there is no last good copy" in missing.stderr
    assert book.sync("run").returncode == 0
    whole = book.state.read_bytes()

    refused = book.sync("restore-state")

    assert refused.returncode == 1
    assert "is not damaged: nothing to restore" in refused.stderr
    assert book.state.read_bytes() == whole
