"""What every local server harness shares, whatever the server.

Free loopback ports (and one retry when a server loses the race for one), recognising
and stopping a server process (which leads its own process group, so its children go
with it), polling a readiness check until a deadline, quoting a server log in error
messages, the owner-only JSON record of a running server, an advisory file lock, the
per-user download cache, and the ``start|stop|status --state-dir DIR`` command line.
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
from typing import Any, Protocol, TypeVar

LOOPBACK = "127.0.0.1"
CACHE_ENV = "DBT_KAFKA_SYNC_CACHE"
LOG_TAIL_LINES = 80
KILL_TIMEOUT = 10.0  # seconds to wait for a process to go after SIGKILL
# What a server logs when another process took the port picked as free moments before.
PORT_TAKEN = "Address already in use"

T = TypeVar("T")


class Recorded(Protocol):
    """A server as its harness records it in the state directory."""

    @property
    def pid(self) -> int:
        """Process id of the server."""

    @property
    def state_dir(self) -> Path:
        """Where its record and log live."""

    @property
    def log_file(self) -> Path:
        """Its log."""

    def is_running(self) -> bool:
        """Tell whether the server process is alive."""


S = TypeVar("S", bound=Recorded)


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


def retry_if_port_taken(start_once: Callable[[], T], log_file: Path, error: type[Exception]) -> T:
    """Call ``start_once``; once more if the server could not bind a port it was given.

    A free port is only free until the server binds it: a parallel test worker may take
    it in between. Retrying re-picks the ports.
    """
    try:
        return start_once()
    except error:
        if not log_file.is_file() or PORT_TAKEN not in log_file.read_text(errors="replace"):
            raise
    return start_once()


# ---------------------------------------------------------------------------- processes


def spawn(
    cmd: Sequence[str], log_file: Path, cwd: Path, note: str, **popen: Any
) -> subprocess.Popen[bytes]:
    """Start ``cmd`` in a session of its own, its output appended to the log after ``note``.

    Its own session lets :func:`stop_group` signal its whole process group, and spares it
    the ^C of the terminal that started it.
    """
    with log_file.open("ab") as log:
        log.write(f"=== {note} ===\n".encode())
        log.flush()
        return subprocess.Popen(
            list(cmd),
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            **popen,
        )


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


def _proc_stat(pid: int) -> list[str]:
    """Return the fields of ``/proc/<pid>/stat`` after the name (state, ppid, ...); [] if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text(errors="replace")
    except OSError:
        return []
    return text[text.rfind(")") + 2 :].split()  # the name may hold spaces and parentheses


def _children(pid: int) -> list[int]:
    """Return the children of ``pid`` (none without procfs)."""
    if not Path("/proc/self").exists():
        return []
    found = (int(entry) for entry in os.listdir("/proc") if entry.isdigit())
    return [child for child in found if _proc_stat(child)[1:2] == [str(pid)]]


def stop_group(
    pid: int,
    alive: Callable[[], bool],
    timeout: float,
    process: subprocess.Popen[bytes] | None = None,
    *,
    sig: signal.Signals = signal.SIGTERM,
) -> bool:
    """Stop a server: ``sig`` to its process group, then SIGKILL after ``timeout``.

    SIGKILL also goes to the server's children that lead sessions of their own
    (PostgreSQL's do), and the stop waits until they are gone too.

    Args:
        pid: Process id (and process group id) of the server.
        alive: Tells whether the server is still running.
        timeout: Seconds to wait for a clean shutdown before killing.
        process: The server's ``Popen`` when this process started it (it is then waited
            for, which also reaps it).
        sig: The signal that asks the server to shut down cleanly.

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

    signal_group(pid, sig)
    if not exited(timeout):
        children = _children(pid)
        signal_group(pid, signal.SIGKILL)
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        exited(KILL_TIMEOUT)

        def children_gone() -> bool:
            return all(_proc_stat(child)[:1] in ([], ["Z"]) for child in children)

        wait_for(children_gone, time.monotonic() + KILL_TIMEOUT, interval=0.1)
    return True


def running(
    load: Callable[[Path], S],
    ready: Callable[[S, float], None],
    error: type[Exception],
    state_dir: Path | str,
    timeout: float,
) -> S | None:
    """Return the server recorded in ``state_dir`` if it is running and answering.

    Args:
        load: Reads the record; raises ``error`` if there is none.
        ready: Waits up to the given seconds for the server to answer; raises ``error``.
        error: The harness's error.
        state_dir: The server's state directory.
        timeout: Seconds to wait for it to answer.

    Returns:
        The server, or None if none is recorded, it is not running, or it does not answer.
    """
    try:
        server = load(Path(state_dir))
        if not server.is_running():
            return None
        ready(server, timeout)
    except error:
        return None
    return server


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


def with_log_tail(
    message: str, log_file: Path, is_error: Callable[[str], bool] | None = None
) -> str:
    """Append the log's first errors (lines ``is_error`` picks) and its tail to a message."""
    errors = error_lines(log_file, is_error) if is_error else []
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


def server_commands(
    name: str,
    load: Callable[[Path], S],
    running: Callable[[Path], S | None],
    start: Callable[..., S],
    stop: Callable[[Path], bool],
    details: Callable[[S], dict[str, object]],
    error: type[Exception],
) -> dict[str, tuple[Command, str]]:
    """Build a harness's ``start``, ``stop`` and ``status`` commands.

    Args:
        name: What runs, e.g. ``Kafka broker``.
        load: Reads the server recorded in a state directory; raises ``error`` if none.
        running: Returns the recorded server if it is running and answering.
        start: Starts a server: ``start(state_dir, timeout=SECONDS)``.
        stop: Stops the recorded server; True if one was running.
        details: What ``start`` and ``status`` print about a server, by label.
        error: The harness's error.
    """

    def print_details(server: S) -> None:
        for label, value in details(server).items():
            print(f"  {label:<15} {value}")

    def cmd_start(args: argparse.Namespace) -> int:
        """Start a server, or reuse the one already running from the state dir."""
        began = time.monotonic()
        server = running(args.state_dir)
        if server is not None:
            print(f"Reusing the {name} already running from {server.state_dir} (pid {server.pid})")
        else:
            if stop(args.state_dir):  # recorded process alive but not answering
                print(f"A recorded {name} was running but not answering; it was stopped")
            server = start(args.state_dir, timeout=args.timeout)
            print(f"{name} started in {time.monotonic() - began:.1f} s (pid {server.pid})")
        print_details(server)
        return 0

    def cmd_stop(args: argparse.Namespace) -> int:
        """Stop the recorded server, if any."""
        print(f"{name} stopped" if stop(args.state_dir) else f"No running {name}")
        return 0

    def cmd_status(args: argparse.Namespace) -> int:
        """Report whether the recorded server runs and answers; exit 1 if not."""
        try:
            server = load(args.state_dir)
        except error as exc:
            print(exc)
            return 1
        if running(args.state_dir) is None:
            state = "running but not answering" if server.is_running() else "not running"
            print(f"{name} (pid {server.pid}) is {state}; log: {server.log_file}")
            return 1
        print(f"{name} running (pid {server.pid})")
        print_details(server)
        return 0

    return {
        "start": (cmd_start, f"start a {name} (or reuse a running one)"),
        "stop": (cmd_stop, f"stop the {name}"),
        "status": (cmd_status, f"show whether the {name} runs; exit 1 if not"),
    }


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
