"""The dbt-postgres profile output as libpq connection settings."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from dbt_kafka_sync.errors import WarehouseError, quote_list


@dataclass(frozen=True)
class PostgresSettings:
    """The dbt-postgres profile output's connection settings (dbt's names and defaults)."""

    host: str
    user: str
    dbname: str
    password: str | None = None  # none: libpq's own sources (.pgpass, PGPASSWORD, trust)
    port: int = 5432
    sslmode: str | None = None
    sslcert: str | None = None
    sslkey: str | None = None
    sslrootcert: str | None = None
    connect_timeout: int = 10
    role: str | None = None
    search_path: str | None = None

    @classmethod
    def from_output(cls, output: dict[str, Any]) -> PostgresSettings:
        """Read the settings from a rendered dbt output, as dbt-postgres does.

        Raises:
            WarehouseError: naming a missing or malformed setting (never showing a value).
        """
        required = {
            "host": output.get("host"),
            "user": output.get("user"),
            "dbname": output.get("dbname", output.get("database")),
        }
        missing = [name for name, value in required.items() if value in (None, "")]
        if missing:
            raise WarehouseError(
                f"the dbt target (type postgres) lacks {quote_list(missing)}",
                hint="dbt-postgres reads host, user, password and dbname from the output",
            )
        password = output.get("password", output.get("pass"))
        optional = ("sslmode", "sslcert", "sslkey", "sslrootcert", "role", "search_path")
        return cls(
            **{name: str(value) for name, value in required.items()},
            password=str(password) if password not in (None, "") else None,
            port=_whole_number(output, "port", 5432),
            connect_timeout=_whole_number(output, "connect_timeout", 10),
            **{name: str(output[name]) for name in optional if output.get(name) is not None},
        )

    def uri(self, project_dir: Path) -> str:
        """The libpq URI, password included: hand it to the driver, never to a log.

        Every setting is a query parameter, so that socket folders and IPv6 hosts need
        no special spelling.
        """
        params: dict[str, str] = {
            "host": self.host,
            "port": str(self.port),
            "user": self.user,
            "dbname": self.dbname,
            "connect_timeout": str(self.connect_timeout),
            "application_name": "dbt-kafka-sync",
        }
        if self.password is not None:
            params["password"] = self.password
        if self.sslmode:
            params["sslmode"] = self.sslmode
        for name in ("sslcert", "sslkey", "sslrootcert"):
            value = getattr(self, name)
            if value == "system" and name == "sslrootcert":  # libpq: the system's CAs
                params[name] = value
            elif value:  # relative to the dbt project, like every other path of the profile
                path = Path(value).expanduser()
                params[name] = str(path if path.is_absolute() else project_dir / path)
        if self.search_path:  # as dbt-postgres sets it: spaces escaped for libpq's options
            escaped = self.search_path.replace("\\", "\\\\").replace(" ", "\\ ")
            params["options"] = f"-c search_path={escaped}"
        return "postgresql://?" + urlencode(params, quote_via=quote)

    def describe(self) -> str:
        """Where the source is, for messages: no credentials."""
        return f"PostgreSQL at {self.host}:{self.port}, database {self.dbname}"


def _whole_number(output: dict[str, Any], key: str, default: int) -> int:
    value = output.get(key)
    if value in (None, ""):
        return default
    try:
        return int(str(value))
    except ValueError:
        raise WarehouseError(
            f"the dbt target's `{key}` is not a whole number",
            hint=f"write e.g. {key}: {default}",
        ) from None
