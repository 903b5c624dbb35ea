"""Command line, for a server that stays up between commands (``tests`` on ``sys.path``).

``python -m local_servers.postgres start|status|stop [--state-dir DIR]``; ``start`` also
takes ``--timeout SECONDS``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from local_servers import processes
from local_servers.postgres.errors import PostgresLocalError
from local_servers.postgres.lifecycle import DEFAULT_START_TIMEOUT, running_server, start, stop
from local_servers.postgres.server import Server

DEFAULT_STATE_DIR = Path(".postgres-local")


def _details(server: Server) -> dict[str, object]:
    """What ``start`` and ``status`` print about a server."""
    return {
        "version": server.version,
        "uri": server.uri,
        "data dir": server.data_dir,
        "runs as": server.os_user or "the caller",
        "binaries": server.bin_dir,
        "log file": server.log_file,
        "postgres.json": server.server_json,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; ``argv`` defaults to ``sys.argv[1:]``; returns the exit code."""
    commands = processes.server_commands(
        "PostgreSQL server", Server.load, running_server, start, stop, _details, PostgresLocalError
    )
    return processes.run_command_line(
        "python -m local_servers.postgres",
        "Local PostgreSQL for tests.",
        commands,
        default_state_dir=DEFAULT_STATE_DIR,
        start_timeout=DEFAULT_START_TIMEOUT,
        error=PostgresLocalError,
        argv=argv,
    )


if __name__ == "__main__":
    sys.exit(main())
