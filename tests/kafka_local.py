#!/usr/bin/env python3
"""Run a real single-node Apache Kafka broker on loopback for tests, demos and benchmarks.

The broker is a genuine Apache Kafka (KRaft, combined broker+controller) started from
jars that Maven resolves into a per-user cache, so no Docker is needed, only Java 17+,
Maven, openssl and a JDK (``javac`` compiles the MSK IAM emulation once; see below).
Every start generates a fresh cluster, TLS material, passwords and IAM test credentials.

Listeners (all on 127.0.0.1, free ports picked at start):

* ``PLAINTEXT`` - no auth; also used between broker and itself.
* ``SASL_PLAINTEXT`` - PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512.
* ``SASL_SSL`` - the same mechanisms over TLS with a per-start CA (``ca_file``).
* ``SSL`` - mutual TLS: clients must present a certificate signed by that CA
  (``client_cert_file`` / ``client_key_file``, CN=dbt-kafka-sync-test-client).
* ``BADHOST`` - like ``SASL_SSL``, but its certificate (signed by the same CA) is valid
  only for ``wrong-host.invalid``: it fails hostname verification and works without it.
* ``IAM`` - Amazon MSK IAM emulation: SASL_SSL with OAUTHBEARER, where the token is what
  AWS's signer libraries produce (a base64url SigV4-presigned ``kafka-cluster:Connect``
  URL). A small Java callback handler (``kafka_local_java/MskIamCallbackHandler.java``)
  checks it against the per-start ``iam_credentials``, recomputing the signature.

``other_ca_file`` is a second, unrelated CA that signed nothing, for wrong-CA tests.
Everything a client needs is written to ``<state_dir>/broker.json``.

Library use::

    broker = start(Path("/tmp/kafka"))
    broker.create_topic("orders", partitions=3)
    conf = broker.client_config("SASL_SSL", "SCRAM-SHA-512")
    mtls = broker.client_config("SSL")  # with the client certificate and key
    iam = {**broker.client_config("IAM"), "oauth_cb": broker.iam_oauth_cb()}
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
import datetime
import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import ssl
import string
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse
import uuid
import zipfile
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
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
# Every listener a client can use, mapped to its Broker attribute (and broker.json key).
LISTENERS = {
    "PLAINTEXT": "plaintext",
    "SASL_PLAINTEXT": "sasl_plaintext",
    "SASL_SSL": "sasl_ssl",
    "SSL": "ssl",
    "BADHOST": "bad_host",
    "IAM": "iam",
}
_SECURITY_PROTOCOLS = {
    "PLAINTEXT": "PLAINTEXT",
    "SASL_PLAINTEXT": "SASL_PLAINTEXT",
    "SASL_SSL": "SASL_SSL",
    "SSL": "SSL",
    "BADHOST": "SASL_SSL",
    "IAM": "SASL_SSL",
    "CONTROLLER": "PLAINTEXT",
}
# Listeners taking the PLAIN/SCRAM users.
_USER_SASL_LISTENERS = (*SASL_LISTENERS, "BADHOST")
CLIENT_CERT_CN = "dbt-kafka-sync-test-client"
BAD_HOST_NAME = "wrong-host.invalid"

# Amazon MSK IAM emulation (the IAM listener).
IAM_MECHANISM = "OAUTHBEARER"
IAM_REGION = "us-east-1"
IAM_TOKEN_LIFETIME = 900  # seconds, as aws-msk-iam-sasl-signer-python uses
_IAM_SERVICE = "kafka-cluster"
_IAM_ACTION = "kafka-cluster:Connect"
_IAM_USER_AGENT = "dbt-kafka-sync-kafka-local"
_IAM_HANDLER_CLASS = "kafkalocal.MskIamCallbackHandler"
_IAM_HANDLER_SOURCE = (
    Path(__file__).resolve().parent / "kafka_local_java/MskIamCallbackHandler.java"
)
_OAUTHBEARER_LOGIN_MODULE = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule"
_JAVA_RELEASE = "17"
_EXT_DIR = "kafka-local-ext"

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
_IAM_KEY_ID_PREFIX = "AKIATEST"

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
    _run_tool(cmd, f"Maven failed resolving Kafka {KAFKA_VERSION} jars", "mvn")


def _run_tool(cmd: list[str], failure: str, tool: str) -> None:
    """Run a build tool; on failure raise with the command and its (de-colored) output."""
    result = subprocess.run(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, check=False
    )
    if result.returncode != 0:
        raise KafkaLocalError(
            f"{failure} (exit {result.returncode}).\n"
            f"Command: {' '.join(cmd)}\n--- {tool} output ---\n"
            f"{_ANSI_ESCAPE.sub('', result.stdout)}"
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


def iam_handler_jar(libs: Path | None = None) -> Path:
    """Compile the MSK IAM callback handler against the Kafka jars, once per source version.

    The jar is cached next to the Kafka jars, named by a hash of the Java source, so only
    the first start after the source changes runs ``javac``.

    Args:
        libs: Kafka jar directory (defaults to :func:`fetch_jars`).

    Returns:
        The jar holding ``kafkalocal.MskIamCallbackHandler``.

    Raises:
        KafkaLocalError: If the source is missing, or ``javac`` is missing or fails.
    """
    libs = libs or fetch_jars()
    try:
        source = _IAM_HANDLER_SOURCE.read_bytes()
    except OSError as exc:
        raise KafkaLocalError(f"cannot read the MSK IAM handler source: {exc}") from exc
    digest = hashlib.sha256(source + f"\0javac --release {_JAVA_RELEASE}".encode()).hexdigest()
    ext_dir = libs.parent / _EXT_DIR
    jar = ext_dir / f"msk-iam-handler-{digest[:16]}.jar"
    if jar.is_file():
        return jar
    ext_dir.mkdir(parents=True, exist_ok=True)
    with _file_lock(ext_dir / ".lock"):
        if jar.is_file():  # another process compiled it while we waited
            return jar
        with tempfile.TemporaryDirectory(dir=ext_dir, prefix="build-") as build:
            classes = Path(build) / "classes"
            cmd = [
                _javac(),
                "--release",
                _JAVA_RELEASE,
                "-nowarn",
                "-encoding",
                "UTF-8",
                "-cp",
                f"{libs}/*",
                "-d",
                str(classes),
                str(_IAM_HANDLER_SOURCE),
            ]
            _run_tool(cmd, f"javac failed compiling {_IAM_HANDLER_SOURCE}", "javac")
            partial = Path(build) / jar.name
            with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
                archive.writestr("META-INF/MANIFEST.MF", "Manifest-Version: 1.0\r\n\r\n")
                for path in sorted(classes.rglob("*.class")):
                    archive.write(path, path.relative_to(classes).as_posix())
            partial.replace(jar)
    return jar


# ------------------------------------------------------------------------- process utils


def _java() -> str:
    """Locate the ``java`` executable, preferring ``$JAVA_HOME``."""
    return _jdk_tool("java", "Java ('java') is not on PATH and JAVA_HOME is not set")


def _javac() -> str:
    """Locate the ``javac`` executable (a JDK), preferring ``$JAVA_HOME``."""
    return _jdk_tool(
        "javac",
        "javac is not on PATH and JAVA_HOME has none; a JDK (not just a JRE) is needed "
        "to compile the broker's MSK IAM callback handler",
    )


def _jdk_tool(name: str, missing: str) -> str:
    """``$JAVA_HOME/bin/NAME`` if there is one, else NAME on PATH; ``missing`` if neither."""
    java_home = os.environ.get("JAVA_HOME")
    if java_home and (Path(java_home) / "bin" / name).is_file():
        return str(Path(java_home) / "bin" / name)
    found = shutil.which(name)
    if found is None:
        raise KafkaLocalError(missing)
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


def _new_iam_credentials() -> dict[str, str]:
    """Create per-start AWS-style test credentials for the IAM listener."""
    alphabet = string.ascii_uppercase + "234567"  # what real access key ids are made of
    key_id = _IAM_KEY_ID_PREFIX + "".join(secrets.choice(alphabet) for _ in range(12))
    # 40 base64 characters like a real secret; '+' and '/' exercise encoding paths.
    secret = base64.b64encode(secrets.token_bytes(30)).decode()
    return {"access_key_id": key_id, "secret_access_key": secret}


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

[bad_host_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:wrong-host.invalid
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid

[client_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
"""
_RSA_KEY = "-algorithm RSA -pkeyopt rsa_keygen_bits:2048"
# EC keys are generated instantly (RSA takes 0.2-0.7 s each), so the additions use them.
_EC_KEY = "-algorithm EC -pkeyopt ec_paramgen_curve:P-256"


@dataclass(frozen=True)
class _TlsFiles:
    """Paths of the per-start TLS material (all inside the state's ``tls`` directory)."""

    ca_file: Path  # the CA that signed every certificate below
    keystore: Path  # server key + localhost/127.0.0.1 certificate + CA, for Kafka
    bad_host_keystore: Path  # server key + certificate valid only for wrong-host.invalid
    client_cert: Path
    client_key: Path  # unencrypted PKCS#8
    client_keystore: Path  # client key + certificate + CA, for Java clients
    other_ca_file: Path  # an unrelated CA that signed nothing


def _tls_files(tls_dir: Path) -> _TlsFiles:
    """Name the TLS files of a state directory (they are created by :func:`_make_tls`)."""
    return _TlsFiles(
        ca_file=tls_dir / "ca.pem",
        keystore=tls_dir / "server-keystore.pem",
        bad_host_keystore=tls_dir / "bad-host-keystore.pem",
        client_cert=tls_dir / "client.pem",
        client_key=tls_dir / "client.key",
        client_keystore=tls_dir / "client-keystore.pem",
        other_ca_file=tls_dir / "other_ca.pem",
    )


def _openssl_cmd(template: str, values: dict[str, str | Path]) -> list[str]:
    """Build an openssl command line.

    Args:
        template: Space-separated arguments; ``{name}`` tokens are filled from
            ``values`` after splitting, so paths containing spaces stay intact.
        values: Substitutions for the template.
    """
    openssl = shutil.which("openssl")
    if openssl is None:
        raise KafkaLocalError("openssl is not on PATH; it is needed for the TLS listeners")
    return [openssl, *(token.format(**values) for token in template.split())]


def _openssl(template: str, **values: str | Path) -> None:
    """Run one openssl command (see :func:`_openssl_cmd`), raising with its output on failure."""
    _openssl_parallel([(template, values)])


def _openssl_parallel(commands: Sequence[tuple[str, dict[str, str | Path]]]) -> None:
    """Run openssl commands concurrently, raising with the output of the first failure."""
    cmds = [_openssl_cmd(template, values) for template, values in commands]
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for cmd in cmds
    ]
    outputs = [proc.communicate()[0] for proc in procs]
    for cmd, proc, output in zip(cmds, procs, outputs, strict=True):
        if proc.returncode != 0:
            raise KafkaLocalError(f"openssl failed: {' '.join(cmd)}\n{output}")


def _make_tls(tls_dir: Path) -> _TlsFiles:
    """Create a throwaway CA and the certificates of all TLS listeners and clients.

    * a localhost/127.0.0.1 server certificate (SASL_SSL, SSL and IAM listeners);
    * a certificate for the same server key valid only for ``wrong-host.invalid``
      (BADHOST listener);
    * a client certificate (CN=dbt-kafka-sync-test-client) for the mutual-TLS listener;
    * an unrelated self-signed CA that signed nothing.

    Private keys are unencrypted PKCS#8 (genpkey's only output form), the one unencrypted
    key form Kafka's PEM keystore reads.

    Args:
        tls_dir: Directory to create and write keys and certificates into.

    Returns:
        The paths of the material.
    """
    files = _tls_files(tls_dir)
    tls_dir.mkdir(mode=0o700, parents=True)
    cnf = tls_dir / "openssl.cnf"
    cnf.write_text(_OPENSSL_CNF, encoding="utf-8")
    ca_key, ca_pem = tls_dir / "ca.key", files.ca_file
    key, csr, cert = tls_dir / "server.key", tls_dir / "server.csr", tls_dir / "server.pem"
    client_csr = tls_dir / "client.csr"
    other_ca_key = tls_dir / "other_ca.key"
    # RSA key generation is slow and random in length: generate all keys side by side.
    _openssl_parallel(
        [
            (f"genpkey {_RSA_KEY} -out {{out}}", {"out": ca_key}),
            (f"genpkey {_RSA_KEY} -out {{out}}", {"out": key}),
            (f"genpkey {_EC_KEY} -out {{out}}", {"out": files.client_key}),
            (f"genpkey {_EC_KEY} -out {{out}}", {"out": other_ca_key}),
        ]
    )
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
    bad_csr, bad_cert = tls_dir / "bad-host.csr", tls_dir / "bad-host.pem"
    _openssl(
        "req -config {cnf} -new -key {key} -subj {subj} -out {out}",
        cnf=cnf, key=key, subj=f"/CN={BAD_HOST_NAME}", out=bad_csr,
    )  # fmt: skip
    _openssl(
        "x509 -req -in {csr} -CA {ca} -CAkey {ca_key} -set_serial {serial} -days 825 -sha256"
        " -extfile {cnf} -extensions bad_host_ext -out {out}",
        csr=bad_csr, ca=ca_pem, ca_key=ca_key, serial=f"0x{secrets.token_hex(16)}", cnf=cnf,
        out=bad_cert,
    )  # fmt: skip
    _openssl(
        "req -config {cnf} -new -key {key} -subj {subj} -out {out}",
        cnf=cnf, key=files.client_key, subj=f"/CN={CLIENT_CERT_CN}", out=client_csr,
    )  # fmt: skip
    _openssl(
        "x509 -req -in {csr} -CA {ca} -CAkey {ca_key} -set_serial {serial} -days 825 -sha256"
        " -extfile {cnf} -extensions client_ext -out {out}",
        csr=client_csr, ca=ca_pem, ca_key=ca_key, serial=f"0x{secrets.token_hex(16)}", cnf=cnf,
        out=files.client_cert,
    )  # fmt: skip
    _openssl(
        "req -config {cnf} -x509 -new -key {key} -sha256 -days 3650 -subj {subj}"
        " -extensions ca_ext -out {out}",
        cnf=cnf, key=other_ca_key, subj="/CN=dbt-kafka-sync unrelated test CA",
        out=files.other_ca_file,
    )  # fmt: skip
    ca_bytes = ca_pem.read_bytes()
    files.keystore.write_bytes(key.read_bytes() + cert.read_bytes() + ca_bytes)
    files.bad_host_keystore.write_bytes(key.read_bytes() + bad_cert.read_bytes() + ca_bytes)
    client_key_bytes = files.client_key.read_bytes()
    files.client_keystore.write_bytes(client_key_bytes + files.client_cert.read_bytes() + ca_bytes)
    secrets_ = (ca_key, key, other_ca_key, files.client_key)
    for secret in (*secrets_, files.keystore, files.bad_host_keystore, files.client_keystore):
        secret.chmod(0o600)
    return files


def _jaas(mechanism: str, users: dict[str, dict[str, str]]) -> str:
    """Build the broker-side JAAS entry for one SASL mechanism."""
    if mechanism == "PLAIN":
        plain = users["plain"]
        return (
            f'{_LOGIN_MODULES[mechanism]} required user_{plain["username"]}="{plain["password"]}";'
        )
    # SCRAM credentials live in the KRaft metadata log (added at format time).
    return f"{_LOGIN_MODULES[mechanism]} required;"


def _iam_jaas(credentials: dict[str, str]) -> str:
    """Build the IAM listener's JAAS entry: the handler reads the expected credentials."""
    return (
        f"{_OAUTHBEARER_LOGIN_MODULE} required"
        f' accessKeyId="{credentials["access_key_id"]}"'
        f' secretAccessKey="{credentials["secret_access_key"]}";'
    )


def _server_properties(
    state_dir: Path,
    ports: dict[str, int],
    tls: _TlsFiles,
    users: dict[str, dict[str, str]],
    iam_credentials: dict[str, str],
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
        "advertised.listeners": ",".join(f"{name}://{listeners[name]}" for name in LISTENERS),
        "listener.security.protocol.map": ",".join(
            f"{name}:{_SECURITY_PROTOCOLS[name]}" for name in listeners
        ),
        "sasl.enabled.mechanisms": ",".join(MECHANISMS),
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(tls.keystore),
        # SSL: mutual TLS, clients need a certificate signed by our CA.
        "listener.name.ssl.ssl.client.auth": "required",
        "listener.name.ssl.ssl.truststore.type": "PEM",
        "listener.name.ssl.ssl.truststore.location": str(tls.ca_file),
        # BADHOST: a certificate valid only for wrong-host.invalid.
        "listener.name.badhost.ssl.keystore.location": str(tls.bad_host_keystore),
        # IAM: OAUTHBEARER checked by our MSK IAM emulation. The handler also serves the
        # broker-side login, which needs no token (the default would want an unsecured JWS).
        "listener.name.iam.sasl.enabled.mechanisms": IAM_MECHANISM,
        "listener.name.iam.oauthbearer.sasl.jaas.config": _iam_jaas(iam_credentials),
        "listener.name.iam.oauthbearer.sasl.server.callback.handler.class": _IAM_HANDLER_CLASS,
        "listener.name.iam.oauthbearer.sasl.login.callback.handler.class": _IAM_HANDLER_CLASS,
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
    for listener in _USER_SASL_LISTENERS:
        for mechanism in MECHANISMS:
            key = f"listener.name.{listener.lower()}.{mechanism.lower()}.sasl.jaas.config"
            props[key] = _jaas(mechanism, users)
    return props


def _escape_backslashes(value: str) -> str:
    """Double every backslash (kept out of f-strings for Python 3.10)."""
    return value.replace("\\", "\\\\")


def _write_properties(path: Path, props: dict[str, str]) -> None:
    """Write a Java properties file (private: it contains the PLAIN password and IAM secret)."""
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
    state_dir: Path,
    libs: Path,
    jvm_opts: Sequence[str],
    main_class: str,
    args: Sequence[str],
    extra_jars: Sequence[Path] = (),
) -> list[str]:
    """Build a java command running ``main_class`` from the jar cache with our log4j2 config."""
    log4j = f"-Dlog4j2.configurationFile={state_dir / _LOG4J_CONFIG}"
    classpath = os.pathsep.join([f"{libs}/*", *map(str, extra_jars)])
    return [_java(), *jvm_opts, log4j, "-cp", classpath, main_class, *args]


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


def _launch(
    state_dir: Path, libs: Path, properties: Path, extra_jars: Sequence[Path] = ()
) -> subprocess.Popen[bytes]:
    """Start ``kafka.Kafka`` in its own session with output appended to the log."""
    jvm_opts = [*BROKER_HEAP, *BROKER_JVM_OPTS]
    cmd = _java_cmd(state_dir, libs, jvm_opts, "kafka.Kafka", [str(properties)], extra_jars)
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
        ssl: ``host:port`` of the mutual-TLS listener (security protocol SSL, client
            certificate required).
        client_cert_file: PEM client certificate (CN=dbt-kafka-sync-test-client) signed by
            ``ca_file``, for the SSL listener.
        client_key_file: Its unencrypted PKCS#8 PEM private key.
        bad_host: ``host:port`` of the BADHOST listener (SASL_SSL, PLAIN/SCRAM users), whose
            certificate is signed by ``ca_file`` but valid only for ``wrong-host.invalid``.
        other_ca_file: PEM certificate of an unrelated CA that signed nothing.
        iam: ``host:port`` of the IAM listener (SASL_SSL + OAUTHBEARER, MSK IAM tokens).
        iam_credentials: ``access_key_id`` and ``secret_access_key`` the IAM listener
            accepts (any session token is accepted with them).
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
    ssl: str
    client_cert_file: Path
    client_key_file: Path
    bad_host: str
    other_ca_file: Path
    iam: str
    iam_credentials: dict[str, str] = field(repr=False)  # never echo the secret
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
            "ssl": self.ssl,
            "client_cert_file": str(self.client_cert_file),
            "client_key_file": str(self.client_key_file),
            "bad_host": self.bad_host,
            "other_ca_file": str(self.other_ca_file),
            "iam": self.iam,
            "iam_credentials": self.iam_credentials,
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
            KafkaLocalError: If no broker has been recorded there or the file is unreadable
                (including one written by an older version of this module).
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
                ssl=str(doc["ssl"]),
                client_cert_file=Path(doc["client_cert_file"]),
                client_key_file=Path(doc["client_key_file"]),
                bad_host=str(doc["bad_host"]),
                other_ca_file=Path(doc["other_ca_file"]),
                iam=str(doc["iam"]),
                iam_credentials={k: str(v) for k, v in doc["iam_credentials"].items()},
            )
        except KeyError as exc:
            raise KafkaLocalError(
                f"unreadable {path}: no {exc.args[0]!r} (written by an older version of "
                "kafka_local.py? stop that broker and start a new one)"
            ) from exc
        except (ValueError, TypeError, AttributeError) as exc:
            raise KafkaLocalError(f"unreadable {path}: {exc!r}") from exc

    def is_running(self) -> bool:
        """Tell whether the broker process is still alive."""
        if self._process is not None:
            return self._process.poll() is None  # also reaps our own child
        return _is_broker_process(self.pid, self.state_dir / _PROPERTIES)

    def address(self, listener: str) -> str:
        """Return the ``host:port`` of a listener.

        Args:
            listener: One of :data:`LISTENERS` (case-insensitive).

        Raises:
            ValueError: On an unknown listener.
        """
        name = listener.upper()
        if name not in LISTENERS:
            raise ValueError(f"unknown listener {listener!r}; expected one of {tuple(LISTENERS)}")
        return str(getattr(self, LISTENERS[name]))

    def client_config(
        self,
        security_protocol: str = "PLAINTEXT",
        mechanism: str | None = None,
        *,
        host: str = LOOPBACK,
        verify_hostname: bool = True,
    ) -> ClientConfig:
        """Build a confluent-kafka/librdkafka config for one listener.

        TLS listeners trust ``ca_file`` and verify the broker's hostname unless told not
        to, so ``BADHOST`` fails by default and works with ``verify_hostname=False``.

        Args:
            security_protocol: The listener: ``PLAINTEXT``, ``SASL_PLAINTEXT``,
                ``SASL_SSL``, ``SSL`` (mutual TLS: adds the client certificate and key),
                ``BADHOST`` (SASL_SSL) or ``IAM`` (SASL_SSL + OAUTHBEARER; add an
                ``oauth_cb``, e.g. :meth:`iam_oauth_cb`, before creating a client).
            mechanism: ``PLAIN``, ``SCRAM-SHA-256`` or ``SCRAM-SHA-512``; required for
                ``SASL_PLAINTEXT``, ``SASL_SSL`` and ``BADHOST``; ignored for
                ``PLAINTEXT`` and ``SSL``; ``None`` or ``OAUTHBEARER`` for ``IAM``.
            host: Bootstrap host; ``localhost`` also passes TLS hostname verification.
            verify_hostname: Set ``ssl.endpoint.identification.algorithm`` to ``https``
                (default) or ``none``; ignored for non-TLS listeners.

        Returns:
            A config dict with bootstrap servers, security settings and credentials.

        Raises:
            ValueError: On an unknown listener or mechanism.
        """
        listener = security_protocol.upper()
        port = self.address(listener).rsplit(":", 1)[1]
        protocol = _SECURITY_PROTOCOLS[listener]
        conf: ClientConfig = {"bootstrap.servers": f"{host}:{port}", "security.protocol": protocol}
        if listener == "IAM":
            if mechanism is not None and mechanism.upper() != IAM_MECHANISM:
                raise ValueError(f"IAM takes mechanism {IAM_MECHANISM}, got {mechanism!r}")
            conf["sasl.mechanism"] = IAM_MECHANISM
        elif protocol.startswith("SASL_"):
            if mechanism is None or mechanism.upper() not in MECHANISMS:
                raise ValueError(
                    f"{listener} needs a mechanism out of {MECHANISMS}, got {mechanism!r}"
                )
            user = self.users[mechanism.lower()]
            conf.update(
                {
                    "sasl.mechanism": mechanism.upper(),
                    "sasl.username": user["username"],
                    "sasl.password": user["password"],
                }
            )
        if protocol in ("SSL", "SASL_SSL"):
            conf["ssl.ca.location"] = str(self.ca_file)
            conf["ssl.endpoint.identification.algorithm"] = "https" if verify_hostname else "none"
        if listener == "SSL":
            conf["ssl.certificate.location"] = str(self.client_cert_file)
            conf["ssl.key.location"] = str(self.client_key_file)
        return conf

    def java_client_config(
        self,
        security_protocol: str = "PLAINTEXT",
        mechanism: str | None = None,
        *,
        host: str = LOOPBACK,
        verify_hostname: bool = True,
    ) -> dict[str, str]:
        """Build the same settings for Java clients (e.g. kafka-tools' ProducerPerformance).

        Write the result as ``key=value`` lines and pass it as ``--producer.config``.

        Args:
            security_protocol: A listener as for :meth:`client_config`, except ``IAM``
                (Java clients need AWS's aws-msk-iam-auth jar, which is not provided).
            mechanism: SASL mechanism, required for the PLAIN/SCRAM listeners.
            host: Bootstrap host.
            verify_hostname: Whether TLS verifies the broker's hostname.

        Returns:
            Java client properties (JAAS login, a PEM truststore instead of a CA path and,
            for ``SSL``, a PEM keystore with the client key and certificate).

        Raises:
            ValueError: On an unknown or unsupported listener or mechanism.
        """
        if security_protocol.upper() == "IAM":
            raise ValueError("Java clients of the IAM listener need aws-msk-iam-auth")
        native = self.client_config(
            security_protocol, mechanism, host=host, verify_hostname=verify_hostname
        )
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
        if conf.get("ssl.endpoint.identification.algorithm") == "none":
            conf["ssl.endpoint.identification.algorithm"] = ""  # Java's spelling of "off"
        if "ssl.key.location" in conf:
            # Java's PEM keystore wants the key and certificate chain in one file.
            conf.pop("ssl.certificate.location")
            key_file = Path(conf.pop("ssl.key.location"))
            conf["ssl.keystore.type"] = "PEM"
            conf["ssl.keystore.location"] = str(_tls_files(key_file.parent).client_keystore)
        return conf

    def iam_oauth_cb(
        self,
        region: str = IAM_REGION,
        *,
        access_key_id: str | None = None,
        secret_access_key: str | None = None,
        session_token: str | None = None,
    ) -> Callable[[str | None], tuple[str, float]]:
        """Build a confluent-kafka ``oauth_cb`` for the IAM listener with AWS's signer.

        The tokens come from ``aws-msk-iam-sasl-signer-python`` (which must be installed),
        exactly as an MSK client makes them, signed with this broker's test credentials
        unless overridden (to provoke authentication failures). Use it as::

            conf = {**broker.client_config("IAM"), "oauth_cb": broker.iam_oauth_cb()}

        Args:
            region: AWS region to sign for (any region is accepted).
            access_key_id: Overrides ``iam_credentials["access_key_id"]``.
            secret_access_key: Overrides ``iam_credentials["secret_access_key"]``.
            session_token: Sign as temporary credentials with this session token.

        Returns:
            A callback returning ``(token, expiry in seconds since the epoch)``.
        """
        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider
        from botocore.credentials import CredentialProvider, Credentials

        credentials = Credentials(
            access_key_id or self.iam_credentials["access_key_id"],
            secret_access_key or self.iam_credentials["secret_access_key"],
            session_token,
        )

        class _FixedCredentials(CredentialProvider):  # type: ignore[misc]
            METHOD = "kafka-local"

            def load(self) -> Any:
                return credentials

        provider = _FixedCredentials()

        def oauth_cb(_config: str | None) -> tuple[str, float]:
            token, expiry_ms = MSKAuthTokenProvider.generate_auth_token_from_credentials_provider(
                region, provider
            )
            return token, expiry_ms / 1000

        return oauth_cb

    def admin(self) -> AdminClient:
        """Create an AdminClient on the PLAINTEXT listener.

        Returns:
            A new ``confluent_kafka.admin.AdminClient``.
        """
        from confluent_kafka.admin import AdminClient

        return AdminClient(self.client_config(), logger=_CLIENT_LOG)

    def create_topic(
        self,
        name: str,
        partitions: int = 1,
        *,
        timeout: float = 30.0,
        exist_ok: bool = False,
        config: dict[str, str] | None = None,
    ) -> None:
        """Create a topic on this broker; see :func:`create_topic`."""
        create_topic(
            self.plaintext, name, partitions, timeout=timeout, exist_ok=exist_ok, config=config
        )

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


# ------------------------------------------------------------------------------- MSK IAM


def msk_iam_token(
    access_key_id: str,
    secret_access_key: str,
    region: str = IAM_REGION,
    *,
    session_token: str | None = None,
    signed_at: datetime.datetime | None = None,
    expires: int = IAM_TOKEN_LIFETIME,
    user_agent: str = _IAM_USER_AGENT,
) -> tuple[str, int]:
    """Build an Amazon MSK IAM auth token without AWS libraries.

    Produces what ``aws-msk-iam-sasl-signer-python`` does (byte for byte, given its
    user agent and the same signing time): the base64url encoding, without padding, of a
    SigV4-presigned ``https://kafka.<region>.amazonaws.com/?Action=kafka-cluster%3AConnect``
    URL. The broker's readiness check uses it; tests can use it to craft expired,
    future-dated or wrongly signed tokens.

    Args:
        access_key_id: AWS access key id.
        secret_access_key: AWS secret access key.
        region: AWS region to sign for.
        session_token: Session token of temporary credentials, if any.
        signed_at: Signing time (default now; a naive datetime is local time).
        expires: Token lifetime in seconds (``X-Amz-Expires``).
        user_agent: The unsigned ``User-Agent`` query parameter.

    Returns:
        ``(token, expiry in milliseconds since the epoch)``, like the AWS library.
    """
    when = (signed_at or datetime.datetime.now(datetime.timezone.utc)).astimezone(
        datetime.timezone.utc
    )
    amz_date = when.strftime("%Y%m%dT%H%M%SZ")
    scope = f"{amz_date[:8]}/{region}/{_IAM_SERVICE}/aws4_request"
    params = {
        "Action": _IAM_ACTION,
        "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
        "X-Amz-Credential": f"{access_key_id}/{scope}",
        "X-Amz-Date": amz_date,
        "X-Amz-Expires": str(expires),
        "X-Amz-SignedHeaders": "host",
    }
    if session_token:
        params["X-Amz-Security-Token"] = session_token
    encoded = [
        (urllib.parse.quote(k, safe="-_.~"), urllib.parse.quote(v, safe="-_.~"))
        for k, v in params.items()
    ]
    host = f"kafka.{region}.amazonaws.com"
    canonical_request = "\n".join(
        [
            "GET",
            "/",
            "&".join(f"{k}={v}" for k, v in sorted(encoded)),
            f"host:{host}",
            "",
            "host",
            hashlib.sha256(b"").hexdigest(),  # botocore signs presigned GETs' empty body
        ]
    )
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            amz_date,
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = f"AWS4{secret_access_key}".encode()
    for part in (amz_date[:8], region, _IAM_SERVICE, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    query = "&".join(f"{k}={v}" for k, v in encoded)
    user_agent_param = urllib.parse.urlencode({"User-Agent": user_agent})
    url = f"https://{host}/?{query}&X-Amz-Signature={signature}&{user_agent_param}"
    token = base64.urlsafe_b64encode(url.encode()).decode().rstrip("=")
    signed = datetime.datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ")
    expiry = signed.replace(tzinfo=datetime.timezone.utc).timestamp() + expires
    return token, int(expiry) * 1000


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
    config: dict[str, str] | None = None,
) -> None:
    """Create a topic and wait until every partition has a leader.

    Args:
        bootstrap_servers: A PLAINTEXT bootstrap address.
        name: Topic name.
        partitions: Number of partitions (replication factor is always 1).
        timeout: Seconds to wait in total.
        exist_ok: Do not raise if the topic already exists.
        config: Topic configs, e.g. {"max.message.bytes": "2000"}.

    Raises:
        KafkaLocalError: If the topic is not fully available in time.
        confluent_kafka.KafkaException: If the broker rejects the creation.
    """
    from confluent_kafka import KafkaError, KafkaException

    # cimpl is where NewTopic is defined; confluent_kafka.admin re-exports it untyped.
    from confluent_kafka.cimpl import NewTopic

    deadline = time.monotonic() + timeout
    admin = _admin(bootstrap_servers)
    spec = NewTopic(name, num_partitions=partitions, replication_factor=1, config=config or {})
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


_SASL_HANDSHAKE_API = 17
_SASL_AUTHENTICATE_API = 36


def _kafka_call(sock: ssl.SSLSocket, api_key: int, version: int, body: bytes) -> bytes:
    """Send one request (header v1) and return the response body after its header."""
    client_id = b"kafka-local-probe"
    header = struct.pack(">hhih", api_key, version, api_key, len(client_id)) + client_id
    sock.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
    (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
    response = _recv_exactly(sock, size)
    if struct.unpack_from(">i", response)[0] != api_key:  # the correlation id
        raise ConnectionError("unexpected Kafka response")
    return response[4:]


def _recv_exactly(sock: ssl.SSLSocket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return data


def _iam_authenticates(broker: Broker, timeout: float) -> bool:
    """Authenticate once on the IAM listener with a fresh token, speaking Kafka's protocol.

    librdkafka takes a second longer than needed per OAUTHBEARER client (it drops the
    bootstrap connection and reconnects on its next one-second tick), so this probe
    sends SaslHandshake and SaslAuthenticate (v1) itself: about 10 ms.

    Returns:
        True once authenticated.

    Raises:
        OSError: If the listener cannot be reached (retried by the caller).
        KafkaLocalError: If the broker rejects the token (the handler is broken).
    """
    host, port = broker.iam.rsplit(":", 1)
    context = ssl.create_default_context(cafile=str(broker.ca_file))
    token, _ = msk_iam_token(
        broker.iam_credentials["access_key_id"], broker.iam_credentials["secret_access_key"]
    )
    with (
        socket.create_connection((host, int(port)), timeout=timeout) as raw,
        context.wrap_socket(raw, server_hostname=host) as sock,
    ):
        mechanism = IAM_MECHANISM.encode()
        response = _kafka_call(
            sock, _SASL_HANDSHAKE_API, 1, struct.pack(">h", len(mechanism)) + mechanism
        )
        (error,) = struct.unpack_from(">h", response)
        rejection = f"SaslHandshake error code {error}" if error else ""
        if not rejection:
            message = b"n,,\x01auth=Bearer " + token.encode() + b"\x01\x01"
            response = _kafka_call(
                sock, _SASL_AUTHENTICATE_API, 1, struct.pack(">i", len(message)) + message
            )
            error, length = struct.unpack_from(">hh", response)
            offset = 4 + max(length, 0)
            (challenge_length,) = struct.unpack_from(">i", response, offset)
            # On success the server's reply is empty; a rejection is a JSON error "challenge".
            challenge = response[offset + 4 : offset + 4 + max(challenge_length, 0)]
            rejection = challenge.decode(errors="replace") or (
                f"error code {error}" if error else ""
            )
    if rejection:
        raise KafkaLocalError(
            _with_log_tail(f"the IAM listener rejected a valid token: {rejection}", broker.log_file)
        )
    return True


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
        return lambda: len(_metadata(admin, deadline).brokers) == 1

    def iam_check() -> Callable[[], bool]:
        return lambda: _iam_authenticates(broker, max(0.1, min(2.0, deadline - time.monotonic())))

    probes: list[tuple[str, Callable[[], Callable[[], bool]]]] = [
        ("PLAINTEXT", lambda: metadata_check("PLAINTEXT", None)),
        ("SASL_SSL", lambda: metadata_check("SASL_SSL", "SCRAM-SHA-512")),
        ("SSL", lambda: metadata_check("SSL", None)),
        ("IAM", iam_check),
    ]
    for listener, make_check in probes:
        check = make_check()  # only now: a client made early would back off while waiting
        while True:
            if not is_alive():
                raise KafkaLocalError(
                    _with_log_tail(f"Kafka broker (pid {broker.pid}) exited", broker.log_file)
                )
            try:
                if check():
                    break
            except (KafkaException, OSError) as exc:  # ssl.SSLError is an OSError
                errors.append(str(exc))
            if time.monotonic() >= deadline:
                last = errors[-1] if errors else "none"
                raise KafkaLocalError(
                    _with_log_tail(
                        f"Kafka broker not ready on {listener} after {timeout:g} s "
                        f"(last client error: {last})",
                        broker.log_file,
                    )
                )
            time.sleep(0.2)


# ------------------------------------------------------------------------- start / stop


def _start_once(state_dir: Path, libs: Path, extra_jars: Sequence[Path], timeout: float) -> Broker:
    """Provision a fresh broker in ``state_dir``, launch it and wait for readiness."""
    _clear_state(state_dir)
    names = (*LISTENERS, "CONTROLLER")
    ports = dict(zip(names, _free_ports(len(names)), strict=True))
    users = _new_users()
    iam_credentials = _new_iam_credentials()
    tls = _tls_files(state_dir / _TLS_DIR)
    properties = state_dir / _PROPERTIES
    _write_properties(properties, _server_properties(state_dir, ports, tls, users, iam_credentials))
    _write_log4j_config(state_dir / _LOG4J_CONFIG)
    # Formatting never reads the TLS files, so make them meanwhile (RSA keys take a while).
    with ThreadPoolExecutor(max_workers=1) as pool:
        tls_made = pool.submit(_make_tls, state_dir / _TLS_DIR)
        _format_storage(state_dir, libs, properties, users)
        tls_made.result()
    process = _launch(state_dir, libs, properties, extra_jars)
    broker = Broker(
        state_dir=state_dir,
        pid=process.pid,
        log_file=state_dir / _LOG_FILE,
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
    # Only the pid matters here, so a broker.json of an older version protects as well.
    pid = _recorded_pid(state)
    if pid is not None and _is_broker_process(pid, state / _PROPERTIES):
        raise KafkaLocalError(
            f"a broker (pid {pid}) is already running from {state}; stop it first"
        )
    libs = fetch_jars()
    extra_jars = [iam_handler_jar(libs)]
    try:
        return _start_once(state, libs, extra_jars, timeout)
    except KafkaLocalError:
        if not _lost_port_race(state / _LOG_FILE):
            raise
    return _start_once(state, libs, extra_jars, timeout)  # ports are re-picked; one retry


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
    except KafkaLocalError:  # e.g. written by an older version: the pid is enough to stop it
        return _stop_recorded_pid(Path(state_dir).resolve(), timeout)
    return broker.stop(timeout)


def _recorded_pid(state: Path) -> int | None:
    """Read only the pid from ``broker.json`` (None if there is no readable one)."""
    try:
        return int(json.loads((state / _BROKER_JSON).read_text(encoding="utf-8"))["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _stop_recorded_pid(state: Path, timeout: float) -> bool:
    """Stop the broker whose pid ``broker.json`` records: SIGTERM, then SIGKILL."""
    pid = _recorded_pid(state)
    properties = state / _PROPERTIES
    if pid is None or not _is_broker_process(pid, properties):
        return False
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 10.0)):
        _signal_group(pid, sig)
        deadline = time.monotonic() + wait
        while _is_broker_process(pid, properties):
            if time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        else:
            return True
    return True


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
    for listener in LISTENERS:
        print(f"  {listener:<15} {broker.address(listener)}")
    print(f"  log file        {broker.log_file}")
    print(f"  broker.json     {broker.broker_json}")
    return 0


def _cmd_fetch(args: argparse.Namespace) -> int:
    """Only resolve the jar cache and compile the IAM handler (a cacheable CI step)."""
    libs = fetch_jars()
    iam_handler_jar(libs)
    print(libs)
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
        "fetch": (_cmd_fetch, "only resolve the Kafka jars (and build the IAM handler)"),
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
