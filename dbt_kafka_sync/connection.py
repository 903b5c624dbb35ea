"""How to reach Kafka: the profile's `auth` and `tls` blocks as librdkafka settings.

Secrets are pydantic SecretStr: they print as '**********' wherever a config object is
shown, and their value is read only here, to hand it to the Kafka client.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from dbt_kafka_sync.errors import ProfileError

if TYPE_CHECKING:
    from dbt_kafka_sync.profiles import KafkaTarget

log = logging.getLogger(__name__)

SASL_MECHANISMS = {
    "plain": "PLAIN",
    "scram-sha-256": "SCRAM-SHA-256",
    "scram-sha-512": "SCRAM-SHA-512",
    "aws-iam": "OAUTHBEARER",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AuthConfig(_Strict):
    """The `auth` block: SASL with a username and password, or AWS IAM (Amazon MSK)."""

    mechanism: Literal["plain", "scram-sha-256", "scram-sha-512", "aws-iam"]
    username: str | None = None
    password: SecretStr | None = None
    # aws-iam only:
    region: str | None = None
    profile: str | None = Field(default=None, description="A named AWS profile.")
    role_arn: str | None = Field(default=None, description="A role to assume.")
    role_session_name: str = "dbt-kafka-sync"
    access_key_id: str | None = None
    secret_access_key: SecretStr | None = None
    session_token: SecretStr | None = None
    authorization_identity: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> AuthConfig:
        if self.mechanism == "aws-iam":
            self._check_aws()
        elif not self.username or self.password is None:
            raise ValueError(f"mechanism {self.mechanism} needs `username` and `password`")
        return self

    def _check_aws(self) -> None:
        if not self.region:
            raise ValueError("mechanism aws-iam needs `region` (e.g. us-east-1)")
        if self.username or self.password:
            raise ValueError("mechanism aws-iam takes no username/password: it signs with AWS")
        if (self.access_key_id is None) != (self.secret_access_key is None):
            raise ValueError("give both `access_key_id` and `secret_access_key`, or neither")
        sources = [
            name
            for name, value in (
                ("profile", self.profile),
                ("role_arn", self.role_arn),
                ("access_key_id", self.access_key_id),
            )
            if value
        ]
        if len(sources) > 1:
            raise ValueError(f"choose one source of AWS credentials, got {', '.join(sources)}")


class TlsConfig(_Strict):
    """The `tls` block: the CA to trust and, optionally, a client certificate (mTLS)."""

    ca_file: str | None = None
    ca_pem: str | None = None
    verify_hostname: bool = True
    cert_file: str | None = None
    cert_pem: str | None = None
    key_file: str | None = None
    key_pem: SecretStr | None = None
    key_password: SecretStr | None = None

    @model_validator(mode="after")
    def _one_of_each(self) -> TlsConfig:
        for name in ("ca", "cert", "key"):
            if getattr(self, f"{name}_file") and getattr(self, f"{name}_pem"):
                raise ValueError(f"give `{name}_file` or `{name}_pem`, not both")
        has_cert = bool(self.cert_file or self.cert_pem)
        has_key = bool(self.key_file or self.key_pem)
        if has_cert != has_key:
            raise ValueError("a client certificate needs its key, and a key its certificate")
        return self


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
