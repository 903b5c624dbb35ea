"""Run a real PostgreSQL server on loopback for tests, benchmarks and the demo.

Modules: ``binaries`` (initdb and postgres from the pgserver wheel or Debian),
``service_user`` (an unprivileged user when root), ``server`` (the :class:`Server`
record), ``lifecycle`` (start, readiness, stop) and ``__main__`` (the command line).

Library use::

    server = start(Path("/tmp/pg"))
    with server.connect() as conn:
        conn.execute("create table t (id int)")
    print(server.uri)  # postgresql://dks:<password>@127.0.0.1:<port>/postgres
    server.stop()  # or stop(Path("/tmp/pg")) from another process

Command line: ``python -m local_servers.postgres start|stop|status [--state-dir DIR]``.
"""

from __future__ import annotations

from collections.abc import Sequence

from local_servers.postgres.binaries import find_binaries
from local_servers.postgres.errors import PostgresLocalError
from local_servers.postgres.lifecycle import running_server, start, stop, wait_until_ready
from local_servers.postgres.server import Server


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line (imported only now, so ``python -m`` finds no __main__ loaded)."""
    from local_servers.postgres.__main__ import main as run

    return run(argv)


__all__ = [
    "PostgresLocalError",
    "Server",
    "find_binaries",
    "main",
    "running_server",
    "start",
    "stop",
    "wait_until_ready",
]
