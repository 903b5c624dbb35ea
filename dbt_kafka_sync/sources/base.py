"""The Source interface: what the rest of a run needs from a warehouse, and nothing more.

A source tells a model's columns with their warehouse types, and puts the columns a sync
needs into the run's local DuckDB session, where the diff runs. Everything after that
(diff, messages, snapshot, commit) is shared by every source.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    import duckdb

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
