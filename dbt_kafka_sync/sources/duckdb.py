"""dbt-duckdb: the warehouse files are attached to the session read-only, never copied.

A model built as a view is evaluated as dbt-duckdb evaluates it: with every database of
the profile attached, its extensions loaded and, when the profile has `settings`, on a
cursor that has them, into a table of the session (see duckdb_profile).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbt_kafka_sync.errors import WarehouseError, quote_list
from dbt_kafka_sync.session import RESERVED_DATABASES
from dbt_kafka_sync.sources.base import SourceColumn, Warehouse
from dbt_kafka_sync.sources.duckdb_profile import DuckDBProfile
from dbt_kafka_sync.sql import quote_identifier, quote_literal

if TYPE_CHECKING:
    import duckdb

    from dbt_kafka_sync.dbt.manifest import SyncedModel

VIEW_ROWS = "dks_view_"  # + hash of the model: a view's rows, evaluated with the settings


class DuckDBSource:
    """Reads models materialized by dbt-duckdb from the profile's database files."""

    def __init__(self, output: dict[str, Any], project_dir: Path) -> None:
        self.project_dir = project_dir
        self.target_schema = str(output.get("schema") or "main")
        main = self._file(str(output.get("path") or ":memory:"), "path")
        self.default_database = main.stem
        # dbt-duckdb can attach more databases (`attach:`); a model may live in any of them.
        self.files = {self.default_database: main}
        self.foreign: dict[str, str] = {}  # attached databases of another type: alias -> type
        for entry in output.get("attach") or []:
            path = self._file(str(entry.get("path", "")), "attach")
            alias = str(entry.get("alias") or path.stem)
            self.files[alias] = path
            if str(entry.get("type") or "duckdb").lower() != "duckdb":
                self.foreign[alias] = str(entry.get("type"))
        self.profile = DuckDBProfile.from_output(output)
        self.views: dict[str, str] = {}  # model unique_id -> the relation its view is read as

    def _file(self, raw_path: str, key: str) -> Path:
        if raw_path.startswith((":memory:", "md:", "motherduck:")) or "://" in raw_path:
            raise WarehouseError(
                f"the dbt-duckdb target's {key} is '{raw_path}', which this tool cannot read",
                hint="give the dbt-duckdb output a local file `path:` so models outlive `dbt run`",
            )
        path = Path(raw_path).expanduser()
        # dbt-duckdb opens a relative path from where dbt runs: the project folder.
        return path if path.is_absolute() else self.project_dir / path

    def columns(
        self, connection: duckdb.DuckDBPyConnection, model: SyncedModel
    ) -> list[SourceColumn]:
        """The model's columns with their DuckDB types."""
        types = describe_columns(connection, self.attached_relation(connection, model))
        return [SourceColumn(name, kind, kind) for name, kind in types.items()]

    def relation(
        self,
        connection: duckdb.DuckDBPyConnection,
        model: SyncedModel,
        columns: list[SourceColumn],
    ) -> str:
        """The attached relation itself: the diff reads the columns it needs from it."""
        return self.attached_relation(connection, model)

    def open(self) -> None:
        """Nothing to connect to: each file is attached when a model of it is read."""

    def close(self) -> None:
        """Nothing to release: the files are attached to the session, closed with it."""

    def warehouse(self, session: duckdb.DuckDBPyConnection, read_only: bool) -> Warehouse:
        """The profile's database file, attached (read-write unless read_only) for the state."""
        from dbt_kafka_sync.sources.duckdb_warehouse import DuckDBWarehouse

        database = self.default_database
        return DuckDBWarehouse(
            session, database, self.files[database], self.attached_relation, read_only
        )

    def attached_relation(self, connection: duckdb.DuckDBPyConnection, model: SyncedModel) -> str:
        """Return the model's relation as a qualified name, checking that it exists."""
        if model.unique_id in self.views:
            return self.views[model.unique_id]
        database = model.database or self.default_database
        self._attach(connection, database, model)
        name = ".".join(quote_identifier(p) for p in (database, model.schema, model.identifier))
        [(tables,), (views,)] = connection.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = ? AND schema_name = ?"
            " AND table_name = ? UNION ALL SELECT count(*) FROM duckdb_views()"
            " WHERE database_name = ? AND schema_name = ? AND view_name = ?",
            [database, model.schema, model.identifier] * 2,
        ).fetchall()
        if not tables and not views:
            raise WarehouseError(
                f"relation {name} not found in {self.files[database]}",
                model=model.name,
                hint="run `dbt run` so the model is materialized before syncing it",
            )
        return self._view(connection, model, name) if views else name

    def _view(self, connection: duckdb.DuckDBPyConnection, model: SyncedModel, view: str) -> str:
        """A view's rows as dbt-duckdb would see them; evaluated once per run."""
        if self.foreign:
            alias, kind = next(iter(self.foreign.items()))
            raise WarehouseError(
                f"the model is a view, and the dbt profile attaches '{alias}' (type {kind}),"
                " which this tool does not attach",
                model=model.name,
                hint="materialize the model as a table (materialized: table) to sync it",
            )
        for database in self.files:
            self._attach(connection, database, model)
        self.profile.load_extensions(connection, model)
        relation = view
        if self.profile.settings:
            digest = hashlib.sha256(model.unique_id.encode()).hexdigest()[:16]
            relation = f"memory.main.{quote_identifier(VIEW_ROWS + digest)}"
            cursor = self.profile.view_cursor(connection, model)
            try:
                cursor.execute(f"CREATE OR REPLACE TABLE {relation} AS SELECT * FROM {view}")
            finally:
                cursor.close()
        self.views[model.unique_id] = relation
        return relation

    def _attach(
        self, connection: duckdb.DuckDBPyConnection, database: str, model: SyncedModel
    ) -> None:
        """Attach a database file read-only under the name dbt gave it (views refer to it)."""
        if database.lower() in RESERVED_DATABASES:
            raise WarehouseError(
                f"the model's database is named '{database}', a name DuckDB or this tool uses",
                model=model.name,
                hint="rename the warehouse file (dbt-duckdb names the database after it)",
            )
        path = self.files.get(database)
        if path is None:
            raise WarehouseError(
                f"the model is in database '{database}', which the dbt profile neither opens"
                f" nor attaches (it has {quote_list(list(self.files))})",
                model=model.name,
            )
        if not path.is_file():
            raise WarehouseError(
                f"the warehouse file {path} does not exist",
                model=model.name,
                hint="run `dbt run` (or `dbt build`) first",
            )
        attached = connection.execute("SELECT database_name FROM duckdb_databases()").fetchall()
        if (database,) not in attached:
            connection.execute(
                f"ATTACH {quote_literal(str(path))} AS {quote_identifier(database)} (READ_ONLY)"
            )


def describe_columns(connection: duckdb.DuckDBPyConnection, relation: str) -> dict[str, str]:
    """Return column name -> DuckDB type for a relation of the session."""
    rows = connection.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
    return {str(row[0]): str(row[1]) for row in rows}
