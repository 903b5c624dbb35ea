"""How to reach Kafka: the profile's `auth` and `tls` blocks as librdkafka settings.

Secrets are pydantic SecretStr: they print as '**********' wherever a config object is
shown, and their value is read only here, to hand it to the Kafka client.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbt_kafka_sync.errors import ProfileError

if TYPE_CHECKING:
    from dbt_kafka_sync.config.kafka import AuthConfig, KafkaTarget, TlsConfig

log = logging.getLogger(__name__)

SASL_MECHANISMS = {
    "plain": "PLAIN",
    "scram-sha-256": "SCRAM-SHA-256",
    "scram-sha-512": "SCRAM-SHA-512",
    "aws-iam": "OAUTHBEARER",
}


def security_protocol(target: KafkaTarget) -> str:
    """PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, from the auth and tls blocks."""
    tls = target.tls is not None or (target.auth is not None and target.auth.mechanism == "aws-iam")
    if target.auth is None:
        return "SSL" if tls else "PLAINTEXT"
    return "SASL_SSL" if tls else "SASL_PLAINTEXT"


def describe(target: KafkaTarget) -> str:
    """How the client connects, for messages: brokers, protocol and mechanism, no secret."""
    mechanism = f"/{SASL_MECHANISMS[target.auth.mechanism]}" if target.auth else ""
    extra = " (aws-iam)" if target.auth and target.auth.mechanism == "aws-iam" else ""
    return f"{target.bootstrap_servers} over {security_protocol(target)}{mechanism}{extra}"


def security_settings(target: KafkaTarget, base_dir: Path) -> dict[str, Any]:
    """Return the librdkafka settings for authentication and encryption.

    Args:
        target: the profile output.
        base_dir: the folder relative file paths (ca_file, cert_file, key_file) start from.
    """
    settings: dict[str, Any] = {"security.protocol": security_protocol(target)}
    if target.tls is not None:
        settings.update(_tls_settings(target.tls, base_dir))
    auth = target.auth
    if auth is None:
        return settings
    settings["sasl.mechanism"] = SASL_MECHANISMS[auth.mechanism]
    if auth.mechanism == "aws-iam":
        settings["oauth_cb"] = AwsIamTokens(auth)
    else:
        settings["sasl.username"] = auth.username
        settings["sasl.password"] = auth.password.get_secret_value() if auth.password else ""
    return settings


def _tls_settings(tls: TlsConfig, base_dir: Path) -> dict[str, Any]:
    settings: dict[str, Any] = {
        "ssl.endpoint.identification.algorithm": "https" if tls.verify_hostname else "none"
    }
    if not tls.verify_hostname:
        log.warning(
            "tls.verify_hostname is false: the broker's certificate is not checked against"
            " its host name, so a server with any certificate from your CA can pose as it"
        )
    pairs = {
        "ssl.ca.location": _path(tls.ca_file, base_dir),
        "ssl.ca.pem": tls.ca_pem,
        "ssl.certificate.location": _path(tls.cert_file, base_dir),
        "ssl.certificate.pem": tls.cert_pem,
        "ssl.key.location": _path(tls.key_file, base_dir),
        "ssl.key.pem": tls.key_pem.get_secret_value() if tls.key_pem else None,
        "ssl.key.password": tls.key_password.get_secret_value() if tls.key_password else None,
    }
    settings.update({key: value for key, value in pairs.items() if value is not None})
    return settings


def _path(file: str | None, base_dir: Path) -> str | None:
    if file is None:
        return None
    path = Path(file).expanduser()
    path = path if path.is_absolute() else base_dir / path
    if not path.is_file():
        raise ProfileError(
            f"TLS file {file} not found (looked at {path})",
            hint="relative paths in the tls block start from the dbt project folder",
        )
    return str(path)


class AwsIamTokens:
    """librdkafka's OAUTHBEARER token callback, signing Amazon MSK IAM tokens.

    librdkafka calls it for a first token and again before each token expires. An error
    raised inside it reaches the user only as a timeout, so the reason is kept in
    `error` for the caller to report.
    """

    def __init__(self, auth: AuthConfig) -> None:
        self.auth = auth
        self.error: str | None = None

    def __call__(self, _config: str | None) -> tuple[str, float, str]:
        """Return a fresh token, its expiry (seconds since the epoch) and a principal name."""
        try:
            signed, expiry_ms = self._sign()
        except Exception as exc:
            self.error = (
                f"cannot sign an AWS IAM token for region {self.auth.region}:"
                f" {type(exc).__name__}: {exc}"
            )
            raise
        # librdkafka wants seconds since the epoch (the signer gives milliseconds). The
        # principal only names the token on the client side; Amazon MSK authorizes the IAM
        # identity that signed it.
        return signed, expiry_ms / 1000, self.auth.authorization_identity or "dbt-kafka-sync"

    def _sign(self) -> tuple[str, float]:
        try:
            from aws_msk_iam_sasl_signer import MSKAuthTokenProvider as Signer
        except ImportError:
            raise ImportError(
                "auth mechanism aws-iam needs AWS's signer library:"
                " pip install 'dbt-kafka-sync[aws]'"
            ) from None
        auth, region = self.auth, self.auth.region or ""
        if auth.access_key_id and auth.secret_access_key:
            provider = _static_credentials(auth)
            result = Signer.generate_auth_token_from_credentials_provider(region, provider)
        elif auth.role_arn:
            result = Signer.generate_auth_token_from_role_arn(
                region, auth.role_arn, auth.role_session_name
            )
        elif auth.profile:
            result = Signer.generate_auth_token_from_profile(region, auth.profile)
        else:
            result = Signer.generate_auth_token(region)
        return str(result[0]), float(result[1])


def _static_credentials(auth: AuthConfig) -> Any:
    """A botocore credentials provider for the explicit keys of the profile."""
    from botocore.credentials import CredentialProvider, Credentials

    class StaticCredentials(CredentialProvider):  # type: ignore[misc]
        METHOD = "dbt-kafka-sync-profile"

        def load(self) -> Credentials:
            """Return the keys given in the profile."""
            secret = auth.secret_access_key
            token = auth.session_token
            return Credentials(
                access_key=auth.access_key_id,
                secret_key=secret.get_secret_value() if secret else "",
                token=token.get_secret_value() if token else None,
            )

    return StaticCredentials()
