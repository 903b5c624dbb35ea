"""Where a project's state lives (the kafka_sync output's `state`), and opening it for a run."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from dbt_kafka_sync.config.kafka import (
    DEFAULT_MEMORY_LIMIT,
    STATE_SCHEMA_SUFFIX,
    LocalState,
    WarehouseState,
)
from dbt_kafka_sync.errors import ConfigError
from dbt_kafka_sync.session import duckdb_session
from dbt_kafka_sync.state.base import StateStore
from dbt_kafka_sync.state.last_good import keep_last_good
from dbt_kafka_sync.state.local import LocalStore
from dbt_kafka_sync.state.local_file import open_state
from dbt_kafka_sync.state.warehouse.store import WarehouseStore

if TYPE_CHECKING:
    from dbt_kafka_sync.sources.base import Source

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StateLocation:
    """Where the state is: a local file, or a schema of the warehouse.

    Attributes:
        config: the output's `state` block.
        path: the local state file (used when config is local).
        memory_limit: the run session's DuckDB memory.
    """

    config: LocalState | WarehouseState
    path: Path
    memory_limit: str = DEFAULT_MEMORY_LIMIT

    @property
    def in_warehouse(self) -> bool:
        """True when the state is kept in the warehouse."""
        return isinstance(self.config, WarehouseState)


def state_schema(config: WarehouseState, source: Source) -> str:
    """The warehouse state's schema: the configured one, else the dbt target's + a suffix."""
    return config.schema_name or source.target_schema + STATE_SCHEMA_SUFFIX


@contextmanager
def open_store(
    location: StateLocation,
    read_only: bool,
    source: Source | None = None,
    owner: str = "",
    check_snapshots: bool = True,
) -> Iterator[StateStore]:
    """A DuckDB session for the run with its state store; locked for `owner` unless read_only.

    The warehouse needs the source (connected here). Read-only, nothing is created,
    written or locked. A local file is read whole first (its snapshots too, unless
    check_snapshots is False); after a block that wrote to a file so checked without
    error, its last good copy is refreshed (unless the profile turned that off).
    """
    with duckdb_session(location.memory_limit) as session:
        config = location.config
        if not isinstance(config, WarehouseState):
            path = location.path
            attached = open_state(session, path, read_only, check_snapshots)
            store = LocalStore(session, source, path, attached)
            yield store
            # Known good: read whole at open (snapshots too), and every write went through.
            whole = check_snapshots and not store.file.failed
            if not read_only and whole and config.keep_last_good:
                keep_last_good(session, path)
            return
        if source is None:
            raise ConfigError("a warehouse state needs the dbt target's connection")
        source.open()
        schema = state_schema(config, source)
        warehouse = WarehouseStore(session, source.warehouse(session, read_only), schema, read_only)
        if not read_only:
            warehouse.lock(owner, config.lease_seconds)
        with _unlocking(warehouse):
            yield warehouse


@dataclass(frozen=True)
class BothStores:
    """The local file and the warehouse schema, on one session: copying a state between them."""

    local: LocalStore
    warehouse: WarehouseStore


@contextmanager
def open_both(location: StateLocation, source: Source, owner: str) -> Iterator[BothStores]:
    """Both stores, opened for writing; the warehouse's lease taken for `owner`.

    The warehouse schema and lease are the profile's when its state is in the warehouse.
    """
    config = location.config
    if not isinstance(config, WarehouseState):
        config = WarehouseState.model_validate({"type": "warehouse"})
    with duckdb_session(location.memory_limit) as session:
        attached = open_state(session, location.path, read_only=False)
        local = LocalStore(session, source, location.path, attached)
        source.open()
        warehouse = source.warehouse(session, read_only=False)
        store = WarehouseStore(session, warehouse, state_schema(config, source), read_only=False)
        store.lock(owner, config.lease_seconds)
        with _unlocking(store):
            yield BothStores(local, store)


@contextmanager
def _unlocking(store: WarehouseStore) -> Iterator[None]:
    """Give the lease up at the end; a failure to is logged (the lease expires anyway)."""
    try:
        yield
    finally:
        try:
            store.unlock()
        except Exception:  # an error already on its way matters more
            log.warning("could not release the lease on the warehouse state", exc_info=True)
