"""The local broker's error, and error messages that quote the broker log."""

from __future__ import annotations

from pathlib import Path

from local_servers import processes


class KafkaLocalError(RuntimeError):
    """Raised when the local broker cannot be provisioned, started or reached."""


def _is_error_line(line: str) -> bool:
    """Tell whether a broker log line is an ERROR/FATAL line or an exception's cause."""
    return "] ERROR " in line or "] FATAL " in line or line.startswith("Caused by: ")


def with_log_tail(message: str, log_file: Path) -> str:
    """Append the broker log's first errors and its tail to an error message."""
    return processes.with_log_tail(message, log_file, _is_error_line)
