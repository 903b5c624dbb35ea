"""A local broker as a value: where it runs, how to reach it, how clients connect to it.

Everything a client needs is written to ``<state_dir>/broker.json``, so a broker started
by one command can be used and stopped by another (see :meth:`Broker.load`).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from local_servers import processes
from local_servers.kafka.clients import CLIENT_LOG, Record, consume_all, create_topic, delete_topic
from local_servers.kafka.config import (
    BROKER_JSON,
    LISTENERS,
    LOGIN_MODULES,
    MECHANISMS,
    PROPERTIES,
    SECURITY_PROTOCOLS,
)
from local_servers.kafka.errors import KafkaLocalError
from local_servers.kafka.iam import IAM_MECHANISM, IAM_REGION
from local_servers.kafka.tls import tls_files
from local_servers.processes import LOOPBACK

if TYPE_CHECKING:
    from confluent_kafka.admin import AdminClient

DEFAULT_STOP_TIMEOUT = 30.0

ClientConfig = dict[str, str | int | float | bool]


def is_broker_process(pid: int, properties: Path) -> bool:
    """Tell whether ``pid`` is alive and is the broker started for ``properties``."""
    return processes.process_matches(pid, "kafka.Kafka", str(properties))


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
        return self.state_dir / BROKER_JSON

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
        processes.write_private_json(self.broker_json, self.to_json())

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
        path = state / BROKER_JSON
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
                "local_servers.kafka? stop that broker and start a new one)"
            ) from exc
        except (ValueError, TypeError, AttributeError) as exc:
            raise KafkaLocalError(f"unreadable {path}: {exc!r}") from exc

    def is_running(self) -> bool:
        """Tell whether the broker process is still alive."""
        if self._process is not None:
            return self._process.poll() is None  # also reaps our own child
        return is_broker_process(self.pid, self.state_dir / PROPERTIES)

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
        protocol = SECURITY_PROTOCOLS[listener]
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
                f"{LOGIN_MODULES[conf['sasl.mechanism']]} required "
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
            conf["ssl.keystore.location"] = str(tls_files(key_file.parent).client_keystore)
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

        return AdminClient(self.client_config(), logger=CLIENT_LOG)

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
        return processes.stop_group(self.pid, self.is_running, timeout, self._process)
