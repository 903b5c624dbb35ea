"""The dbt-duckdb warehouse: its database file is attached read-only, never copied."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbt_kafka_sync.errors import WarehouseError
from dbt_kafka_sync.sql import quote_identifier, quote_literal

if TYPE_CHECKING:
    import duckdb

    from dbt_kafka_sync.manifest import SyncedModel


class DuckDBWarehouse:
    """Reads models materialized by dbt-duckdb from the profile's database file."""

    def __init__(self, output: dict[str, Any], project_dir: Path) -> None:
        if output.get("type") != "duckdb":
            raise WarehouseError(
                f"the dbt target is of type '{output.get('type')}'; only duckdb is supported yet"
            )
        raw_path = str(output.get("path") or ":memory:")
        if raw_path.startswith(":memory:") or raw_path.startswith("md:"):
            raise WarehouseError(
                f"the dbt-duckdb target's path is '{raw_path}', which another process cannot read",
                hint="give the dbt-duckdb output a file `path:` so the models outlive `dbt run`",
            )
        path = Path(raw_path).expanduser()
        # dbt-duckdb opens a relative path from where dbt runs: the project folder.
        self.path = path if path.is_absolute() else project_dir / path
        self.default_database = path.stem

    def attach(self, connection: duckdb.DuckDBPyConnection, database: str) -> None:
        """Attach the warehouse file read-only under the name dbt gave its database."""
        if not self.path.is_file():
            raise WarehouseError(
                f"the warehouse file {self.path} does not exist",
                hint="run `dbt run` (or `dbt build`) first",
            )
        attached = {
            row[0]
            for row in connection.execute("SELECT database_name FROM duckdb_databases()").fetchall()
        }
        if database in attached:
            return
        connection.execute(
            f"ATTACH {quote_literal(str(self.path))} AS {quote_identifier(database)} (READ_ONLY)"
        )

    def relation(self, connection: duckdb.DuckDBPyConnection, model: SyncedModel) -> str:
        """Return the model's relation as a qualified name, checking that it exists."""
        database = model.database or self.default_database
        self.attach(connection, database)
        name = ".".join(quote_identifier(p) for p in (database, model.schema, model.identifier))
        found = connection.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND schema_name = ?"
            " AND table_name = ? UNION ALL SELECT count(*) FROM duckdb_views()"
            " WHERE database_name = ? AND schema_name = ? AND view_name = ?",
            [database, model.schema, model.identifier] * 2,
        ).fetchall()
        if not any(count for (count,) in found):
            raise WarehouseError(
                f"relation {name} not found in {self.path}",
                model=model.name,
                hint="run `dbt run` so the model is materialized before syncing it",
            )
        return name
