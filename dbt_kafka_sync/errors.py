"""The project's errors: each one says where the problem is and what to do about it."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

MASK = "**********"  # what a secret reads as, wherever it would have appeared


class SyncError(Exception):
    """A handled failure: bad configuration, bad data or an unreachable broker.

    The message formats itself from the parts that locate the problem, so every
    error reads the same way: ``model 'customers', column 'id', row key 42: ...``.
    The CLI turns these into exit code 1; anything else is a bug (exit code 2).
    """

    def __init__(
        self,
        message: str,
        *,
        model: str | None = None,
        column: str | None = None,
        row_key: object = None,
        location: str | None = None,
        hint: str | None = None,
    ) -> None:
        self.message = message
        self.model = model
        self.column = column
        self.row_key = row_key
        self.location = location
        self.hint = hint
        super().__init__(self.render())

    def render(self) -> str:
        """Return the full, human-readable message."""
        where = self._where()
        text = f"{where}: {self.message}" if where else self.message
        if self.location:
            text += f"\n  in {self.location}"
        if self.hint:
            text += f"\n  hint: {self.hint}"
        return text

    def _where(self) -> str:
        parts: list[str] = []
        if self.model:
            parts.append(f"model '{self.model}'")
        if self.column:
            parts.append(f"column '{self.column}'")
        if self.row_key is not None:
            parts.append(f"row key {self.row_key!r}")
        return ", ".join(parts)


class ConfigError(SyncError):
    """The `kafka_sync` block of a model is invalid."""


class ManifestError(SyncError):
    """The dbt manifest is missing or unreadable."""


class ProfileError(SyncError):
    """profiles.yml is missing, unreadable, or its kafka_sync profile is invalid."""


class WarehouseError(SyncError):
    """The model's materialized relation cannot be read."""


class KafkaError(SyncError):
    """The broker cannot be reached, or a topic is missing or unwritable."""


class StateError(SyncError):
    """The state store is locked, corrupt, or was written by an incompatible version."""


class DamagedStateError(StateError):
    """The state file is truncated or corrupted: the run stops and writes nothing to it."""


def quote_list(names: Sequence[str]) -> str:
    """Format names for an error message: 'a', 'b', 'c'."""
    return ", ".join(f"'{name}'" for name in names)


def describe_kafka_error(error: Any) -> str:
    """Return a Kafka client error as one line: what happened and its Kafka error code."""
    if hasattr(error, "str") and hasattr(error, "name"):
        return f"{error.str()} ({error.name()})"
    return str(error)


def masked(text: str, secrets: Iterable[str]) -> str:
    """The text with every secret in it replaced by MASK.

    The longest first (a URL before its path), so that no part of a secret is left showing.
    """
    for secret in sorted({secret for secret in secrets if secret}, key=len, reverse=True):
        text = text.replace(secret, MASK)
    return text
