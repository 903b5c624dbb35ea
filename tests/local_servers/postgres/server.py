"""A local PostgreSQL server as a value: how to reach it, and its record in the state dir.

Everything a client needs is written to ``<state_dir>/postgres.json``, so a server
started by one command can be used and stopped by another (see :meth:`Server.load`).
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local_servers import processes
from local_servers.postgres.errors import PostgresLocalError

if TYPE_CHECKING:
    import psycopg
    from psycopg.rows import TupleRow

DEFAULT_STOP_TIMEOUT = 30.0
SERVER_JSON = "postgres.json"
RUNTIME_PREFIX = "dks-postgres-"  # the private temp dir holding a cluster
USER = "dks"  # the superuser initdb creates; clients connect as it
DBNAME = "postgres"  # the database initdb creates
_PATHS = ("data_dir", "log_file", "bin_dir")


def remove_cluster(data_dir: Path) -> None:
    """Delete a stopped server's private directory (only one this package made)."""
    root = data_dir.parent
    if root.is_absolute() and root.name.startswith(RUNTIME_PREFIX):
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class Server:
    """A running (or recorded) local PostgreSQL server."""

    state_dir: Path  # holds postgres.json and postgres.log
    port: int  # on host, the only address it listens on (no Unix socket)
    password: str = field(repr=False)  # of user, generated per start; never echoed
    pid: int  # of the postmaster
    data_dir: Path  # the cluster, fresh per start, in a private directory of the temp dir
    log_file: Path  # initdb's and the server's output
    bin_dir: Path  # where its postgres comes from
    version: str  # e.g. 16.2
    os_user: str | None  # the system user it runs as; None: the caller
    host: str = processes.LOOPBACK
    user: str = USER
    dbname: str = DBNAME
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    @property
    def uri(self) -> str:
        """``postgresql://`` connection URI, with the password (URL-safe, as are the names)."""
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.dbname}"

    @property
    def dsn(self) -> str:
        """libpq keyword/value connection string, with the password (no value needs quotes)."""
        return (
            f"host={self.host} port={self.port} user={self.user} password={self.password} "
            f"dbname={self.dbname}"
        )

    @property
    def server_json(self) -> Path:
        """The ``postgres.json`` describing this server."""
        return self.state_dir / SERVER_JSON

    def connect(self, **kwargs: Any) -> psycopg.Connection[TupleRow]:
        """Open a psycopg connection; ``kwargs`` as ``psycopg.connect`` (``autocommit=True``)."""
        import psycopg

        return psycopg.connect(self.dsn, **kwargs)

    def is_running(self) -> bool:
        """Tell whether the postmaster is still alive."""
        if self._process is not None:
            return self._process.poll() is None  # also reaps our own child
        return processes.process_matches(self.pid, "-D", str(self.data_dir))

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> bool:
        """Stop the server and delete its cluster (not the log); True if it was running.

        SIGINT is PostgreSQL's fast shutdown, which ends open sessions (SIGTERM would
        wait for them); SIGKILL follows after ``timeout``.
        """
        stopped = processes.stop_group(
            self.pid, self.is_running, timeout, self._process, sig=signal.SIGINT
        )
        if not self.is_running():
            remove_cluster(self.data_dir)
        return stopped

    def save(self) -> None:
        """Write ``postgres.json`` (it holds the password: readable only by the owner)."""
        doc = {name: getattr(self, name) for name in _RECORDED}
        doc = {name: str(v) if name in _PATHS else v for name, v in doc.items()}
        processes.write_private_json(self.server_json, {"uri": self.uri, "dsn": self.dsn, **doc})

    @classmethod
    def load(cls, state_dir: Path | str) -> Server:
        """Read the server recorded in ``state_dir`` (it may no longer run), or raise."""
        path = Path(state_dir).resolve() / SERVER_JSON
        if not path.is_file():
            raise PostgresLocalError(f"no PostgreSQL server recorded in {path.parent}")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            kwargs: dict[str, Any] = {n: Path(doc[n]) if n in _PATHS else doc[n] for n in _RECORDED}
            return cls(state_dir=path.parent, **kwargs)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PostgresLocalError(f"unreadable {path}: {exc!r}") from exc


_RECORDED = [f.name for f in fields(Server) if f.name not in ("state_dir", "_process")]
