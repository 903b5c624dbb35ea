"""The Source interface: what the rest of a run needs from a warehouse, and nothing more.

A source tells a model's columns with their warehouse types, and puts the columns a sync
needs into the run's local DuckDB session, where the diff runs. Everything after that
(diff, messages, snapshot, commit) is shared by every source.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from dbt_kafka_sync.sql import SqlRunner

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from dbt_kafka_sync.dbt.manifest import SyncedModel

# A type no DuckDB model has, for numbers wider than DuckDB's DECIMAL (PostgreSQL's numeric
# without a precision): their exact text, which messages write as a JSON number with those
# digits and templates see as a Decimal.
EXACT_NUMERIC = 'UNION("numeric" VARCHAR)'
EXACT_NUMERIC_MEMBER = "numeric"


def is_exact_numeric(duckdb_type: str) -> bool:
    """Tell whether a session column holds exact numeric text (see EXACT_NUMERIC)."""
    return duckdb_type.replace(" ", "").upper() == EXACT_NUMERIC.replace(" ", "").upper()


@dataclass(frozen=True)
class SourceColumn:
    """A column of a model as the warehouse has it and as the diff session will hold it.

    Attributes:
        name: the column's name, exactly as the warehouse spells it.
        warehouse_type: the type as the warehouse names it (for messages to the user).
        duckdb_type: the DuckDB type the column has in the diff session.
    """

    name: str
    warehouse_type: str
    duckdb_type: str


class Source(Protocol):
    """A warehouse that models are read from."""

    target_schema: str  # the dbt output's schema, where dbt builds models by default

    def open(self) -> None:
        """Connect and authenticate, before any sync: an unreachable warehouse changes nothing.

        Raises:
            WarehouseError: saying why, with no secret in it.
        """
        ...

    def columns(
        self, connection: duckdb.DuckDBPyConnection, model: SyncedModel
    ) -> list[SourceColumn]:
        """The model's columns in the warehouse's order.

        Raises:
            WarehouseError: when the relation does not exist or cannot be described.
            ConfigError: when a column has a type this source cannot read faithfully.
        """
        ...

    def relation(
        self,
        connection: duckdb.DuckDBPyConnection,
        model: SyncedModel,
        columns: list[SourceColumn],
    ) -> str:
        """A relation of the diff session holding these columns of every row of the model."""
        ...

    def close(self) -> None:
        """Release the warehouse connection, if the source holds one."""
        ...

    def warehouse(self, session: duckdb.DuckDBPyConnection, read_only: bool) -> Warehouse:
        """A session inside the warehouse for the state kept there (after open()).

        Raises:
            ConfigError: when this warehouse cannot keep the state.
        """
        ...


class Warehouse(Protocol):
    """A session inside the warehouse, for a state and a diff kept there (state type warehouse).

    Statements take positional parameters ($1, $2, ...). The SQL the state writes keeps
    to what every supported warehouse runs; what differs (the row hash, a value's
    canonical text, how rows travel) is asked of this object, one class per warehouse.
    """

    hash_version: str  # the row hash's name and version, recorded with each snapshot
    hash_type: str  # the SQL type of the row hash
    lock_clause: str  # appended to a SELECT to lock the rows read until commit ("" if none)
    # True when opening the warehouse for writing already excludes every other process (a
    # DuckDB file): a lease found then was left by a run that died, whatever its expiry.
    exclusive: bool

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        """Run one statement."""
        ...

    def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement for each row of parameters, in one batch."""
        ...

    def records(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        """Run one query; its rows as column name -> value."""
        ...

    def schema(self, name: str) -> str:
        """The qualified, quoted name of a schema of the warehouse."""
        ...

    def schema_exists(self, name: str) -> bool:
        """Tell whether the schema exists."""
        ...

    def create_schema(self, name: str) -> None:
        """Create the schema.

        Raises:
            StateError: naming the privilege that is missing.
        """
        ...

    def relation(self, model: SyncedModel) -> str:
        """The model's relation in the warehouse, checked to exist."""
        ...

    def column_types(self, table: str) -> dict[str, str]:
        """A table's columns and their types, named as SourceColumn.warehouse_type names them."""
        ...

    def temp_table(self, name: str) -> str:
        """The qualified name of a temp table of this session (never a real table)."""
        ...

    def create_temp(self, name: str, query: str) -> None:
        """Create (or replace) a temp table of this session from a query."""
        ...

    def text(self, column: SourceColumn, alias: str) -> str:
        """SQL: the canonical text of a column of `alias` (NULL stays NULL)."""
        ...

    def hash_of_text(self, text: str) -> str:
        """SQL: the row hash of a canonical text."""
        ...

    def convert(self, expression: str, column: SourceColumn) -> str:
        """SQL: a value of another type as the column's type; NULL where it does not convert."""
        ...

    def row_json(self, alias: str) -> str:
        """SQL: a row of `alias` as JSON text, to show in errors."""
        ...

    @contextmanager
    def consistent_read(self, model: SyncedModel) -> Iterator[None]:
        """A transaction in which every statement sees the model as it was at its start."""
        ...

    def fetch(
        self,
        session: duckdb.DuckDBPyConnection,
        model: SyncedModel,
        query: str,
        columns: list[SourceColumn],
        passthrough: list[str],
        into: str,
    ) -> None:
        """Copy a query's rows into a temp table of the session, as Arrow.

        `columns` are read the way the source reads the model's columns; `passthrough`
        columns (seq, event, hash: numbers and text) come as they are.
        """
        ...

    def upload(
        self, session: duckdb.DuckDBPyConnection, table: pa.Table | pa.RecordBatchReader, name: str
    ) -> None:
        """Create a temp table of the warehouse session holding an Arrow table or stream.

        A stream may come from `session` itself: it is read whole before `session` runs
        anything else.
        """
        ...

    def second_connection(self) -> SqlRunner:
        """Another connection, for work beside the run's own (the lease's renewal)."""
        ...

    def close_runner(self, runner: SqlRunner) -> None:
        """Close a connection second_connection() opened."""
        ...
