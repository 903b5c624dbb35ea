"""The local PostgreSQL server's error, and error messages that quote its log."""

from __future__ import annotations

from pathlib import Path

from local_servers import processes


class PostgresLocalError(RuntimeError):
    """Raised when the local PostgreSQL server cannot be provisioned, started or reached."""


def _is_error_line(line: str) -> bool:
    """Tell whether a server or initdb log line reports an error."""
    return any(tag in line for tag in (" FATAL:", " PANIC:", " ERROR:", "initdb: error"))


def with_log_tail(message: str, log_file: Path) -> str:
    """Append the log's first errors and its tail to an error message."""
    return processes.with_log_tail(message, log_file, _is_error_line)
