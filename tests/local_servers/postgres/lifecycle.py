"""Start, find and stop a local PostgreSQL server: initdb, launch, readiness.

Each start makes a fresh cluster in a private directory of the system temp dir, which
the service user can reach even when the state dir is under a 0700 directory of root.
The server listens on 127.0.0.1 only (no Unix socket), on a free port, and initdb's
``--auth`` asks every connection for the password (scram-sha-256).
"""

from __future__ import annotations

import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from local_servers import processes
from local_servers.postgres.binaries import Binaries, find_binaries
from local_servers.postgres.errors import PostgresLocalError, with_log_tail
from local_servers.postgres.server import (
    DEFAULT_STOP_TIMEOUT,
    RUNTIME_PREFIX,
    USER,
    Server,
    remove_cluster,
)
from local_servers.postgres.service_user import Account, give_to, run_as, service_account

DEFAULT_START_TIMEOUT = 60.0
LOG_FILE = "postgres.log"
_SETTINGS = {  # -c options, which win over postgresql.conf
    "listen_addresses": processes.LOOPBACK,
    "unix_socket_directories": "",
    "fsync": "off",  # a throwaway cluster: durability only costs time
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "timezone": "UTC",
}


def _initdb(
    initdb: Path, root: Path, password: str, account: Account | None, log: Path, timeout: float
) -> Path:
    """Create a cluster in ``root/data`` whose superuser :data:`USER` has ``password``."""
    pwfile = root / "initdb.pw"
    pwfile.write_text(password + "\n", encoding="utf-8")  # root is private (0700)
    give_to(account, root, pwfile)
    data_dir = root / "data"
    cmd = [str(initdb), f"--pgdata={data_dir}", f"--username={USER}", f"--pwfile={pwfile}"]
    cmd += ["--auth=scram-sha-256", "--encoding=UTF8", "--no-locale", "--no-sync"]
    process = processes.spawn(cmd, log, root, "initdb", **run_as(account))
    try:
        code = process.wait(timeout)
    except subprocess.TimeoutExpired:
        processes.signal_group(process.pid, signal.SIGKILL)
        process.wait()
        raise PostgresLocalError(with_log_tail("initdb timed out", log)) from None
    finally:
        pwfile.unlink(missing_ok=True)
    if code != 0:
        raise PostgresLocalError(with_log_tail(f"initdb failed (exit {code})", log))
    return data_dir


def wait_until_ready(server: Server, timeout: float = DEFAULT_START_TIMEOUT) -> None:
    """Poll until ``select 1`` succeeds over TCP with the password, else PostgresLocalError."""
    import psycopg

    errors: list[str] = []

    def answers() -> bool:
        if not server.is_running():
            message = f"PostgreSQL (pid {server.pid}) exited"
            raise PostgresLocalError(with_log_tail(message, server.log_file))
        with server.connect(connect_timeout=2) as conn:
            return conn.execute("select 1").fetchone() == (1,)

    deadline = time.monotonic() + timeout
    transient = (psycopg.OperationalError,)
    if not processes.wait_for(answers, deadline, transient=transient, errors=errors, interval=0.05):
        last = errors[-1].strip() if errors else "none"
        message = f"PostgreSQL not ready on port {server.port} within {timeout:g} s ({last})"
        raise PostgresLocalError(with_log_tail(message, server.log_file))


def _recorded(state_dir: Path | str) -> Server | None:
    """Return the server recorded in ``state_dir``, running or not; None if none is."""
    try:
        return Server.load(state_dir)
    except PostgresLocalError:
        return None


def _start_once(state: Path, binaries: Binaries, account: Account | None, timeout: float) -> Server:
    """Provision a fresh cluster, launch it and wait until it answers."""
    deadline = time.monotonic() + timeout
    previous = _recorded(state)
    if previous is not None:
        remove_cluster(previous.data_dir)
    log = state / LOG_FILE
    if log.exists():  # keep one previous log around for post-mortems
        log.replace(state / f"{LOG_FILE}.prev")
    port = processes.free_ports(1)[0]
    password = secrets.token_urlsafe(24)
    root = Path(tempfile.mkdtemp(prefix=RUNTIME_PREFIX)).resolve()
    try:
        data_dir = _initdb(binaries.bin_dir / "initdb", root, password, account, log, timeout)
        cmd = [str(binaries.bin_dir / "postgres"), "-D", str(data_dir), "-c", f"port={port}"]
        for name, value in _SETTINGS.items():
            cmd += ["-c", f"{name}={value}"]
        process = processes.spawn(cmd, log, root, "postgres", **run_as(account))
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    server = Server(
        state_dir=state,
        port=port,
        password=password,
        pid=process.pid,
        data_dir=data_dir,
        log_file=log,
        bin_dir=binaries.bin_dir,
        version=binaries.version,
        os_user=None if account is None else account.pw_name,
        _process=process,
    )
    try:
        server.save()  # already now, so that stop(state_dir) finds a start that died
        wait_until_ready(server, max(1.0, deadline - time.monotonic()))
    except BaseException:
        server.stop(timeout=10.0)  # never leave a half-started server behind
        raise
    return server


def start(state_dir: Path | str, *, timeout: float = DEFAULT_START_TIMEOUT) -> Server:
    """Start a fresh server recorded in ``state_dir``; return once ``select 1`` succeeds.

    Raises PostgresLocalError if a server from ``state_dir`` still runs or the start fails.
    """
    state = Path(state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    previous = _recorded(state)
    if previous is not None and previous.is_running():
        raise PostgresLocalError(f"PostgreSQL (pid {previous.pid}) already runs from {state}")
    account = service_account()
    binaries = find_binaries(account)
    return processes.retry_if_port_taken(
        lambda: _start_once(state, binaries, account, timeout), state / LOG_FILE, PostgresLocalError
    )


def running_server(state_dir: Path | str, timeout: float = 10.0) -> Server | None:
    """Return the server recorded in ``state_dir`` if it is running and answering, else None."""
    return processes.running(Server.load, wait_until_ready, PostgresLocalError, state_dir, timeout)


def stop(state_dir: Path | str, timeout: float = DEFAULT_STOP_TIMEOUT) -> bool:
    """Stop the server recorded in ``state_dir`` (from any process); True if one was running."""
    server = _recorded(state_dir)
    return server is not None and server.stop(timeout)
