"""The `alerts` block of a kafka_sync output: which channels hear about a run, and when.

Webhook URLs (Slack's carries its token), routing keys, the HMAC secret and the SMTP
password are SecretStr: masked wherever the config is shown, read only to send.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, model_validator

Trigger = Literal["failure", "failed_rows", "recovery"]
ALL_TRIGGERS: tuple[Trigger, ...] = ("failure", "failed_rows", "recovery")
PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"
SIGNATURE_HEADER = "X-Dbt-Kafka-Sync-Signature"
DEFAULT_TIMEOUT_SECONDS = 10.0


def _http_url(value: str) -> str:
    # urllib also opens file:// and ftp:// URLs: only HTTP(S) is a webhook.
    value = value.strip()  # e.g. the newline an env var picked up from a file
    if not value.startswith(("https://", "http://")):
        raise ValueError("must start with https:// (or http://)")  # never quote a secret URL
    if any(char.isspace() or not char.isprintable() for char in value):
        raise ValueError("must not contain spaces or control characters")
    return value


def _secret_http_url(value: SecretStr) -> SecretStr:
    return SecretStr(_http_url(value.get_secret_value()))


HttpUrl = Annotated[str, AfterValidator(_http_url)]
SecretHttpUrl = Annotated[SecretStr, AfterValidator(_secret_http_url)]


class AlertChannel(BaseModel):
    """What every channel has: the triggers it hears about."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # `triggers`, not `on`: YAML 1.1 reads a bare `on` key as the boolean true.
    triggers: list[Trigger] = Field(default_factory=lambda: list(ALL_TRIGGERS), min_length=1)


class SlackChannel(AlertChannel):
    """A Slack incoming webhook; its URL is the secret that lets anyone post."""

    webhook_url: SecretHttpUrl
    blocks: bool = False  # also send Block Kit blocks (a header, then a section per alert)


class PagerDutyChannel(AlertChannel):
    """PagerDuty Events API v2: trigger on a problem, resolve when the sync recovers."""

    routing_key: SecretStr
    events_url: HttpUrl = PAGERDUTY_EVENTS_URL  # e.g. https://events.eu.pagerduty.com/v2/enqueue
    severity: Literal["critical", "error", "warning", "info"] = "error"


class WebhookChannel(AlertChannel):
    """Any HTTP endpoint: a JSON POST, signed with HMAC-SHA256 when `secret` is set."""

    url: SecretHttpUrl
    secret: SecretStr | None = None
    signature_header: str = Field(default=SIGNATURE_HEADER, min_length=1)


class EmailChannel(AlertChannel):
    """Email over SMTP, with STARTTLS and AUTH."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    host: str = Field(min_length=1)
    port: int = Field(default=587, gt=0, lt=65536)
    username: str | None = None
    password: SecretStr | None = None
    sender: str = Field(alias="from", min_length=3)
    to: list[str] = Field(min_length=1)
    starttls: bool = True
    ca_file: str | None = None  # a CA to trust besides the system's (a private mail relay)
    verify_hostname: bool = True

    @model_validator(mode="after")
    def _auth_over_tls(self) -> EmailChannel:
        if (self.username is None) != (self.password is None):
            raise ValueError("give both `username` and `password`, or neither")
        if self.password is not None and not self.starttls:
            raise ValueError("a password is only sent over TLS: keep `starttls: true`")
        return self


class AlertsConfig(BaseModel):
    """Where alerts go and what counts as too many failed rows."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    slack: SlackChannel | None = None
    pagerduty: PagerDutyChannel | None = None
    webhook: WebhookChannel | None = None
    email: EmailChannel | None = None
    # A sync alerts (failed_rows) when its failed + rejected rows are more than this many,
    # or more than this share of its messages; with neither set, any such row alerts.
    failed_rows_above: int | None = Field(default=None, ge=0)
    failed_share_above: float | None = Field(default=None, ge=0, lt=1)
    timeout_seconds: float = Field(default=DEFAULT_TIMEOUT_SECONDS, gt=0, le=60)
