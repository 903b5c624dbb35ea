"""The `kafka_sync` block users write in a model's meta, validated with pydantic."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from dbt_kafka_sync.config.validation import describe_validation_error
from dbt_kafka_sync.errors import ConfigError, quote_list

Event = Literal["added", "changed", "removed"]
EVENT_HEADER = "dbt-kafka-sync-event"  # the header naming each message's event
ALL_EVENTS: tuple[Event, ...] = ("added", "changed", "removed")


class _Strict(BaseModel):
    """Base for every config model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


MESSAGE_MODES = ("template", "template_file", "column", "columns")


class MessageConfig(_Strict):
    """How a row becomes a message value. Exactly one mode may be set."""

    template: str | None = Field(default=None, description="Inline Liquid template.")
    template_file: str | None = Field(
        default=None, description="Liquid template file, relative to the dbt project."
    )
    column: str | None = Field(default=None, description="A column that already holds JSON.")
    columns: list[str] | dict[str, str] | None = Field(
        default=None, description="Columns sent as a JSON object: a list, or field <- column."
    )
    compile: bool = Field(
        default=True,
        description="Let DuckDB build a template's messages where it writes exactly what"
        " Liquid renders; false: Liquid renders every message (same messages, slower).",
    )

    @model_validator(mode="after")
    def _exactly_one_mode(self) -> MessageConfig:
        modes = [name for name in MESSAGE_MODES if getattr(self, name) is not None]
        if len(modes) != 1:
            raise ValueError(
                f"message needs exactly one of {quote_list(MESSAGE_MODES)}"
                + (f", got {quote_list(modes)}" if modes else "")
            )
        return self

    def field_to_column(self) -> dict[str, str] | None:
        """Return message field -> column for the columns mode, None for other modes."""
        if self.columns is None:
            return None
        if isinstance(self.columns, dict):
            return dict(self.columns)
        return {name: name for name in self.columns}


class SyncConfig(_Strict):
    """One sync of one model: where its rows go and how they look."""

    name: str = "default"
    primary_key: list[str] = Field(min_length=1)
    topic: str | None = Field(default=None, min_length=1)
    topic_column: str | None = None
    events: list[Event] = Field(default_factory=lambda: list(ALL_EVENTS), min_length=1)
    initial_sync: Literal["backfill", "skip"] = "backfill"
    message: MessageConfig | None = None
    key_column: str | None = None
    partition_column: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    on_remove: Literal["message", "tombstone"] = "message"
    event_header: bool = True
    compare_columns: list[str] | None = None
    # Overrides the profile output's `delivery` for this sync.
    delivery: Literal["at_least_once", "exactly_once"] | None = None

    @field_validator("primary_key", mode="before")
    @classmethod
    def _key_as_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> SyncConfig:
        if (self.topic is None) == (self.topic_column is None):
            raise ValueError("kafka_sync needs exactly one of 'topic' or 'topic_column'")
        if self.on_remove == "tombstone" and not self.key_column:
            raise ValueError("on_remove: tombstone needs a key_column (a tombstone is a key)")
        if self.event_header and EVENT_HEADER in self.headers:
            raise ValueError(
                f"header '{EVENT_HEADER}' is the event header; rename yours or set"
                " event_header: false"
            )
        return self

    @property
    def destination(self) -> str:
        """The topic, or where the topic comes from, for messages and the summary."""
        return self.topic or f"topic_column {self.topic_column}"


def parse_syncs(model: str, raw: object, location: str | None = None) -> list[SyncConfig]:
    """Validate a model's `kafka_sync` block: a mapping, or a list of named mappings.

    Raises:
        ConfigError: naming the model, the offending key and what is allowed.

    """
    blocks = raw if isinstance(raw, list) else [raw]
    if not blocks:
        raise ConfigError("kafka_sync is an empty list", model=model, location=location)
    syncs = [_parse_one(model, block, location, many=len(blocks) > 1) for block in blocks]
    names = [sync.name for sync in syncs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(
            f"kafka_sync has several syncs named {quote_list(duplicates)}",
            model=model,
            location=location,
            hint="give each sync in the list its own `name`",
        )
    return syncs


def _parse_one(model: str, block: object, location: str | None, many: bool) -> SyncConfig:
    if not isinstance(block, dict):
        raise ConfigError(
            f"kafka_sync must be a mapping (or a list of mappings), got {type(block).__name__}",
            model=model,
            location=location,
        )
    if many and "name" not in block:
        raise ConfigError(
            "each sync in a kafka_sync list needs a `name`", model=model, location=location
        )
    try:
        return SyncConfig.model_validate(block)
    except ValidationError as exc:
        raise ConfigError(
            describe_validation_error(exc, SyncConfig, prefix="kafka_sync"),
            model=model,
            location=location,
        ) from None
