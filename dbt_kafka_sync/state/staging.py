"""A commit begun while the messages are in flight, in a transaction of its own cursor.

A sync's commit writes every delivered change into the snapshot and every message into
the debugger's log. Begun only once the producer is flushed, that bulk work runs after
the send, in series. A staged commit instead opens the commit's transaction on a cursor
of the run's session as the send begins and, in a thread of its own (DuckDB releases the
GIL while it works), writes in it the rows that do not depend on the deliveries: a first
run's snapshot rows, the log of the messages as if delivered. Once the producer is
flushed, the same transaction takes the failed rows out again, records the outcome and
commits (state/snapshot.py). Nothing of it is visible, nor survives a crash, before that
COMMIT: a run killed at any point leaves the state as it was.

The cursor sees the session's databases (the table of changes), not the temporary tables
of the session's own connection. While a staged commit is open, the session's own
connection must not write to the state: DuckDB would fail the staged transaction late,
after every message was sent, on a conflict.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    import duckdb

log = logging.getLogger(__name__)

Staged = TypeVar("Staged")
INTERRUPT_EVERY = 0.05  # seconds between interrupts of a staging thread being stopped


@dataclass(frozen=True)
class StagedLog:
    """The messages a staged commit writes into the log before they are delivered.

    Attributes:
        rows: a relation the cursor reads, with LOG_COLUMNS, every outcome 'delivered'.
        names: the model's and the sync's names.
    """

    rows: str
    names: tuple[str, str]


class StagedCommit(Generic[Staged]):
    """A transaction on a cursor of the session, filled by a thread until the commit needs it.

    `stage` runs in the thread, inside the open transaction, and returns what it wrote
    (for the commit to finish it). The owner calls `finish` once the messages are
    delivered, and `close` in any case.
    """

    def __init__(
        self,
        session: duckdb.DuckDBPyConnection,
        stage: Callable[[duckdb.DuckDBPyConnection], Staged],
    ) -> None:
        self.cursor = session.cursor()
        # A cursor starts with the default time zone: instants must render as the session's.
        [(zone,)] = session.execute("SELECT current_setting('TimeZone')").fetchall()
        self.cursor.execute("SET TimeZone = ?", [zone])
        self.cursor.execute("BEGIN")
        self._open = True
        self._stage = stage
        self._staged: Staged | None = None
        self._error: BaseException | None = None
        self.seconds = 0.0
        self._thread = threading.Thread(target=self._work, name="dks-staged-commit", daemon=True)
        self._thread.start()

    def _work(self) -> None:
        started = time.monotonic()
        try:
            self._staged = self._stage(self.cursor)
        except BaseException as exc:  # handed to the owner by finish()
            self._error = exc
        self.seconds = time.monotonic() - started

    def finish(self, commit: Callable[[duckdb.DuckDBPyConnection, Staged], None]) -> None:
        """Wait for the staged rows, then let `commit` complete the transaction on the cursor.

        `commit` ends with COMMIT; on an error, close() rolls back what is left open.

        Raises:
            BaseException: what staging raised, or what `commit` raised.
        """
        self._thread.join()
        log.debug("commit staged in %.2fs while the messages were sent", self.seconds)
        if self._error is not None:
            raise self._error
        assert self._staged is not None
        commit(self.cursor, self._staged)
        self._open = False

    def close(self) -> None:
        """Stop staging (the sync failed) and roll back what was not committed."""
        try:
            self._stop_staging()
            if self._open:
                self.cursor.execute("ROLLBACK")
        except Exception:  # the transaction is gone with the connection anyway
            log.debug("could not roll the staged commit back", exc_info=True)
        finally:
            # Also after a second Ctrl-C in the wait: the session cannot close while the
            # cursor is busy, and nothing of the open transaction may stay.
            self._open = False
            self._stop_staging()
            self.cursor.close()

    def _stop_staging(self) -> None:
        """Interrupt the staging thread until it ends.

        DuckDB drops an interrupt that arrives between two statements, so one is not enough:
        the thread would go on with every remaining step before the rollback.
        """
        while self._thread.is_alive():
            self.cursor.interrupt()
            self._thread.join(INTERRUPT_EVERY)
