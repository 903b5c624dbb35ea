"""What every local server harness shares, whatever the server.

Free loopback ports, recognising and stopping a server process (which leads its own
process group, so its children go with it), polling a readiness check until a
deadline, quoting a server log in error messages, the owner-only JSON record of a
running server, an advisory file lock, the per-user download cache, and the
``start|stop|status --state-dir DIR`` command line.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"
CACHE_ENV = "DBT_KAFKA_SYNC_CACHE"
LOG_TAIL_LINES = 80
KILL_TIMEOUT = 10.0  # seconds to wait for a process to go after SIGKILL


# ------------------------------------------------------------------------------- ports


def free_ports(count: int) -> list[int]:
    """Reserve ``count`` distinct free loopback ports (held open together, then released)."""
    with contextlib.ExitStack() as stack:
        socks = [
            stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            for _ in range(count)
        ]
        for sock in socks:
            sock.bind((LOOPBACK, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


# ---------------------------------------------------------------------------- processes


def process_matches(pid: int, *args: str) -> bool:
    """Tell whether ``pid`` is alive and its command line holds every one of ``args``.

    Checking the command line guards against signalling an unrelated process that
    reused a stale pid.
    """
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):  # gone, or someone else's process
        return False
    if not Path("/proc/self").exists():
        return True  # no procfs (e.g. macOS): trust the pid
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    # A zombie has an empty command line, which correctly reads as "not running".
    return all(arg.encode() in cmdline for arg in args)


def signal_group(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to the process group ``pid`` leads (or to ``pid`` if it leads none)."""
    with contextlib.suppress(ProcessLookupError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def stop_group(
    pid: int,
    alive: Callable[[], bool],
    timeout: float,
    process: subprocess.Popen[bytes] | None = None,
) -> bool:
    """Stop a server: SIGTERM its process group, then SIGKILL after ``timeout``.

    Args:
        pid: Process id (and process group id) of the server.
        alive: Tells whether the server is still running.
        timeout: Seconds to wait for a clean shutdown before killing.
        process: The server's ``Popen`` when this process started it (it is then waited
            for, which also reaps it).

    Returns:
        True if a running server was stopped, False if it was not running.
    """
    if not alive():
        return False

    def exited(wait: float) -> bool:
        """Wait until the process is gone; True if it exited within ``wait`` seconds."""
        if process is not None:
            try:
                process.wait(wait)
            except subprocess.TimeoutExpired:
                return False
            return True
        return wait_for(lambda: not alive(), time.monotonic() + wait, interval=0.1)

    signal_group(pid, signal.SIGTERM)
    if not exited(timeout):
        signal_group(pid, signal.SIGKILL)
        exited(KILL_TIMEOUT)
    return True


def wait_for(
    check: Callable[[], bool],
    deadline: float,
    *,
    transient: tuple[type[BaseException], ...] = (),
    errors: list[str] | None = None,
    interval: float = 0.2,
) -> bool:
    """Poll ``check`` until it returns true or the ``time.monotonic()`` deadline passes.

    Args:
        check: The readiness check; it is tried at least once.
        deadline: ``time.monotonic()`` value after which to give up.
        transient: Exceptions of ``check`` that mean "not yet"; others propagate.
        errors: Receives the text of each transient exception, last one last.
        interval: Seconds to sleep between tries.

    Returns:
        True once ``check`` returned true, False if the deadline passed first.
    """
    while True:
        try:
            if check():
                return True
        except transient as exc:
            if errors is not None:
                errors.append(str(exc))
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


# --------------------------------------------------------------------------------- logs


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """Return the last ``lines`` lines of a text file, or a note if it does not exist."""
    if not path.is_file():
        return f"(no log file at {path})"
    with path.open(encoding="utf-8", errors="replace") as handle:
        return "".join(collections.deque(handle, maxlen=lines))


def error_lines(log_file: Path, is_error: Callable[[str], bool], limit: int = 8) -> list[str]:
    """Return the first ``limit`` lines of the log that ``is_error`` picks.

    After a failure a server may log a long orderly shutdown, which can push the root
    cause out of the tail; these lines keep it in the error message.
    """
    if not log_file.is_file():
        return []
    found: list[str] = []
    with log_file.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if is_error(line):
                found.append(line.rstrip())
                if len(found) >= limit:
                    break
    return found


def with_log_tail(message: str, log_file: Path, errors: Sequence[str] = ()) -> str:
    """Append the log's first ``errors`` (see :func:`error_lines`) and its tail to a message."""
    if errors:
        message += "\n--- first errors in the log ---\n" + "\n".join(errors)
    return f"{message}\n--- last {LOG_TAIL_LINES} lines of {log_file} ---\n{tail(log_file)}"


# ----------------------------------------------------------------- files, cache and lock


def write_private_json(path: Path, doc: dict[str, Any]) -> None:
    """Write a JSON document atomically, readable only by the owner (it holds secrets)."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    tmp.chmod(0o600)
    tmp.replace(path)


def cache_root() -> Path:
    """Return the per-user cache of downloaded and built server files.

    Returns:
        ``$DBT_KAFKA_SYNC_CACHE`` or, when the variable is unset,
        ``~/.cache/dbt-kafka-sync``.
    """
    configured = os.environ.get(CACHE_ENV)
    base = Path(configured).expanduser() if configured else Path.home() / ".cache/dbt-kafka-sync"
    return base.resolve()


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock so parallel test workers provision only once."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# -------------------------------------------------------------------------- command line

Command = Callable[[argparse.Namespace], int]


def run_command_line(
    prog: str,
    description: str,
    commands: dict[str, tuple[Command, str]],
    *,
    default_state_dir: Path,
    start_timeout: float,
    error: type[Exception],
    stateless: Sequence[str] = (),
    argv: Sequence[str] | None = None,
) -> int:
    """Run a server's command line: ``COMMAND [--state-dir DIR] [--timeout SECONDS]``.

    Args:
        prog: Program name for usage messages.
        description: What the program runs.
        commands: Handler and help text by command name; a handler returns the exit code.
        default_state_dir: Default of ``--state-dir``.
        start_timeout: Default of ``--timeout``, which only ``start`` takes.
        error: The harness's error: printed as ``error: ...`` with exit code 1.
        stateless: Commands without ``--state-dir``.
        argv: Arguments without the program name (defaults to ``sys.argv[1:]``).

    Returns:
        Process exit code (130 on Ctrl-C).
    """
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (handler, help_text) in commands.items():
        cmd = sub.add_parser(name, help=help_text)
        cmd.set_defaults(handler=handler)
        if name not in stateless:
            cmd.add_argument(
                "--state-dir",
                type=Path,
                default=default_state_dir,
                help=f"state directory (default: ./{default_state_dir})",
            )
        if name == "start":
            cmd.add_argument(
                "--timeout",
                type=float,
                default=start_timeout,
                help="seconds to wait for readiness",
            )
    args = parser.parse_args(argv)
    try:
        code: int = args.handler(args)
    except error as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # start() has already stopped a half-started server
        return 130
    return code
