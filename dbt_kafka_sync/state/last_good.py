"""The last good copy of the local state file: kept after each run, put back by restore-state.

The copy is taken at the end of a run that opened the file whole (every table read in
full, see integrity.py) and wrote to it without error, after a CHECKPOINT (the file then
holds every commit; the WAL is empty) and while the run still holds the file's lock, so
nothing writes to it meanwhile. It is written to a temporary name, synced, then renamed
over the previous copy: a crash leaves the previous copy whole.

Restoring an older state sends rows again; it loses none of them (README, "Guarantees").
"""

from __future__ import annotations

import logging
import os
import shutil
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

from dbt_kafka_sync.errors import DamagedStateError, StateError
from dbt_kafka_sync.session import STATE_DATABASE as ALIAS
from dbt_kafka_sync.session import duckdb_session
from dbt_kafka_sync.sql import quote_identifier
from dbt_kafka_sync.state.history import RunSummary, recent_runs
from dbt_kafka_sync.state.integrity import last_good_path
from dbt_kafka_sync.state.local_file import (
    StateFileRunner,
    file_bookkeeping,
    has_state,
    open_state,
)

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)

DAMAGED_SUFFIX = ".damaged-"  # + a UTC time: where restore-state keeps the damaged file


@dataclass(frozen=True)
class Restored:
    """What restore-state did.

    Attributes:
        path: the state file, now the last good copy.
        copy: the last good copy it came from (kept as it is).
        kept_aside: where the file it replaced is now (None: there was none).
        last_run: the newest run the restored state knows (None: no run yet).
    """

    path: Path
    copy: Path
    kept_aside: Path | None
    last_run: RunSummary | None


def keep_last_good(connection: duckdb.DuckDBPyConnection, path: Path) -> None:
    """Copy the attached, checked state file beside it, as its last good copy.

    A failure is logged: the run itself went well, and the previous copy stays whole.
    """
    copy = last_good_path(path)
    partial = copy.with_name(copy.name + ".tmp")
    try:
        connection.execute(f"CHECKPOINT {quote_identifier(ALIAS)}")
        _copy_synced(path, partial)
        os.replace(partial, copy)
        _sync_folder(copy.parent)
    except Exception as exc:  # the copy is a convenience: the run itself succeeded
        partial.unlink(missing_ok=True)
        log.warning("could not keep the last good copy of the state at %s: %s", copy, exc)
        return
    log.debug("kept the last good copy of the state at %s", copy)


def restore_last_good(path: Path, force: bool = False) -> Restored:
    """Put the last good copy in the state file's place; keep the file it replaces aside.

    The state file is replaced in one rename: it is never missing. The damaged file is
    kept beside it under a `.damaged-<time>` name, never deleted.

    Raises:
        StateError: when there is no copy, the copy is damaged itself, another run holds
            the state, or the state is not damaged (unless force).
    """
    copy = last_good_path(path)
    if not copy.exists():
        raise StateError(
            f"there is no last good copy of the state at {copy}",
            hint="restore the state file from a backup, or start over by moving it away"
            " (syncs then follow `initial_sync` again)",
        )
    last_run = _check_copy(copy)
    if path.exists() and not force:
        _require_damaged(path)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    partial = path.with_name(path.name + ".restoring")
    _copy_synced(copy, partial)
    aside = _keep_aside(path, stamp)
    os.replace(partial, path)
    _sync_folder(path.parent)
    return Restored(path, copy, aside, last_run)


def _check_copy(copy: Path) -> RunSummary | None:
    """Read the copy in full (it must be whole); return the newest run it knows."""
    with duckdb_session("256MB") as session:
        try:
            open_state(session, copy, read_only=True)
        except DamagedStateError as exc:
            raise StateError(
                f"the last good copy {copy} is damaged too: {exc.message}",
                hint="restore the state file from a backup, or start over by moving it away",
            ) from None
        if not has_state(session):
            return None
        found = recent_runs(file_bookkeeping(StateFileRunner(session, copy)), 1)
        return found[0] if found else None


def _require_damaged(path: Path) -> None:
    """Refuse to replace a state file that is whole (or in use by a run)."""
    with duckdb_session("256MB") as session:
        try:
            open_state(session, path, read_only=True)
        except DamagedStateError:
            return
    raise StateError(
        f"the state file {path} is not damaged: nothing to restore",
        hint="pass --force to put the last good copy in its place anyway (rows published"
        " since the copy was taken are then sent again)",
    )


def _keep_aside(path: Path, stamp: str) -> Path | None:
    """Link the state file (and its WAL) to a `.damaged-<time>` name; None if it is missing."""
    if not path.exists():
        return None
    aside = path.with_name(f"{path.name}{DAMAGED_SUFFIX}{stamp}")
    try:
        os.link(path, aside)  # the file stays at `path` until the copy replaces it
    except OSError:  # a file system without hard links
        shutil.copyfile(path, aside)
    wal = path.with_name(path.name + ".wal")
    if wal.exists():  # it belongs to the damaged file, not to the copy
        os.replace(wal, aside.with_name(aside.name + ".wal"))
    return aside


def _copy_synced(source: Path, target: Path) -> None:
    """Copy a file (the kernel's copy_file_range or a reflink where it can) and sync it."""
    shutil.copyfile(source, target)
    with target.open("rb+") as handle:
        os.fsync(handle.fileno())


def _sync_folder(folder: Path) -> None:
    """Make a rename in the folder durable."""
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
