"""Start, find and stop a local broker: provisioning, the JVM, and readiness.

Every start generates a fresh cluster, TLS material, passwords and IAM test credentials
in the state directory, launches ``kafka.Kafka`` in its own session, and waits until
every authenticating listener lets a client in.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

from local_servers import processes
from local_servers.kafka.broker import DEFAULT_STOP_TIMEOUT, Broker, is_broker_process
from local_servers.kafka.clients import CLIENT_LOG, metadata
from local_servers.kafka.config import (
    BROKER_JSON,
    DATA_DIR,
    LISTENERS,
    LOG4J_CONFIG,
    LOG_FILE,
    PROPERTIES,
    SCRAM_MECHANISMS,
    TLS_DIR,
    cluster_id,
    new_users,
    server_properties,
    write_log4j_config,
    write_properties,
)
from local_servers.kafka.errors import KafkaLocalError, with_log_tail
from local_servers.kafka.iam import iam_authenticates, iam_handler_jar, new_iam_credentials
from local_servers.kafka.jars import KAFKA_VERSION, fetch_jars, java
from local_servers.kafka.tls import make_tls, tls_files
from local_servers.processes import LOOPBACK

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient

DEFAULT_START_TIMEOUT = 90.0

BROKER_HEAP = ("-Xms256m", "-Xmx1g")
# The same G1 settings kafka-server-start.sh uses, so benchmarks see realistic GC.
BROKER_JVM_OPTS = (
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:InitiatingHeapOccupancyPercent=35",
    "-XX:+ExplicitGCInvokesConcurrent",
    "-Djava.awt.headless=true",
)
# StorageTool is a short-lived CLI: C1-only JIT and serial GC start noticeably faster.
TOOL_JVM_OPTS = ("-Xmx256m", "-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")


# ---------------------------------------------------------------------------- provisioning


def _java_cmd(
    state_dir: Path,
    libs: Path,
    jvm_opts: Sequence[str],
    main_class: str,
    args: Sequence[str],
    extra_jars: Sequence[Path] = (),
) -> list[str]:
    """Build a java command running ``main_class`` from the jar cache with our log4j2 config."""
    log4j = f"-Dlog4j2.configurationFile={state_dir / LOG4J_CONFIG}"
    classpath = os.pathsep.join([f"{libs}/*", *map(str, extra_jars)])
    return [java(), *jvm_opts, log4j, "-cp", classpath, main_class, *args]


def _format_storage(
    state_dir: Path, libs: Path, properties: Path, users: dict[str, dict[str, str]]
) -> None:
    """Format the KRaft metadata log, seeding the SCRAM credentials."""
    args = ["format", "--standalone", "-t", cluster_id(), "-c", str(properties)]
    for mechanism in SCRAM_MECHANISMS:
        user = users[mechanism.lower()]
        credential = f"name={user['username']},password={user['password']}"
        args += ["--add-scram", f"{mechanism}=[{credential}]"]
    cmd = _java_cmd(state_dir, libs, TOOL_JVM_OPTS, "kafka.tools.StorageTool", args)
    log_file = state_dir / LOG_FILE
    with log_file.open("ab") as log:
        log.write(b"=== kafka_local: formatting KRaft storage ===\n")
        log.flush()
        code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
    if code != 0:
        raise KafkaLocalError(with_log_tail(f"Kafka storage format failed (exit {code})", log_file))


def _launch(
    state_dir: Path, libs: Path, properties: Path, extra_jars: Sequence[Path] = ()
) -> subprocess.Popen[bytes]:
    """Start ``kafka.Kafka`` in its own session with output appended to the log."""
    jvm_opts = [*BROKER_HEAP, *BROKER_JVM_OPTS]
    cmd = _java_cmd(state_dir, libs, jvm_opts, "kafka.Kafka", [str(properties)], extra_jars)
    return processes.spawn(cmd, state_dir / LOG_FILE, state_dir, "kafka_local: starting broker")


def _clear_state(state_dir: Path) -> None:
    """Remove artifacts of a previous (stopped) broker; other files are left alone."""
    for name in (DATA_DIR, TLS_DIR):
        shutil.rmtree(state_dir / name, ignore_errors=True)
    for name in (BROKER_JSON, PROPERTIES, LOG4J_CONFIG):
        (state_dir / name).unlink(missing_ok=True)
    log_file = state_dir / LOG_FILE
    if log_file.exists():  # keep one previous log around for post-mortems
        log_file.replace(state_dir / f"{LOG_FILE}.prev")


# ---------------------------------------------------------------------------- readiness


def _probe_admin(
    broker: Broker, protocol: str, mechanism: str | None, errors: list[str]
) -> AdminClient:
    """Create a readiness-probe AdminClient that records client errors in ``errors``."""
    from confluent_kafka.admin import AdminClient

    conf = broker.client_config(protocol, mechanism)
    # Retry refused connections quickly: the default backoff grows to 10 s.
    conf.update({"reconnect.backoff.ms": 100, "reconnect.backoff.max.ms": 500})
    return AdminClient(conf, logger=CLIENT_LOG, error_cb=lambda err: errors.append(str(err)))


def wait_until_ready(
    broker: Broker, timeout: float = DEFAULT_START_TIMEOUT, alive: Callable[[], bool] | None = None
) -> None:
    """Wait until every authenticating listener lets a client in.

    Probes PLAINTEXT, SASL_SSL with SCRAM-SHA-512 and SSL with the client certificate
    (each must serve metadata), and authenticates on IAM with a freshly signed token.

    Args:
        broker: Broker to probe.
        timeout: Total seconds to wait.
        alive: Returns False once the broker process has died (defaults to
            ``broker.is_running``); checked between tries to fail fast.

    Raises:
        KafkaLocalError: If the process dies, the IAM listener rejects its token, or the
            deadline passes. The message holds the last client error and the tail of the
            broker log.
    """
    from confluent_kafka import KafkaException

    is_alive = alive or broker.is_running
    deadline = time.monotonic() + timeout
    errors: list[str] = []

    def metadata_check(protocol: str, mechanism: str | None) -> Callable[[], bool]:
        admin = _probe_admin(broker, protocol, mechanism, errors)
        return lambda: len(metadata(admin, deadline).brokers) == 1

    def iam_check() -> Callable[[], bool]:
        return lambda: iam_authenticates(broker, max(0.1, min(2.0, deadline - time.monotonic())))

    probes: list[tuple[str, Callable[[], Callable[[], bool]]]] = [
        ("PLAINTEXT", lambda: metadata_check("PLAINTEXT", None)),
        ("SASL_SSL", lambda: metadata_check("SASL_SSL", "SCRAM-SHA-512")),
        ("SSL", lambda: metadata_check("SSL", None)),
        ("IAM", iam_check),
    ]

    def alive_and(check: Callable[[], bool]) -> bool:
        """Run ``check``, first failing fast if the broker process has died."""
        if not is_alive():
            raise KafkaLocalError(
                with_log_tail(f"Kafka broker (pid {broker.pid}) exited", broker.log_file)
            )
        return check()

    for listener, make_check in probes:
        check = make_check()  # only now: a client made early would back off while waiting
        ready = processes.wait_for(
            functools.partial(alive_and, check),
            deadline,
            transient=(KafkaException, OSError),  # ssl.SSLError is an OSError
            errors=errors,
        )
        if not ready:
            last = errors[-1] if errors else "none"
            raise KafkaLocalError(
                with_log_tail(
                    f"Kafka broker not ready on {listener} after {timeout:g} s "
                    f"(last client error: {last})",
                    broker.log_file,
                )
            )


# ------------------------------------------------------------------------- start / stop


def _start_once(state_dir: Path, libs: Path, extra_jars: Sequence[Path], timeout: float) -> Broker:
    """Provision a fresh broker in ``state_dir``, launch it and wait for readiness."""
    _clear_state(state_dir)
    names = (*LISTENERS, "CONTROLLER")
    ports = dict(zip(names, processes.free_ports(len(names)), strict=True))
    users = new_users()
    iam_credentials = new_iam_credentials()
    tls = tls_files(state_dir / TLS_DIR)
    properties = state_dir / PROPERTIES
    write_properties(properties, server_properties(state_dir, ports, tls, users, iam_credentials))
    write_log4j_config(state_dir / LOG4J_CONFIG)
    # Formatting never reads the TLS files, so make them meanwhile (RSA keys take a while).
    with ThreadPoolExecutor(max_workers=1) as pool:
        tls_made = pool.submit(make_tls, state_dir / TLS_DIR)
        _format_storage(state_dir, libs, properties, users)
        tls_made.result()
    process = _launch(state_dir, libs, properties, extra_jars)
    broker = Broker(
        state_dir=state_dir,
        pid=process.pid,
        log_file=state_dir / LOG_FILE,
        kafka_version=KAFKA_VERSION,
        plaintext=f"{LOOPBACK}:{ports['PLAINTEXT']}",
        sasl_plaintext=f"{LOOPBACK}:{ports['SASL_PLAINTEXT']}",
        sasl_ssl=f"{LOOPBACK}:{ports['SASL_SSL']}",
        ca_file=tls.ca_file,
        users=users,
        libs_dir=libs,
        ssl=f"{LOOPBACK}:{ports['SSL']}",
        client_cert_file=tls.client_cert,
        client_key_file=tls.client_key,
        bad_host=f"{LOOPBACK}:{ports['BADHOST']}",
        other_ca_file=tls.other_ca_file,
        iam=f"{LOOPBACK}:{ports['IAM']}",
        iam_credentials=iam_credentials,
        _process=process,
    )
    try:
        wait_until_ready(broker, timeout)
    except BaseException:
        broker.stop(timeout=10.0)  # never leave a half-started JVM behind
        raise
    broker.save()
    return broker


def start(state_dir: Path | str, *, timeout: float = DEFAULT_START_TIMEOUT) -> Broker:
    """Start a fresh local Kafka broker and wait until it serves all listeners.

    Args:
        state_dir: Directory for config, data, TLS material, log and ``broker.json``.
            Created if missing; a stopped broker's artifacts there are replaced.
        timeout: Seconds to wait for readiness.

    Returns:
        The running broker (``broker.json`` has been written).

    Raises:
        KafkaLocalError: If a broker from ``state_dir`` is still running, or provisioning
            or startup fails (the message includes the tail of the broker log).
    """
    state = Path(state_dir).resolve()
    state.mkdir(parents=True, exist_ok=True)
    # Only the pid matters here, so a broker.json of an older version protects as well.
    pid = _recorded_pid(state)
    if pid is not None and is_broker_process(pid, state / PROPERTIES):
        raise KafkaLocalError(
            f"a broker (pid {pid}) is already running from {state}; stop it first"
        )
    libs = fetch_jars()
    extra_jars = [iam_handler_jar(libs)]
    return processes.retry_if_port_taken(
        lambda: _start_once(state, libs, extra_jars, timeout), state / LOG_FILE, KafkaLocalError
    )


def relaunch(broker: Broker, *, timeout: float = DEFAULT_START_TIMEOUT) -> Broker:
    """Start a stopped broker again on its data, configuration and ports (a broker restart).

    Returns:
        The broker with its new process (``broker.json`` rewritten), once ready.

    Raises:
        KafkaLocalError: If it is still running, or does not become ready in time.
    """
    if broker.is_running():
        raise KafkaLocalError(f"the broker (pid {broker.pid}) is still running; stop it first")
    extra_jars = [iam_handler_jar(broker.libs_dir)]
    process = _launch(broker.state_dir, broker.libs_dir, broker.state_dir / PROPERTIES, extra_jars)
    again = dataclasses.replace(broker, pid=process.pid, _process=process)
    try:
        wait_until_ready(again, timeout)
    except BaseException:
        again.stop(timeout=10.0)
        raise
    again.save()
    return again


def running_broker(state_dir: Path | str, timeout: float = 10.0) -> Broker | None:
    """Return the broker recorded in ``state_dir`` if it is running and answering, else None."""
    return processes.running(Broker.load, wait_until_ready, KafkaLocalError, state_dir, timeout)


def stop(state_dir: Path | str, timeout: float = DEFAULT_STOP_TIMEOUT) -> bool:
    """Stop the broker recorded in ``state_dir``; a no-op if none is running.

    Args:
        state_dir: State directory passed to :func:`start`.
        timeout: Seconds to wait for a clean shutdown before SIGKILL.

    Returns:
        True if a running broker was stopped.
    """
    try:
        broker = Broker.load(state_dir)
    except KafkaLocalError:  # e.g. written by an older version: the pid is enough to stop it
        return _stop_recorded_pid(Path(state_dir).resolve(), timeout)
    return broker.stop(timeout)


def _recorded_pid(state: Path) -> int | None:
    """Read only the pid from ``broker.json`` (None if there is no readable one)."""
    try:
        return int(json.loads((state / BROKER_JSON).read_text(encoding="utf-8"))["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _stop_recorded_pid(state: Path, timeout: float) -> bool:
    """Stop the broker whose pid ``broker.json`` records: SIGTERM, then SIGKILL."""
    pid = _recorded_pid(state)
    properties = state / PROPERTIES
    if pid is None:
        return False
    return processes.stop_group(pid, lambda: is_broker_process(pid, properties), timeout)
