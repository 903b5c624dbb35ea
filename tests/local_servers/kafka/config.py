"""The broker's configuration: listeners, SASL users, ``server.properties`` and log4j2.

Listeners (all on 127.0.0.1, free ports picked at start):

* ``PLAINTEXT`` - no auth; also used between broker and itself.
* ``SASL_PLAINTEXT`` - PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512.
* ``SASL_SSL`` - the same mechanisms over TLS with a per-start CA (``ca_file``).
* ``SSL`` - mutual TLS: clients must present a certificate signed by that CA
  (``client_cert_file`` / ``client_key_file``, CN=dbt-kafka-sync-test-client).
* ``BADHOST`` - like ``SASL_SSL``, but its certificate (signed by the same CA) is valid
  only for ``wrong-host.invalid``: it fails hostname verification and works without it.
* ``IAM`` - Amazon MSK IAM emulation (see :mod:`local_servers.kafka.iam`).
"""

from __future__ import annotations

import base64
import secrets
import uuid
from pathlib import Path

from local_servers.kafka.iam import IAM_HANDLER_CLASS, IAM_MECHANISM, iam_jaas
from local_servers.kafka.tls import TlsFiles
from local_servers.processes import LOOPBACK

NODE_ID = 1
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
SCRAM_MECHANISMS = ("SCRAM-SHA-256", "SCRAM-SHA-512")
LOGIN_MODULES = {
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
SECURITY_PROTOCOLS = {
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

BROKER_JSON = "broker.json"
LOG_FILE = "broker.log"
PROPERTIES = "server.properties"
LOG4J_CONFIG = "log4j2.xml"
DATA_DIR = "data"
TLS_DIR = "tls"
_PLAIN_USER = "dbt_plain"
_SCRAM_USER = "dbt_scram"


def cluster_id() -> str:
    """Generate a Kafka cluster id (base64url of a random UUID, no padding)."""
    while True:
        cid = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cid.startswith("-"):  # a leading dash would parse as a CLI option
            return cid


def new_users() -> dict[str, dict[str, str]]:
    """Create per-start credentials keyed by lower-case SASL mechanism."""
    scram = {"username": _SCRAM_USER, "password": secrets.token_urlsafe(24)}
    return {
        "plain": {"username": _PLAIN_USER, "password": secrets.token_urlsafe(24)},
        "scram-sha-256": dict(scram),
        "scram-sha-512": dict(scram),
    }


def _jaas(mechanism: str, users: dict[str, dict[str, str]]) -> str:
    """Build the broker-side JAAS entry for one SASL mechanism."""
    if mechanism == "PLAIN":
        plain = users["plain"]
        return (
            f'{LOGIN_MODULES[mechanism]} required user_{plain["username"]}="{plain["password"]}";'
        )
    # SCRAM credentials live in the KRaft metadata log (added at format time).
    return f"{LOGIN_MODULES[mechanism]} required;"


def server_properties(
    state_dir: Path,
    ports: dict[str, int],
    tls: TlsFiles,
    users: dict[str, dict[str, str]],
    iam_credentials: dict[str, str],
) -> dict[str, str]:
    """Assemble ``server.properties`` for a single combined broker+controller node."""
    listeners = {name: f"{LOOPBACK}:{port}" for name, port in ports.items()}
    data_dir = str(state_dir / DATA_DIR)
    props = {
        "process.roles": "broker,controller",
        "node.id": str(NODE_ID),
        "controller.quorum.bootstrap.servers": listeners["CONTROLLER"],
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listeners": ",".join(f"{name}://{addr}" for name, addr in listeners.items()),
        "advertised.listeners": ",".join(f"{name}://{listeners[name]}" for name in LISTENERS),
        "listener.security.protocol.map": ",".join(
            f"{name}:{SECURITY_PROTOCOLS[name]}" for name in listeners
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
        "listener.name.iam.oauthbearer.sasl.jaas.config": iam_jaas(iam_credentials),
        "listener.name.iam.oauthbearer.sasl.server.callback.handler.class": IAM_HANDLER_CLASS,
        "listener.name.iam.oauthbearer.sasl.login.callback.handler.class": IAM_HANDLER_CLASS,
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


def write_properties(path: Path, props: dict[str, str]) -> None:
    """Write a Java properties file (private: it contains the PLAIN password and IAM secret)."""
    # Backslash is the only character in our values that .properties treats specially.
    body = "".join(f"{key}={_escape_backslashes(value)}\n" for key, value in props.items())
    path.write_text("# Generated by local_servers.kafka\n" + body, encoding="utf-8")
    path.chmod(0o600)


def write_log4j_config(path: Path) -> None:
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
