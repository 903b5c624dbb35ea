"""Checking the local state file: a truncated or corrupted file is refused, never written to.

DuckDB verifies a block's checksum whenever it reads the block, and a block that a
truncation cut off cannot be read at all. Reading the catalog and every table of the file
in full therefore finds any damage to the data a run would use. The check runs when the
file is opened, before the broker is touched or a run is recorded, and again whenever a
statement on the file fails, to tell a damaged file from any other error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dbt_kafka_sync.errors import DamagedStateError, quote_list
from dbt_kafka_sync.session import STATE_DATABASE as ALIAS
from dbt_kafka_sync.sql import quote_identifier
from dbt_kafka_sync.state.tables import MESSAGES, RATES, TIMINGS

if TYPE_CHECKING:
    import duckdb

LAST_GOOD_SUFFIX = ".last-good"  # the last good copy: beside the state file, this appended
BOOKKEEPING = ("meta", "syncs", "runs", "run_syncs", "failed_rows", MESSAGES, TIMINGS, RATES)
MAX_DETAIL = 300  # characters of DuckDB's own message kept in the error
FILE_HEADERS = 3 * 4096  # a DuckDB file's main header and two database headers, then blocks


@dataclass(frozen=True)
class Unreadable:
    """A table of the state file that could not be read in full, and DuckDB's reason."""

    table: str
    reason: str


def last_good_path(path: Path) -> Path:
    """Where the last good copy of a state file is kept."""
    return path.with_name(path.name + LAST_GOOD_SUFFIX)


def check_state(
    connection: duckdb.DuckDBPyConnection,
    path: Path,
    snapshots: bool = True,
    file_length: bool = True,
) -> None:
    """Read the attached state file's catalog and tables in full; refuse a damaged file.

    Args:
        connection: the session the file is attached to (as the state database).
        path: the file, named in the error.
        snapshots: also read every snapshot table (`reset` skips them: it drops them).
        file_length: check the file's length against the blocks in use. Only just after
            attaching: later, blocks of a write that failed (a full disk) are counted but
            were never written, and the file is whole all the same.

    Raises:
        DamagedStateError: when a part of the file cannot be read.
    """
    import duckdb

    try:
        tables = _tables(connection)
        expected = _expected_size(connection)
    except duckdb.Error as exc:
        raise damaged(path, f"its catalog cannot be read: {exc}") from None
    size = path.stat().st_size if path.exists() else 0
    if file_length and size < expected:  # a cut that took blocks no table scan reads (indexes)
        raise damaged(path, f"it is {size} bytes long; its blocks need {expected}")
    unreadable = [
        found
        for table in tables
        if snapshots or table in BOOKKEEPING
        if (found := _read_table(connection, table)) is not None
    ]
    if not unreadable:
        return
    first = unreadable[0].reason
    broken = [found.table for found in unreadable if found.table in BOOKKEEPING]
    snapshot_tables = [found.table for found in unreadable if found.table not in BOOKKEEPING]
    models = [] if broken else _models_of(connection, snapshot_tables)
    if models:
        listed = f"the snapshot(s) of model(s) {quote_list(models)}"
    else:  # the bookkeeping, or tables no sync names: only starting over clears them
        listed = f"table(s) {quote_list(broken)}" if broken else ""
        if snapshot_tables:
            listed += f"{' and ' if broken else ''}{len(snapshot_tables)} snapshot table(s)"
    raise damaged(path, f"{listed} cannot be read: {first}", models)


@contextmanager
def state_errors(connection: duckdb.DuckDBPyConnection, path: Path) -> Iterator[None]:
    """Blame the state file for a failed DuckDB statement when the file turns out damaged.

    Any other error (a model that cannot be read, a bug) goes on unchanged. The check runs
    on a cursor of its own: the failed statement may have aborted the session's transaction.
    """
    import duckdb

    try:
        yield
    except duckdb.Error:
        with closing(connection.cursor()) as checking:
            check_state(checking, path, file_length=False)
        raise


def damaged(path: Path, detail: str, models: list[str] | None = None) -> DamagedStateError:
    """The error for a damaged state file: what is wrong and the ways out."""
    if len(detail) > MAX_DETAIL:
        detail = detail[:MAX_DETAIL] + "..."
    copy = last_good_path(path)
    ways = []
    if copy.exists():
        ways.append(
            "restore the last good copy with `dbt-kafka-sync restore-state` (the damaged file"
            " is kept aside; rows published after the copy was taken are sent again)"
        )
    else:
        ways.append(f"restore the file from a backup (there is no last good copy at {copy})")
    if models:
        resets = " and ".join(f"`dbt-kafka-sync reset {model}`" for model in models)
        ways.append(f"or start those models over: {resets}")
    else:
        ways.append("or start over by moving the file away")
    return DamagedStateError(
        f"the state file {path} looks damaged (truncated or corrupted): {detail}",
        hint="; ".join(ways) + ". Starting over sends rows again as `initial_sync` says"
        " (backfill: every row).",
    )


def _tables(connection: duckdb.DuckDBPyConnection) -> list[str]:
    rows = connection.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = ? ORDER BY table_name",
        [ALIAS],
    ).fetchall()
    return [str(name) for (name,) in rows]


def _expected_size(connection: duckdb.DuckDBPyConnection) -> int:
    """How long the file must be at least: enough for the blocks in use.

    Not total_blocks: free blocks at the end are cut off the file at a checkpoint while
    still counted, so a whole file can be shorter than that.
    """
    [(block_size, blocks)] = connection.execute(
        "SELECT block_size, used_blocks FROM pragma_database_size() WHERE database_name = ?",
        [ALIAS],
    ).fetchall()
    return FILE_HEADERS + int(block_size) * int(blocks) if blocks else 0


def _read_table(connection: duckdb.DuckDBPyConnection, table: str) -> Unreadable | None:
    """Read every column of a table (a count alone is answered from metadata)."""
    import duckdb

    qualified = f"{quote_identifier(ALIAS)}.main.{quote_identifier(table)}"
    try:
        connection.execute(f"SELECT bit_xor(hash(COLUMNS(*))) FROM {qualified}").fetchall()
    except duckdb.Error as exc:
        return Unreadable(table, str(exc))
    return None


def _models_of(connection: duckdb.DuckDBPyConnection, snapshots: list[str]) -> list[str]:
    """The models whose syncs keep these snapshot tables (the syncs table was read fine)."""
    rows = connection.execute(
        f"SELECT DISTINCT model FROM {quote_identifier(ALIAS)}.main.syncs"
        " WHERE list_contains(?, snapshot_table) ORDER BY model",
        [snapshots],
    ).fetchall()
    return [str(model).split(".")[-1] for (model,) in rows]
