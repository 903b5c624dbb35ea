"""The lock of a warehouse state: a lease row that only one run holds, renewed while it lives.

Runners of CI share no file system, so the lock lives beside the state. A run takes the
lease or fails at once naming its holder; a thread renews it; a run killed without
releasing it leaves it to expire, after which the next run takes it over. The commit
checks, in its own transaction, that the lease is still this run's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from typing import TYPE_CHECKING

from dbt_kafka_sync.errors import StateError

if TYPE_CHECKING:
    from dbt_kafka_sync.sources.base import Warehouse
    from dbt_kafka_sync.sql import SqlRunner
    from dbt_kafka_sync.state.tables import Bookkeeping

log = logging.getLogger("dbt_kafka_sync.state.lease")

TABLE = "lease"
COLUMNS = (
    "name TEXT PRIMARY KEY, owner TEXT, host TEXT, pid BIGINT,"
    " started_at TIMESTAMPTZ, expires_at TIMESTAMPTZ"
)
NAME = "state"  # one lease per state schema


class Lease:
    """The lease of one run on one state schema."""

    def __init__(
        self, book: Bookkeeping, warehouse: Warehouse, owner: str, seconds: int, where: str
    ) -> None:
        self.book = book
        self.warehouse = warehouse
        self.owner = owner
        self.seconds = int(seconds)
        self.where = where
        self._stop = threading.Event()
        self._renewal: threading.Thread | None = None
        self.lost = False

    def _until(self) -> str:
        return f"now() + INTERVAL '{self.seconds} seconds'"

    def acquire(self) -> None:
        """Take the lease, taking over an expired one.

        Raises:
            StateError: naming the run that holds it.
        """
        table = self.book.table(TABLE)
        stale = "" if self.warehouse.exclusive else " AND expires_at < now()"
        expired = self.book.records(
            f"DELETE FROM {table} WHERE name = $1{stale} RETURNING owner, host, pid, expires_at",
            [NAME],
        )
        for row in expired:
            log.warning(
                "took over the lease on %s of run %s (host %s, pid %s), which ran until %s"
                " without being released: that run was killed or lost its connection",
                self.where,
                row["owner"],
                row["host"],
                row["pid"],
                row["expires_at"],
            )
        try:
            self.book.execute(
                f"INSERT INTO {table} (name, owner, host, pid, started_at, expires_at)"
                f" VALUES ($1, $2, $3, $4, now(), {self._until()})",
                [NAME, self.owner, socket.gethostname(), os.getpid()],
            )
        except Exception:
            holder = self.book.records(
                f"SELECT owner, host, pid, started_at, expires_at FROM {table} WHERE name = $1",
                [NAME],
            )
            if not holder:
                raise
            row = holder[0]
            raise StateError(
                f"the state in {self.where} is in use by run {row['owner']} on host"
                f" {row['host']} (pid {row['pid']}), started {row['started_at']}; its lease"
                f" runs until {row['expires_at']} and is renewed while that run lives",
                hint="wait for that run to finish; two runs must not publish the same syncs."
                " A killed run's lease is taken over once it expires (state.lease_seconds)",
            ) from None
        self._renewal = threading.Thread(target=self._renew, name="lease-renewal", daemon=True)
        self._renewal.start()

    def _renew(self) -> None:
        """Renew every third of the lease, reconnecting after an error; give up once it lapsed."""
        runner: SqlRunner | None = None
        renewed_at = time.monotonic()
        try:
            while not self._stop.wait(self.seconds / 3):
                try:
                    runner = runner or self.warehouse.second_connection()
                    renewed = self._renew_once(runner)
                except Exception as exc:  # a blip: the next try reconnects
                    log.warning("could not renew the lease on %s: %s", self.where, exc)
                    self._drop(runner)
                    runner = None
                    renewed = time.monotonic() - renewed_at < self.seconds
                if not renewed:
                    self.lost = True
                    log.error("this run lost its lease on %s: it publishes no more", self.where)
                    return
                renewed_at = time.monotonic()
        finally:
            self._drop(runner)

    def _renew_once(self, runner: SqlRunner) -> bool:
        renewed = runner.records(
            f"UPDATE {self.book.table(TABLE)} SET expires_at = {self._until()}"
            " WHERE name = $1 AND owner = $2 RETURNING owner",
            [NAME, self.owner],
        )
        return bool(renewed)

    def _drop(self, runner: SqlRunner | None) -> None:
        if runner is not None:
            with contextlib.suppress(Exception):
                self.warehouse.close_runner(runner)

    def check_alive(self) -> None:
        """Before publishing a sync: the lease was renewed in time.

        Raises:
            StateError: once it lapsed; another run may hold it now.
        """
        if self.lost:
            raise StateError(
                f"this run lost its lease on {self.where} (it could not be renewed in time):"
                " it publishes nothing more, and nothing more of it is committed",
                hint="check the connection to the warehouse; raise state.lease_seconds if"
                " renewals are slow",
            )

    def check(self) -> None:
        """Inside a commit's transaction: the lease is still this run's (and stays so).

        Raises:
            StateError: when it expired; nothing of the transaction may be kept.
        """
        held = self.book.records(
            f"SELECT owner FROM {self.book.table(TABLE)} WHERE name = $1 AND owner = $2"
            f" AND expires_at > now(){self.warehouse.lock_clause}",
            [NAME, self.owner],
        )
        if self.lost or not held:
            raise StateError(
                f"this run's lease on {self.where} expired (the run stalled longer than"
                " state.lease_seconds) and another run may hold it now: nothing of this sync"
                " was committed, and its rows are sent again by the next run",
                hint="raise state.lease_seconds if runs stall this long",
            )

    def release(self) -> None:
        """Stop renewing and give the lease up."""
        self._stop.set()
        if self._renewal is not None:
            self._renewal.join()
        self.book.execute(
            f"DELETE FROM {self.book.table(TABLE)} WHERE name = $1 AND owner = $2",
            [NAME, self.owner],
        )
