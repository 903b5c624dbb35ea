"""The `kafka_sync` profile output: brokers, auth, tls, producer settings and the state.

Secrets are pydantic SecretStr: they print as '**********' wherever a config object is
shown, and their value is read only where it is handed to the Kafka client.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dbt_kafka_sync.config.alerts import AlertsConfig


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


DEFAULT_STATE_PATH = ".dbt_kafka_sync/state.duckdb"
DEFAULT_MEMORY_LIMIT = "1GB"
MEMORY_SIZE = r"(?i)^(\d+(\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$"  # as DuckDB reads sizes
_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_UNITS |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
MIN_MEMORY_BYTES = 64 * 10**6


Delivery = Literal["at_least_once", "exactly_once"]
DEFAULT_PROGRESS_TOPIC = "dbt_kafka_sync_progress"
DEFAULT_TRANSACTIONAL_ID_PREFIX = "dbt-kafka-sync"
# Below it, starting rendering processes costs more than they save.
DEFAULT_RENDER_WORKERS_FROM_ROWS = 20_000

STATE_SCHEMA_SUFFIX = "_kafka_sync"  # the default state schema: the dbt target's schema + this
DEFAULT_LEASE_SECONDS = 120


class LocalState(_Strict):
    """The state in a DuckDB file beside the project (`state_path`)."""

    type: Literal["local"] = "local"
    # After each run that leaves the file whole, a copy of it is kept beside it
    # (`<state_path>.last-good`) for `restore-state`. It costs a second file of the same
    # size and a copy per run (about 0.2 s for 200 MB); a huge state may turn it off.
    keep_last_good: bool = True


class WarehouseState(_Strict):
    """The state in a bookkeeping schema of the warehouse the dbt target points at."""

    type: Literal["warehouse"]
    # Default: the dbt target's schema + STATE_SCHEMA_SUFFIX, so that targets that build
    # into schemas of their own (dev, CI, prod) keep states of their own.
    schema_name: str | None = Field(None, alias="schema", min_length=1)
    # How long a run's lock outlives its last renewal (renewed every third of it).
    lease_seconds: int = Field(DEFAULT_LEASE_SECONDS, ge=3)


class DebuggerConfig(_Strict):
    """The `debugger` block: what the state keeps of each run's messages, and how long."""

    enabled: bool = True
    # Off keeps no message value (PII): key, topic, size and outcome are still recorded.
    record_values: bool = True
    retention_days: int = Field(default=7, ge=1)


class KafkaTarget(BaseModel):
    """One output of the `kafka_sync` profile: how to reach the brokers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bootstrap_servers: str = Field(min_length=1)
    client_id: str = "dbt-kafka-sync"
    auth: AuthConfig | None = None
    tls: TlsConfig | None = None
    # Before `producer`, whose check reads it: accept settings that break the delivery
    # guarantee (see check_delivery_guarantee), with a warning at the start of each run.
    allow_unsafe_producer_settings: bool = False
    producer: dict[str, str | int | float | bool] = Field(default_factory=dict)
    state_path: str = DEFAULT_STATE_PATH
    state: LocalState | WarehouseState = Field(default_factory=LocalState, discriminator="type")
    # DuckDB's memory for change detection; beyond it DuckDB spills to a temporary folder.
    memory_limit: str = DEFAULT_MEMORY_LIMIT
    # at_least_once: a row may be sent twice after a failure. exactly_once: each sync's
    # changes in one Kafka transaction, with a marker on the progress topic.
    delivery: Delivery = "at_least_once"
    progress_topic: str = Field(default=DEFAULT_PROGRESS_TOPIC, min_length=1)
    transactional_id_prefix: str = Field(default=DEFAULT_TRANSACTIONAL_ID_PREFIX, min_length=1)
    alerts: AlertsConfig | None = None  # where to tell about failed runs (config/alerts.py)
    # The message log, stage timings and send rate of each run (README: Debugger).
    debugger: DebuggerConfig = Field(default_factory=DebuggerConfig)
    # Processes rendering Liquid templates (default: one per core; 1 = the run's own),
    # for syncs with at least render_workers_from_rows messages to render.
    render_workers: int | None = Field(default=None, ge=1)
    render_workers_from_rows: int = Field(default=DEFAULT_RENDER_WORKERS_FROM_ROWS, ge=0)

    @field_validator("memory_limit")
    @classmethod
    def _memory_size(cls, value: str) -> str:
        size = re.match(MEMORY_SIZE, value.strip())
        if not size:
            raise ValueError(f"{value!r} is not a size: write e.g. 1GB, 512MB or 2.5GiB")
        if float(size[1]) * _UNITS[size[3].upper()] < MIN_MEMORY_BYTES:
            raise ValueError(f"{value!r} is too little for DuckDB: give it 64MB at least")
        return value.strip()

    @field_validator("tls", mode="before")
    @classmethod
    def _tls_shorthand(cls, value: Any) -> Any:
        # `tls: true` is TLS with the system's trusted CAs (e.g. Confluent Cloud).
        if value is True:
            return {}
        return None if value is False else value

    @field_validator("producer")
    @classmethod
    def _no_secrets_in_producer(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        secret = sorted(key for key in value if _is_secret_setting(key))
        if secret:
            raise ValueError(
                f"{', '.join(secret)} belong in the auth or tls block, where they are kept secret"
            )
        check_delivery_guarantee(value, bool(info.data.get("allow_unsafe_producer_settings")))
        return value

    @field_validator("bootstrap_servers", mode="before")
    @classmethod
    def _join_list(cls, value: Any) -> Any:
        if isinstance(value, list):
            return ",".join(str(server).strip() for server in value)
        return value


# The delivery guarantee: a row is never lost, and retries send it at most twice.
GUARANTEE = "a row is never lost, and retries send it at most twice"
TRANSACTIONAL_ID = "transactional.id"
_FALSE = ("false", "0", "f", "no", "off")


def _is_zero(value: str) -> bool:
    try:
        return float(value) == 0
    except ValueError:
        return False


# (names, whether a normalised value is unsafe, why): the settings that break GUARANTEE.
_UNSAFE: tuple[tuple[tuple[str, ...], Callable[[str], bool], str], ...] = (
    (
        ("acks", "request.required.acks"),
        lambda value: value not in ("all", "-1"),
        "the broker confirms a message before every in-sync replica has it, so a row"
        " counted as delivered can be lost: use all or -1",
    ),
    (
        ("enable.idempotence",),
        lambda value: value in _FALSE,
        "retries may write a message twice or out of order",
    ),
    (
        ("message.timeout.ms", "delivery.timeout.ms"),
        _is_zero,
        "0 means a message never times out: a row the broker never takes is neither"
        " delivered nor failed, and the run never ends",
    ),
)


def unsafe_producer_settings(producer: Mapping[str, object]) -> list[str]:
    """Each `producer:` setting that breaks the delivery guarantee, with its value and why.

    Values come from YAML as text, numbers or booleans ("0", 0, "false", False): they are
    compared normalised. Names may carry librdkafka's `topic.` prefix.
    """
    return [
        f"{name}: {value} ({why})"
        for name, value in producer.items()
        for names, unsafe, why in _UNSAFE
        if _setting(name) in names and unsafe(str(value).strip().lower())
    ]


def check_delivery_guarantee(producer: Mapping[str, object], allow_unsafe: bool) -> None:
    """Refuse `producer:` settings that break the delivery guarantee (GUARANTEE).

    `allow_unsafe` (the profile's allow_unsafe_producer_settings) lets them through, with
    a warning at the start of each run; `transactional.id` is refused all the same.

    Raises:
        ValueError: naming each refused setting, its value and why.
    """
    refused = [
        f"{name} is set by dbt-kafka-sync in exactly-once delivery; not allowed in producer:"
        for name in producer
        if _setting(name) == TRANSACTIONAL_ID
    ]
    if not allow_unsafe and unsafe_producer_settings(producer):
        refused += unsafe_producer_settings(producer)
        refused[-1] += (
            f". These break the guarantee that {GUARANTEE}; to accept that, set"
            " allow_unsafe_producer_settings: true"
        )
    if refused:
        raise ValueError("; ".join(refused))


def _setting(name: str) -> str:
    return name.strip().removeprefix("topic.")


def _is_secret_setting(key: str) -> bool:
    return any(word in key for word in ("password", "secret", "sasl.jaas", "key.pem"))
