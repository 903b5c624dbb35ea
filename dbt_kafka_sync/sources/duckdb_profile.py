"""What a dbt-duckdb profile sets up in its connections, for models built as views.

A table is read as it is stored. A view is evaluated again when it is read, so it must
see what dbt-duckdb gave it: the profile's `extensions` (loaded into the run's session)
and `settings` (set on a cursor of the session, where the view is evaluated). The
databases under `attach:` are attached by the source. What cannot be reproduced is
refused, naming the model and the setting.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dbt_kafka_sync.errors import WarehouseError
from dbt_kafka_sync.sql import quote_literal

if TYPE_CHECKING:
    import duckdb

    from dbt_kafka_sync.dbt.manifest import SyncedModel

# Settings of the whole DuckDB instance that change no query's result: the run's own apply.
RESOURCE_SETTINGS = frozenset(
    {
        "memory_limit",
        "max_memory",
        "threads",
        "worker_threads",
        "external_threads",
        "temp_directory",
        "max_temp_directory_size",
        "enable_progress_bar",
        "enable_progress_bar_print",
    }
)
_AS_A_TABLE = "materialize the model as a table (materialized: table) to sync it"


@dataclass(frozen=True)
class DuckDBProfile:
    """The `extensions` and `settings` of a dbt-duckdb profile output.

    Attributes:
        extensions: names, or `{name, repo}` mappings, as dbt-duckdb takes them.
        settings: DuckDB setting -> value, as dbt-duckdb sets them on each cursor.
    """

    extensions: tuple[str | dict[str, str], ...] = ()
    settings: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_output(cls, output: dict[str, Any]) -> DuckDBProfile:
        """Read the fields from a rendered dbt-duckdb output."""
        return cls(tuple(output.get("extensions") or ()), dict(output.get("settings") or {}))

    def load_extensions(self, connection: duckdb.DuckDBPyConnection, model: SyncedModel) -> None:
        """Install (a no-op once dbt did) and load the extensions, as dbt-duckdb does."""
        import duckdb

        for extension in self.extensions:
            name = extension if isinstance(extension, str) else str(extension.get("name"))
            try:
                if isinstance(extension, str):
                    connection.install_extension(name)
                else:
                    repo = str(extension.get("repo"))
                    connection.execute(f"INSTALL {name} FROM {quote_literal(repo)}")
                connection.load_extension(name)
            except duckdb.Error as exc:
                raise WarehouseError(
                    f"the model is a view, and the dbt profile's extension '{name}' cannot be"
                    f" loaded to evaluate it: {exc}",
                    model=model.name,
                    hint=_AS_A_TABLE,
                ) from None

    def view_cursor(
        self, connection: duckdb.DuckDBPyConnection, model: SyncedModel
    ) -> duckdb.DuckDBPyConnection:
        """A cursor of the session with the profile's settings, for this cursor only.

        Raises:
            WarehouseError: for a setting that would change the whole session (and so
                the run's own queries) and may change the view's result.
        """
        import duckdb

        cursor = connection.cursor()
        for name, value in self.settings.items():
            if name.lower() in RESOURCE_SETTINGS:
                continue
            try:
                cursor.execute(f"SET SESSION {name} = {quote_literal(str(value))}")
            except duckdb.Error as exc:
                cursor.close()
                raise WarehouseError(
                    f"the model is a view, and the dbt profile's setting {name} = {value!r}"
                    f" cannot be given to it alone ({exc}): evaluated without it, the view"
                    " could give other rows than in dbt",
                    model=model.name,
                    hint=_AS_A_TABLE,
                ) from None
        return cursor
