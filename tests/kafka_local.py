#!/usr/bin/env python3
"""Run a real single-node Apache Kafka broker on loopback for tests, demos and benchmarks.

The broker is a genuine Apache Kafka (KRaft, combined broker+controller) started from
jars that Maven resolves into a per-user cache, so no Docker is needed, only Java 17+,
Maven, and openssl. Every start generates a fresh cluster, TLS material and passwords.

Listeners (all on 127.0.0.1, free ports picked at start):

* ``PLAINTEXT`` - no auth; also used between broker and itself.
* ``SASL_PLAINTEXT`` - PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512.
* ``SASL_SSL`` - the same mechanisms over TLS with a per-start CA (``ca_file``).

Everything a client needs is written to ``<state_dir>/broker.json``.

Library use::

    broker = start(Path("/tmp/kafka"))
    broker.create_topic("orders", partitions=3)
    conf = broker.client_config("SASL_SSL", "SCRAM-SHA-512")
    broker.stop()

Command line::

    python tests/kafka_local.py start [--state-dir DIR] [--timeout SECONDS]
    python tests/kafka_local.py status [--state-dir DIR]
    python tests/kafka_local.py stop [--state-dir DIR]
    python tests/kafka_local.py fetch

The jar cache is ``$DBT_KAFKA_SYNC_CACHE/kafka-<version>/libs`` or, when the variable is
unset, ``~/.cache/dbt-kafka-sync/kafka-<version>/libs``.
"""

from __future__ import annotations

import argparse
import base64
import collections
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from confluent_kafka import Message
    from confluent_kafka.admin import AdminClient
    from confluent_kafka.admin._metadata import ClusterMetadata

KAFKA_VERSION = "4.1.1"
SCALA_VERSION = "2.13"
# Matches the log4j-core that kafka 4.1.1 depends on; the slf4j 1.x binding routes
# Kafka's slf4j logging into log4j2.
LOG4J_VERSION = "2.24.3"
MAVEN_DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"

CACHE_ENV = "DBT_KAFKA_SYNC_CACHE"
DEFAULT_STATE_DIR = Path(".kafka-local")
DEFAULT_START_TIMEOUT = 90.0
DEFAULT_STOP_TIMEOUT = 30.0
LOG_TAIL_LINES = 80

LOOPBACK = "127.0.0.1"
NODE_ID = 1
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
_LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}
SASL_LISTENERS = ("SASL_PLAINTEXT", "SASL_SSL")
CLIENT_LISTENERS = ("PLAINTEXT", *SASL_LISTENERS)

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

_MARKER = ".dbt-kafka-sync-complete"
_BROKER_JSON = "broker.json"
_LOG_FILE = "broker.log"
_PROPERTIES = "server.properties"
_LOG4J_CONFIG = "log4j2.xml"
_DATA_DIR = "data"
_TLS_DIR = "tls"
_PLAIN_USER = "dbt_plain"
_SCRAM_USER = "dbt_scram"

ClientConfig = dict[str, str | int | float | bool]

# librdkafka logs every refused connection while the broker boots; keep that out of the
# caller's stderr but let them attach a handler to this logger when debugging.
_CLIENT_LOG = logging.getLogger("kafka_local.librdkafka")
_CLIENT_LOG.addHandler(logging.NullHandler())
_CLIENT_LOG.propagate = False


class KafkaLocalError(RuntimeError):
    """Raised when the local broker cannot be provisioned, started or reached."""


# --------------------------------------------------------------------------- jar cache


def cache_dir() -> Path:
    """Return the per-version cache directory (holds ``pom.xml`` and ``libs/``).

    Returns:
        ``$DBT_KAFKA_SYNC_CACHE/kafka-<version>`` or
        ``~/.cache/dbt-kafka-sync/kafka-<version>``.
    """
    configured = os.environ.get(CACHE_ENV)
    base = Path(configured).expanduser() if configured else Path.home() / ".cache/dbt-kafka-sync"
    return base.resolve() / f"kafka-{KAFKA_VERSION}"


def _pom_xml() -> str:
    """Render the throwaway Maven project whose runtime dependencies form the classpath."""
    deps = [
        ("org.apache.kafka", f"kafka_{SCALA_VERSION}", KAFKA_VERSION),
        ("org.apache.kafka", "kafka-tools", KAFKA_VERSION),
        ("org.apache.logging.log4j", "log4j-slf4j-impl", LOG4J_VERSION),
    ]
    rendered = "\n".join(
        f"    <dependency><groupId>{g}</groupId><artifactId>{a}</artifactId>"
        f"<version>{v}</version></dependency>"
        for g, a, v in deps
    )
    return (
        '<project xmlns="http://maven.apache.org/POM/4.0.0">\n'
        "  <modelVersion>4.0.0</modelVersion>\n"
        "  <groupId>local.dbt-kafka-sync</groupId>\n"
        f"  <artifactId>kafka-local-runtime</artifactId><version>{KAFKA_VERSION}</version>\n"
        "  <packaging>pom</packaging>\n"
        f"  <dependencies>\n{rendered}\n  </dependencies>\n"
        "</project>\n"
    )


def _cache_is_complete(libs: Path, digest: str) -> bool:
    """Tell whether ``libs`` holds a finished resolution of the current pom."""
    marker = libs / _MARKER
    return marker.is_file() and marker.read_text(encoding="utf-8").strip() == digest


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock so parallel test workers resolve jars only once."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")  # Maven colours output even in batch mode


def _run_maven(pom: Path, output_dir: Path) -> None:
    """Copy the pom's runtime dependency jars into ``output_dir``.

    Raises:
        KafkaLocalError: If Maven is missing or fails; the message holds its output.
    """
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaLocalError("Maven ('mvn') is not on PATH; it is needed to fetch Kafka jars")
    cmd = [
        mvn,
        "-B",
        "-q",
        "-f",
        str(pom),
        f"{MAVEN_DEPENDENCY_PLUGIN}:copy-dependencies",
        f"-DoutputDirectory={output_dir}",
        "-DincludeScope=runtime",
    ]
    result = subprocess.run(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
    )
    if result.returncode != 0:
        raise KafkaLocalError(
            f"Maven failed (exit {result.returncode}) resolving Kafka {KAFKA_VERSION} jars.\n"
            f"Command: {' '.join(cmd)}\n--- mvn output ---\n{_ANSI_ESCAPE.sub('', result.stdout)}"
        )


def fetch_jars() -> Path:
    """Resolve the Kafka broker and tools jars into the cache, unless already complete.

    Returns:
        The directory holding the jars (use ``<dir>/*`` as the Java classpath).

    Raises:
        KafkaLocalError: If Maven fails or the expected jars are missing afterwards.
    """
    root = cache_dir()
    libs = root / "libs"
    pom = _pom_xml()
    digest = hashlib.sha256(pom.encode()).hexdigest()
    if _cache_is_complete(libs, digest):
        return libs
    root.mkdir(parents=True, exist_ok=True)
    with _file_lock(root / ".lock"):
        if _cache_is_complete(libs, digest):  # another process finished while we waited
            return libs
        print(f"Resolving Kafka {KAFKA_VERSION} jars with Maven into {libs} ...", file=sys.stderr)
        (root / "pom.xml").write_text(pom, encoding="utf-8")
        # Resolve into a staging dir so an interrupted run never looks complete.
        staging = root / f"libs.partial-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        try:
            _run_maven(root / "pom.xml", staging)
            if not (staging / f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar").is_file():
                raise KafkaLocalError(f"Maven succeeded but copied no Kafka jar into {staging}")
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        (staging / _MARKER).write_text(digest + "\n", encoding="utf-8")
        shutil.rmtree(libs, ignore_errors=True)
        staging.rename(libs)
    return libs


# ------------------------------------------------------------------------- process utils


def _java() -> str:
    """Locate the ``java`` executable, preferring ``$JAVA_HOME``."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin/java").is_file():
        return str(Path(java_home) / "bin/java")
    found = shutil.which("java")
    if found is None:
        raise KafkaLocalError("Java ('java') is not on PATH and JAVA_HOME is not set")
    return found


def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """Return the last ``lines`` lines of a text file, or a note if it does not exist."""
    if not path.is_file():
        return f"(no log file at {path})"
    with path.open(encoding="utf-8", errors="replace") as handle:
        return "".join(collections.deque(handle, maxlen=lines))


def _error_lines(log_file: Path, limit: int = 8) -> list[str]:
    """Return the first ERROR/FATAL lines and exception messages in the log.

    After a failure Kafka logs a long orderly shutdown, which can push the root cause
    out of the tail; these lines keep it in the error message.
    """
    if not log_file.is_file():
        return []
    found: list[str] = []
    with log_file.open(encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if "] ERROR " in line or "] FATAL " in line or line.startswith("Caused by: "):
                found.append(line.rstrip())
                if len(found) >= limit:
                    break
    return found


def _with_log_tail(message: str, log_file: Path) -> str:
    """Append the log's first errors and its tail to an error message."""
    errors = _error_lines(log_file)
    if errors:
        message += "\n--- first errors in the log ---\n" + "\n".join(errors)
    return f"{message}\n--- last {LOG_TAIL_LINES} lines of {log_file} ---\n{_tail(log_file)}"


def _is_broker_process(pid: int, properties: Path) -> bool:
    """Tell whether ``pid`` is alive and is the broker started for ``properties``.

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
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    # A zombie has an empty command line, which correctly reads as "not running".
    return b"kafka.Kafka" in args and str(properties).encode() in args


def _signal_group(pid: int, sig: signal.Signals) -> None:
    """Send ``sig`` to the broker's process group (it leads its own session)."""
    with contextlib.suppress(ProcessLookupError):
        if os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


# ---------------------------------------------------------------------------- provisioning


def _free_ports(count: int) -> list[int]:
    """Reserve ``count`` distinct free loopback ports (held open together, then released)."""
    with contextlib.ExitStack() as stack:
        socks = [
            stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            for _ in range(count)
        ]
        for sock in socks:
            sock.bind((LOOPBACK, 0))
        return [int(sock.getsockname()[1]) for sock in socks]


def _cluster_id() -> str:
    """Generate a Kafka cluster id (base64url of a random UUID, no padding)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):  # a leading dash would parse as a CLI option
            return cid


def _new_users() -> dict[str, dict[str, str]]:
    """Create per-start credentials keyed by lower-case SASL mechanism."""
    scram = {"username": _SCRAM_USER, "password": secrets.token_urlsafe(24)}
    return {
        "plain": {"username": _PLAIN_USER, "password": secrets.token_urlsafe(24)},
        "scram-sha-256": dict(scram),
        "scram-sha-512": dict(scram),
    }


_OPENSSL_CNF = """\
[req]
distinguished_name = dn
prompt = no

[dn]
CN = placeholder

[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost, IP:127.0.0.1
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""


def _openssl(template: str, **values: str | Path) -> None:
    """Run one openssl command, raising with its output on failure.

    Args:
        template: Space-separated arguments; ``{name}`` tokens are filled from
            ``values`` after splitting, so paths containing spaces stay intact.
        **values: Substitutions for the template.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise KafkaLocalError("openssl is not on PATH; it is needed for the SASL_SSL listener")
    cmd = [openssl, *(token.format(**values) for token in template.split())]
    result = subprocess.run(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
    )
    if result.returncode != 0:
        raise KafkaLocalError(f"openssl failed: {' '.join(cmd)}\n{result.stdout}")


def _make_tls(tls_dir: Path) -> tuple[Path, Path]:
    """Create a throwaway CA and a localhost/127.0.0.1 server certificate signed by it.

    Args:
        tls_dir: Empty directory to write keys and certificates into.

    Returns:
        ``(ca_file, keystore)``: the CA certificate for clients, and a PEM file holding
        the unencrypted PKCS#8 server key followed by the certificate chain for Kafka.
    """
    tls_dir.mkdir(mode=0o700, parents=True)
    cnf = tls_dir / "openssl.cnf"
    cnf.write_text(_OPENSSL_CNF, encoding="utf-8")
    ca_key, ca_pem = tls_dir / "ca.key", tls_dir / "ca.pem"
    key, csr, cert = tls_dir / "server.key", tls_dir / "server.csr", tls_dir / "server.pem"
    # genpkey always writes PKCS#8, the only unencrypted key form Kafka's PEM keystore reads.
    for private_key in (ca_key, key):
        _openssl("genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out {out}", out=private_key)
    _openssl(
        "req -config {cnf} -x509 -new -key {key} -sha256 -days 3650 -subj {subj}"
        " -extensions ca_ext -out {out}",
        cnf=cnf, key=ca_key, subj="/CN=dbt-kafka-sync local test CA", out=ca_pem,
    )  # fmt: skip
    _openssl(
        "req -config {cnf} -new -key {key} -subj /CN=localhost -out {out}",
        cnf=cnf, key=key, out=csr,
    )  # fmt: skip
    _openssl(
        "x509 -req -in {csr} -CA {ca} -CAkey {ca_key} -set_serial {serial} -days 825 -sha256"
        " -extfile {cnf} -extensions server_ext -out {out}",
        csr=csr, ca=ca_pem, ca_key=ca_key, serial=f"0x{secrets.token_hex(16)}", cnf=cnf, out=cert,
    )  # fmt: skip
    keystore = tls_dir / "server-keystore.pem"
    keystore.write_bytes(key.read_bytes() + cert.read_bytes() + ca_pem.read_bytes())
    for secret in (ca_key, key, keystore):
        secret.chmod(0o600)
    return ca_pem, keystore


def _jaas(mechanism: str, users: dict[str, dict[str, str]]) -> str:
    """Build the broker-side JAAS entry for one SASL mechanism."""
    if mechanism == "PLAIN":
        plain = users["plain"]
        return (
            f'{_LOGIN_MODULES[mechanism]} required user_{plain["username"]}="{plain["password"]}";'
        )
    # SCRAM credentials live in the KRaft metadata log (added at format time).
    return f"{_LOGIN_MODULES[mechanism]} required;"


def _server_properties(
    state_dir: Path, ports: dict[str, int], keystore: Path, users: dict[str, dict[str, str]]
) -> dict[str, str]:
    """Assemble ``server.properties`` for a single combined broker+controller node."""
    listeners = {name: f"{LOOPBACK}:{port}" for name, port in ports.items()}
    data_dir = str(state_dir / _DATA_DIR)
    props = {
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        "controller.quorum.bootstrap.servers": listeners["CONTROLLER"],
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listeners": ",".join(f"{name}://{addr}" for name, addr in listeners.items()),
        "advertised.listeners": ",".join(
            f"{name}://{listeners[name]}" for name in CLIENT_LISTENERS
        ),
        "listener.security.protocol.map": (
            "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL,"
            "CONTROLLER:PLAINTEXT"
        ),
        "sasl.enabled.mechanisms": ",".join(MECHANISMS),
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(keystore),
        "log.dirs": data_dir,
        "metadata.log.dir": data_dir,
        "num.partitions": "1",
        "default.replication.factor": "1",
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
    }
    for listener in SASL_LISTENERS:
        for mechanism in MECHANISMS:
            key = f"listener.name.{listener.lower()}.{mechanism.lower()}.sasl.jaas.config"
            props[key] = _jaas(mechanism, users)
    return props


def _escape_backslashes(value: str) -> str:
    """Double every backslash (kept out of f-strings for Python 3.10)."""
    return value.replace("\\", "\\\\")


def _write_properties(path: Path, props: dict[str, str]) -> None:
    """Write a Java properties file (private: it contains the PLAIN password)."""
    # Backslash is the only character in our values that .properties treats specially.
    body = "".join(f"{key}={_escape_backslashes(value)}\n" for key, value in props.items())
    path.write_text("# Generated by tests/kafka_local.py\n" + body, encoding="utf-8")
    path.chmod(0o600)


def _write_log4j_config(path: Path) -> None:
    """Write a log4j2 config sending all broker logging to stdout (redirected to the log).

    Routing log4j2 through stdout keeps one file holding both Kafka's logging and
    anything the JVM prints on its own (crashes, OOM), so error tails show the cause.
    """
    path.write_text(
        """<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="warn" name="kafka-local">
  <Appenders>
    <Console name="stdout" target="SYSTEM_OUT">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Logger name="kafka.request.logger" level="WARN"/>
    <Logger name="org.apache.kafka.clients.NetworkClient" level="WARN"/>
    <Root level="INFO"><AppenderRef ref="stdout"/></Root>
  </Loggers>
</Configuration>
""",
        encoding="utf-8",
    )


def _java_cmd(
    state_dir: Path, libs: Path, jvm_opts: Sequence[str], main_class: str, args: Sequence[str]
) -> list[str]:
    """Build a java command running ``main_class`` from the jar cache with our log4j2 config."""
    log4j = f"-Dlog4j2.configurationFile={state_dir / _LOG4J_CONFIG}"
    return [_java(), *jvm_opts, log4j, "-cp", f"{libs}/*", main_class, *args]


def _format_storage(
    state_dir: Path, libs: Path, properties: Path, users: dict[str, dict[str, str]]
) -> None:
    """Format the KRaft metadata log, seeding the SCRAM credentials."""
    args = ["format", "--standalone", "-t", _cluster_id(), "-c", str(properties)]
    for mechanism in SCRAM_MECHANISMS:
        user = users[mechanism.lower()]
        credential = f"name={user['username']},password={user['password']}"
        args += ["--add-scram", f"{mechanism}=[{credential}]"]
    cmd = _java_cmd(state_dir, libs, TOOL_JVM_OPTS, "kafka.tools.StorageTool", args)
    log_file = state_dir / _LOG_FILE
    with log_file.open("ab") as log:
        log.write(b"=== kafka_local: formatting KRaft storage ===\n")
        log.flush()
        code = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, check=False).returncode
    if code != 0:
        raise KafkaLocalError(
            _with_log_tail(f"Kafka storage format failed (exit {code})", log_file)
        )


def _launch(state_dir: Path, libs: Path, properties: Path) -> subprocess.Popen[bytes]:
    """Start ``kafka.Kafka`` in its own session with output appended to the log."""
    jvm_opts = [*BROKER_HEAP, *BROKER_JVM_OPTS]
    cmd = _java_cmd(state_dir, libs, jvm_opts, "kafka.Kafka", [str(properties)])
    with (state_dir / _LOG_FILE).open("ab") as log:
        log.write(b"=== kafka_local: starting broker ===\n")
        log.flush()
        return subprocess.Popen(
            cmd,
            cwd=state_dir,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so stop() can signal the whole group, and ^C spares it
        )


def _clear_state(state_dir: Path) -> None:
    """Remove artifacts of a previous (stopped) broker; other files are left alone."""
    for name in (_DATA_DIR, _TLS_DIR):
        shutil.rmtree(state_dir / name, ignore_errors=True)
    for name in (_BROKER_JSON, _PROPERTIES, _LOG4J_CONFIG):
        (state_dir / name).unlink(missing_ok=True)
    log_file = state_dir / _LOG_FILE
    if log_file.exists():  # keep one previous log around for post-mortems
        log_file.replace(state_dir / f"{_LOG_FILE}.prev")


# ---------------------------------------------------------------------------- the broker


@dataclass
class Broker:
    """A running (or recorded) local Kafka broker and how to reach it.

    Attributes:
        state_dir: Directory holding config, data, TLS material, log and broker.json.
        pid: Process id (and process group id) of the broker JVM.
        log_file: Combined log of the broker (log4j2 output, stdout and stderr).
        kafka_version: Kafka version the broker runs.
        plaintext: ``host:port`` of the PLAINTEXT listener.
        sasl_plaintext: ``host:port`` of the SASL_PLAINTEXT listener.
        sasl_ssl: ``host:port`` of the SASL_SSL listener.
        ca_file: PEM CA certificate that signed the SASL_SSL server certificate.
        users: Credentials keyed by ``plain``, ``scram-sha-256``, ``scram-sha-512``, each a
            mapping with ``username`` and ``password``.
        libs_dir: Jar cache the broker runs from (also holds kafka-tools).
    """

    state_dir: Path
    pid: int
    log_file: Path
    kafka_version: str
    plaintext: str
    sasl_plaintext: str
    sasl_ssl: str
    ca_file: Path
    users: dict[str, dict[str, str]] = field(repr=False)  # never echo passwords
    libs_dir: Path
    _process: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    def __enter__(self) -> Broker:
        """Use the broker as a context manager that stops it on exit."""
        return self

    def __exit__(self, *exc_info: object) -> None:
        """Stop the broker."""
        self.stop()

    @property
    def broker_json(self) -> Path:
        """Path of the ``broker.json`` describing this broker."""
        return self.state_dir / _BROKER_JSON

    def to_json(self) -> dict[str, Any]:
        """Return the ``broker.json`` document (includes passwords)."""
        return {
            "pid": self.pid,
            "log_file": str(self.log_file),
            "kafka_version": self.kafka_version,
            "plaintext": self.plaintext,
            "sasl_plaintext": self.sasl_plaintext,
            "sasl_ssl": self.sasl_ssl,
            "ca_file": str(self.ca_file),
            "users": self.users,
            "libs_dir": str(self.libs_dir),
        }

    def save(self) -> None:
        """Write ``broker.json`` atomically, readable only by the owner."""
        tmp = self.broker_json.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n", encoding="utf-8")
        tmp.chmod(0o600)
        tmp.replace(self.broker_json)

    @classmethod
    def load(cls, state_dir: Path | str) -> Broker:
        """Read the broker recorded in ``state_dir/broker.json``.

        Args:
            state_dir: State directory passed to :func:`start`.

        Returns:
            The recorded broker; it may no longer be running (see :meth:`is_running`).

        Raises:
            KafkaLocalError: If no broker has been recorded there or the file is unreadable.
        """
        state = Path(state_dir).resolve()
        path = state / _BROKER_JSON
        if not path.is_file():
            raise KafkaLocalError(f"no broker recorded in {state} (missing {path.name})")
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                state_dir=state,
                pid=int(doc["pid"]),
                log_file=Path(doc["log_file"]),
                kafka_version=str(doc["kafka_version"]),
                plaintext=str(doc["plaintext"]),
                sasl_plaintext=str(doc["sasl_plaintext"]),
                sasl_ssl=str(doc["sasl_ssl"]),
                ca_file=Path(doc["ca_file"]),
                users={k: dict(v) for k, v in doc["users"].items()},
                libs_dir=Path(doc["libs_dir"]),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KafkaLocalError(f"unreadable {path}: {exc!r}") from exc

    def is_running(self) -> bool:
        """Tell whether the broker process is still alive."""
        if self._process is not None:
            return self._process.poll() is None  # also reaps our own child
        return _is_broker_process(self.pid, self.state_dir / _PROPERTIES)

    def client_config(
        self,
        security_protocol: str = "PLAINTEXT",
        mechanism: str | None = None,
        *,
        host: str = LOOPBACK,
    ) -> ClientConfig:
        """Build a confluent-kafka/librdkafka config for one listener.

        Args:
            security_protocol: ``PLAINTEXT``, ``SASL_PLAINTEXT`` or ``SASL_SSL``.
            mechanism: ``PLAIN``, ``SCRAM-SHA-256`` or ``SCRAM-SHA-512``; required for
                the SASL listeners, ignored for PLAINTEXT.
            host: Bootstrap host; ``localhost`` also passes TLS hostname verification.

        Returns:
            A config dict with bootstrap servers, security settings and credentials.

        Raises:
            ValueError: On an unknown listener or mechanism.
        """
        protocol = security_protocol.upper()
        if protocol not in CLIENT_LISTENERS:
            raise ValueError(f"unknown security protocol {security_protocol!r}")
        port = getattr(self, protocol.lower()).rsplit(":", 1)[1]
        conf: ClientConfig = {"bootstrap.servers": f"{host}:{port}", "security.protocol": protocol}
        if protocol == "PLAINTEXT":
            return conf
        if mechanism is None or mechanism.upper() not in MECHANISMS:
            raise ValueError(f"{protocol} needs a mechanism out of {MECHANISMS}, got {mechanism!r}")
        user = self.users[mechanism.lower()]
        conf.update(
            {
                "sasl.mechanism": mechanism.upper(),
                "sasl.username": user["username"],
                "sasl.password": user["password"],
            }
        )
        if protocol == "SASL_SSL":
            conf["ssl.ca.location"] = str(self.ca_file)
            conf["ssl.endpoint.identification.algorithm"] = "https"
        return conf

    def java_client_config(
        self,
        security_protocol: str = "PLAINTEXT",
        mechanism: str | None = None,
        *,
        host: str = LOOPBACK,
    ) -> dict[str, str]:
        """Build the same settings for Java clients (e.g. kafka-tools' ProducerPerformance).

        Write the result as ``key=value`` lines and pass it as ``--producer.config``.

        Args:
            security_protocol: ``PLAINTEXT``, ``SASL_PLAINTEXT`` or ``SASL_SSL``.
            mechanism: SASL mechanism, required for the SASL listeners.
            host: Bootstrap host.

        Returns:
            Java client properties (JAAS login and a PEM truststore instead of a CA path).
        """
        native = self.client_config(security_protocol, mechanism, host=host)
        conf = {key: str(value) for key, value in native.items()}
        if "sasl.mechanism" in conf:
            user, password = conf.pop("sasl.username"), conf.pop("sasl.password")
            conf["sasl.jaas.config"] = (
                f"{_LOGIN_MODULES[conf['sasl.mechanism']]} required "
                f'username="{user}" password="{password}";'
            )
        if "ssl.ca.location" in conf:
            conf["ssl.truststore.type"] = "PEM"
            conf["ssl.truststore.location"] = conf.pop("ssl.ca.location")
        return conf

    def admin(self) -> AdminClient:
        """Create an AdminClient on the PLAINTEXT listener.

        Returns:
            A new ``confluent_kafka.admin.AdminClient``.
        """
        from confluent_kafka.admin import AdminClient

        return AdminClient(self.client_config(), logger=_CLIENT_LOG)

    def create_topic(
        self, name: str, partitions: int = 1, *, timeout: float = 30.0, exist_ok: bool = False
    ) -> None:
        """Create a topic on this broker; see :func:`create_topic`."""
        create_topic(self.plaintext, name, partitions, timeout=timeout, exist_ok=exist_ok)

    def delete_topic(self, name: str, *, timeout: float = 30.0, missing_ok: bool = False) -> None:
        """Delete a topic on this broker; see :func:`delete_topic`."""
        delete_topic(self.plaintext, name, timeout=timeout, missing_ok=missing_ok)

    def consume_all(self, topic: str) -> list[Record]:
        """Read every message now in a topic of this broker; see :func:`consume_all`."""
        return consume_all(self.plaintext, topic)

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> bool:
        """Stop the broker: SIGTERM its process group, then SIGKILL after ``timeout``.

        Args:
            timeout: Seconds to wait for a clean shutdown before killing.

        Returns:
            True if a running broker was stopped, False if it was not running.
        """
        if not self.is_running():
            return False
        _signal_group(self.pid, signal.SIGTERM)
        if not self._wait_exit(timeout):
            _signal_group(self.pid, signal.SIGKILL)
            self._wait_exit(10.0)
        return True

    def _wait_exit(self, timeout: float) -> bool:
        """Wait until the process is gone; True if it exited within ``timeout``."""
        if self._process is not None:
            try:
                self._process.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout
        while self.is_running():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.1)
        return True


# ---------------------------------------------------------------------------- topics


def _admin(bootstrap_servers: str) -> AdminClient:
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap_servers}, logger=_CLIENT_LOG)


def create_topic(
    bootstrap_servers: str,
    name: str,
    partitions: int = 1,
    *,
    timeout: float = 30.0,
    exist_ok: bool = False,
) -> None:
    """Create a topic and wait until every partition has a leader.

    Args:
        bootstrap_servers: A PLAINTEXT bootstrap address.
        name: Topic name.
        partitions: Number of partitions (replication factor is always 1).
        timeout: Seconds to wait in total.
        exist_ok: Do not raise if the topic already exists.

    Raises:
        KafkaLocalError: If the topic is not fully available in time.
        confluent_kafka.KafkaException: If the broker rejects the creation.
    """
    from confluent_kafka import KafkaError, KafkaException

    # cimpl is where NewTopic is defined; confluent_kafka.admin re-exports it untyped.
    from confluent_kafka.cimpl import NewTopic

    deadline = time.monotonic() + timeout
    admin = _admin(bootstrap_servers)
    spec = NewTopic(name, num_partitions=partitions, replication_factor=1)
    futures = admin.create_topics([spec], operation_timeout=timeout, request_timeout=timeout)
    try:
        futures[name].result(timeout=timeout)
    except KafkaException as exc:
        exists = exc.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS
        if not (exist_ok and exists):
            raise
        partitions = len(_metadata(admin, deadline, name).topics[name].partitions)
    _wait_for(
        lambda: _topic_ready(_metadata(admin, deadline, name), name, partitions),
        deadline,
        f"topic {name!r} with {partitions} led partition(s)",
    )


def delete_topic(
    bootstrap_servers: str, name: str, *, timeout: float = 30.0, missing_ok: bool = False
) -> None:
    """Delete a topic and wait until metadata no longer lists it.

    Args:
        bootstrap_servers: A PLAINTEXT bootstrap address.
        name: Topic name.
        timeout: Seconds to wait in total.
        missing_ok: Do not raise if the topic does not exist.

    Raises:
        KafkaLocalError: If the topic is still listed after ``timeout``.
        confluent_kafka.KafkaException: If the broker rejects the deletion.
    """
    from confluent_kafka import KafkaError, KafkaException

    deadline = time.monotonic() + timeout
    admin = _admin(bootstrap_servers)
    futures = admin.delete_topics([name], operation_timeout=timeout, request_timeout=timeout)
    try:
        futures[name].result(timeout=timeout)
    except KafkaException as exc:
        unknown = exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART
        if not (missing_ok and unknown):
            raise
    _wait_for(
        lambda: name not in _metadata(admin, deadline).topics,
        deadline,
        f"deletion of topic {name!r}",
    )


def message_count(bootstrap_servers: str, topic: str, timeout: float = 10.0) -> int:
    """Count the messages in a topic: the sum of its partitions' high watermarks."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap_servers, "group.id": "kafka-local-count"},
        logger=_CLIENT_LOG,
    )
    try:
        partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
        return sum(
            consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
            for p in partitions
        )
    finally:
        consumer.close()


@dataclass(frozen=True)
class Record:
    """One message read back from a topic, decoded as UTF-8."""

    key: str | None
    value: str | None
    partition: int
    offset: int
    headers: dict[str, str]


def consume_all(bootstrap_servers: str, topic: str, timeout: float = 30.0) -> list[Record]:
    """Read every message now in a topic: up to each partition's high watermark.

    The watermarks say exactly how many messages there are, so nothing is guessed and
    no wait is needed for messages that will never come.

    Args:
        bootstrap_servers: A PLAINTEXT bootstrap address.
        topic: Topic to read from the beginning.
        timeout: Seconds to wait for any one message.

    Returns:
        The messages, in offset order within each partition.
    """
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap_servers,
            "group.id": f"kafka-local-{uuid.uuid4().hex}",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        },
        logger=_CLIENT_LOG,
    )
    try:
        partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
        ends = {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
            for p in partitions
        }
        consumer.assign([TopicPartition(topic, p, 0) for p in partitions])
        remaining = {p: end for p, end in ends.items() if end > 0}
        records: list[Record] = []
        while remaining:
            message = consumer.poll(timeout)
            if message is None:
                raise KafkaLocalError(f"timed out reading {topic}; still expected {remaining}")
            if message.error() is not None:
                raise KafkaLocalError(f"reading {topic}: {message.error()}")
            records.append(_record(message))
            partition, offset = message.partition() or 0, message.offset() or 0
            if offset + 1 >= remaining.get(partition, 0):
                remaining.pop(partition, None)
        return records
    finally:
        consumer.close()


def _record(message: Message) -> Record:
    key, value = message.key(), message.value()
    headers: list[tuple[str, Any]] = list(message.headers() or [])  # type: ignore[arg-type]
    return Record(
        key=key.decode() if isinstance(key, bytes) else key,
        value=value.decode() if isinstance(value, bytes) else value,
        partition=message.partition() or 0,
        offset=message.offset() or 0,
        headers={
            name: raw.decode() if isinstance(raw, bytes) else str(raw)
            for name, raw in headers
            if raw is not None
        },
    )


# ---------------------------------------------------------------------------- readiness


def _metadata(admin: AdminClient, deadline: float, topic: str | None = None) -> ClusterMetadata:
    """Fetch cluster metadata, bounded by a short per-try timeout and the deadline."""
    budget = max(0.1, min(2.0, deadline - time.monotonic()))
    return admin.list_topics(topic=topic, timeout=budget)


def _topic_ready(md: ClusterMetadata, name: str, partitions: int) -> bool:
    """Tell whether metadata shows ``name`` with all partitions led."""
    topic = md.topics.get(name)
    if topic is None or topic.error is not None or len(topic.partitions) != partitions:
        return False
    return all(p.error is None and p.leader >= 0 for p in topic.partitions.values())


def _wait_for(check: Callable[[], bool], deadline: float, what: str) -> None:
    """Poll ``check`` (client errors count as "not yet") until true or the deadline."""
    from confluent_kafka import KafkaException

    last_error = ""
    while True:
        try:
            if check():
                return
        except KafkaException as exc:
            last_error = f" (last error: {exc})"
        if time.monotonic() >= deadline:
            raise KafkaLocalError(f"timed out waiting for {what}{last_error}")
        time.sleep(0.2)


def _probe_admin(
    broker: Broker, protocol: str, mechanism: str | None, errors: list[str]
) -> AdminClient:
    """Create a readiness-probe AdminClient that records client errors in ``errors``."""
    from confluent_kafka.admin import AdminClient

    conf = broker.client_config(protocol, mechanism)
    # Retry refused connections quickly: the default backoff grows to 10 s.
    conf.update({"reconnect.backoff.ms": 100, "reconnect.backoff.max.ms": 500})
    return AdminClient(conf, logger=_CLIENT_LOG, error_cb=lambda err: errors.append(str(err)))


def wait_until_ready(
    broker: Broker, timeout: float = DEFAULT_START_TIMEOUT, alive: Callable[[], bool] | None = None
) -> None:
    """Wait until PLAINTEXT serves metadata and SASL_SSL accepts SCRAM-SHA-512 over TLS.

    Args:
        broker: Broker to probe.
        timeout: Total seconds to wait.
        alive: Returns False once the broker process has died (defaults to
            ``broker.is_running``); checked between tries to fail fast.

    Raises:
        KafkaLocalError: If the process dies or the deadline passes. The message holds
            the last client error and the tail of the broker log.
    """
    from confluent_kafka import KafkaException

    is_alive = alive or broker.is_running
    deadline = time.monotonic() + timeout
    errors: list[str] = []
    probes = [("PLAINTEXT", None), ("SASL_SSL", "SCRAM-SHA-512")]
    for protocol, mechanism in probes:
        admin = _probe_admin(broker, protocol, mechanism, errors)
        while True:
            if not is_alive():
                raise KafkaLocalError(
                    _with_log_tail(f"Kafka broker (pid {broker.pid}) exited", broker.log_file)
                )
            try:
                if len(_metadata(admin, deadline).brokers) == 1:
                    break
            except KafkaException as exc:
                errors.append(str(exc))
            if time.monotonic() >= deadline:
                last = errors[-1] if errors else "none"
                raise KafkaLocalError(
                    _with_log_tail(
                        f"Kafka broker not ready on {protocol} after {timeout:g} s "
                        f"(last client error: {last})",
                        broker.log_file,
                    )
                )
            time.sleep(0.2)


# ------------------------------------------------------------------------- start / stop


def _start_once(state_dir: Path, libs: Path, timeout: float) -> Broker:
    """Provision a fresh broker in ``state_dir``, launch it and wait for readiness."""
    _clear_state(state_dir)
    names = ("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "CONTROLLER")
    ports = dict(zip(names, _free_ports(len(names)), strict=True))
    users = _new_users()
    ca_file, keystore = _make_tls(state_dir / _TLS_DIR)
    properties = state_dir / _PROPERTIES
    _write_properties(properties, _server_properties(state_dir, ports, keystore, users))
    _write_log4j_config(state_dir / _LOG4J_CONFIG)
    _format_storage(state_dir, libs, properties, users)
    process = _launch(state_dir, libs, properties)
    broker = Broker(
        state_dir=state_dir,
        pid=process.pid,
        log_file=state_dir / _LOG_FILE,
        kafka_version=KAFKA_VERSION,
        plaintext=f"{LOOPBACK}:{ports['PLAINTEXT']}",
        sasl_plaintext=f"{LOOPBACK}:{ports['SASL_PLAINTEXT']}",
        sasl_ssl=f"{LOOPBACK}:{ports['SASL_SSL']}",
        ca_file=ca_file,
        users=users,
        libs_dir=libs,
        _process=process,
    )
    try:
        wait_until_ready(broker, timeout)
    except BaseException:
        broker.stop(timeout=10.0)  # never leave a half-started JVM behind
        raise
    broker.save()
    return broker


def _lost_port_race(log_file: Path) -> bool:
    """Tell whether a failed start could not bind a port picked as free moments before."""
    if not log_file.is_file():
        return False
    return "Address already in use" in log_file.read_text(encoding="utf-8", errors="replace")


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
    try:
        previous: Broker | None = Broker.load(state)
    except KafkaLocalError:  # nothing (readable) recorded, so nothing to protect
        previous = None
    if previous is not None and previous.is_running():
        raise KafkaLocalError(
            f"a broker (pid {previous.pid}) is already running from {state}; stop it first"
        )
    libs = fetch_jars()
    try:
        return _start_once(state, libs, timeout)
    except KafkaLocalError:
        if not _lost_port_race(state / _LOG_FILE):
            raise
    return _start_once(state, libs, timeout)  # ports are re-picked; one retry suffices


def running_broker(state_dir: Path | str, timeout: float = 10.0) -> Broker | None:
    """Return the broker recorded in ``state_dir`` if it is running and answering.

    Args:
        state_dir: State directory passed to :func:`start`.
        timeout: Seconds to wait for it to answer.

    Returns:
        The broker, or None if none is recorded, it is not running, or it does not answer.
    """
    try:
        broker = Broker.load(state_dir)
        if not broker.is_running():
            return None
        wait_until_ready(broker, timeout)
    except KafkaLocalError:
        return None
    return broker


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
    except KafkaLocalError:
        return False
    return broker.stop(timeout)


# ---------------------------------------------------------------------------------- CLI


def _cmd_start(args: argparse.Namespace) -> int:
    """Start a broker, or reuse the one already running from the state dir."""
    began = time.monotonic()
    broker = running_broker(args.state_dir)
    if broker is not None:
        print(
            f"Reusing the Kafka broker already running from {broker.state_dir} (pid {broker.pid})"
        )
    else:
        if stop(args.state_dir):  # recorded process alive but not answering
            print("A recorded broker was running but not answering; it was stopped")
        broker = start(args.state_dir, timeout=args.timeout)
        print(
            f"Kafka {broker.kafka_version} broker started in {time.monotonic() - began:.1f} s "
            f"(pid {broker.pid})"
        )
    print(f"PLAINTEXT bootstrap: {broker.plaintext}")
    print(f"Connection details (with credentials): {broker.broker_json}")
    return 0


def _cmd_stop(args: argparse.Namespace) -> int:
    """Stop the recorded broker, if any."""
    stopped = stop(args.state_dir)
    print("Kafka broker stopped" if stopped else "No running Kafka broker")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    """Report whether the recorded broker runs and answers; exit 1 if not."""
    try:
        broker = Broker.load(args.state_dir)
    except KafkaLocalError as exc:
        print(exc)
        return 1
    if running_broker(args.state_dir) is None:
        state = "running but not answering" if broker.is_running() else "not running"
        print(f"Kafka broker (pid {broker.pid}) is {state}; log: {broker.log_file}")
        return 1
    print(f"Kafka {broker.kafka_version} broker running (pid {broker.pid})")
    for listener in CLIENT_LISTENERS:
        print(f"  {listener:<15} {getattr(broker, listener.lower())}")
    print(f"  log file        {broker.log_file}")
    print(f"  broker.json     {broker.broker_json}")
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    """Only resolve the jar cache (useful as a cacheable CI step)."""
    print(fetch_jars())
    return 0


def _parser() -> argparse.ArgumentParser:
    """Build the command-line parser."""
    parser = argparse.ArgumentParser(
        prog="kafka_local.py", description=f"Local Apache Kafka {KAFKA_VERSION} for tests."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    commands = {
        "start": (_cmd_start, "start a broker (or reuse a running one)"),
        "stop": (_cmd_stop, "stop the broker"),
        "status": (_cmd_status, "show whether the broker runs; exit 1 if not"),
        "fetch": (_cmd_fetch, "only resolve the Kafka jars into the cache"),
    }
    for name, (handler, help_text) in commands.items():
        cmd = sub.add_parser(name, help=help_text)
        cmd.set_defaults(handler=handler)
        if name != "fetch":
            cmd.add_argument(
                "--state-dir",
                type=Path,
                default=DEFAULT_STATE_DIR,
                help=f"state directory (default: ./{DEFAULT_STATE_DIR})",
            )
        if name == "start":
            cmd.add_argument(
                "--timeout",
                type=float,
                default=DEFAULT_START_TIMEOUT,
                help="seconds to wait for readiness",
            )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: Arguments without the program name (defaults to ``sys.argv[1:]``).

    Returns:
        Process exit code.
    """
    args = _parser().parse_args(argv)
    try:
        code: int = args.handler(args)
    except KafkaLocalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # start() has already stopped a half-started broker
        return 130
    return code


if __name__ == "__main__":
    sys.exit(main())
