"""profiles.yml: the `kafka_sync` connection profile and the dbt profile of the warehouse.

profiles.yml is found the way dbt finds it, and `{{ env_var('NAME') }}` /
`{{ env_var('NAME', 'default') }}` are rendered the way dbt renders them, so that a
project keeps one profiles.yml and one habit for secrets.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from dbt_kafka_sync.config import describe_validation_error
from dbt_kafka_sync.connection import AuthConfig, TlsConfig
from dbt_kafka_sync.errors import ProfileError, quote_list

KAFKA_PROFILE = "kafka_sync"
DEFAULT_STATE_PATH = ".dbt_kafka_sync/state.duckdb"
DEFAULT_MEMORY_LIMIT = "1GB"
MEMORY_SIZE = r"(?i)^(\d+(\.\d+)?)\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$"  # as DuckDB reads sizes
_UNITS = {"B": 1, "KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}
_UNITS |= {"KIB": 2**10, "MIB": 2**20, "GIB": 2**30, "TIB": 2**40}
MIN_MEMORY_BYTES = 64 * 10**6


class KafkaTarget(BaseModel):
    """One output of the `kafka_sync` profile: how to reach the brokers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    bootstrap_servers: str = Field(min_length=1)
    client_id: str = "dbt-kafka-sync"
    auth: AuthConfig | None = None
    tls: TlsConfig | None = None
    producer: dict[str, str | int | float | bool] = Field(default_factory=dict)
    state_path: str = DEFAULT_STATE_PATH
    # DuckDB's memory for change detection; beyond it DuckDB spills to a temporary folder.
    memory_limit: str = DEFAULT_MEMORY_LIMIT

    @field_validator("memory_limit")
    @classmethod
    def _memory_size(cls, value: str) -> str:
        size = re.match(MEMORY_SIZE, value.strip())
        if not size:
            raise ValueError(f"{value!r} is not a size: write e.g. 1GB, 512MB or 2.5GiB")
        if float(size[1]) * _UNITS[size[3].upper()] < MIN_MEMORY_BYTES:
            raise ValueError(f"{value!r} is too little for DuckDB: give it 64MB at least")
        return value.strip()

    @field_validator("tls", mode="before")
    @classmethod
    def _tls_shorthand(cls, value: Any) -> Any:
        # `tls: true` is TLS with the system's trusted CAs (e.g. Confluent Cloud).
        if value is True:
            return {}
        return None if value is False else value

    @field_validator("producer")
    @classmethod
    def _no_secrets_in_producer(cls, value: dict[str, Any]) -> dict[str, Any]:
        secret = sorted(key for key in value if _is_secret_setting(key))
        if secret:
            raise ValueError(
                f"{', '.join(secret)} belong in the auth or tls block, where they are kept secret"
            )
        return value

    @field_validator("bootstrap_servers", mode="before")
    @classmethod
    def _join_list(cls, value: Any) -> Any:
        if isinstance(value, list):
            return ",".join(str(server).strip() for server in value)
        return value


def _is_secret_setting(key: str) -> bool:
    return any(word in key for word in ("password", "secret", "sasl.jaas", "key.pem"))


@dataclass(frozen=True)
class DbtProject:
    """The parts of dbt_project.yml this tool needs."""

    root: Path
    profile: str
    target_path: Path

    @property
    def manifest_path(self) -> Path:
        """Where `dbt parse` / `dbt run` wrote the manifest."""
        return self.target_path / "manifest.json"


def load_dbt_project(project_dir: Path) -> DbtProject:
    """Read dbt_project.yml for the profile name and the target path."""
    path = project_dir / "dbt_project.yml"
    if not path.is_file():
        raise ProfileError(
            f"no dbt_project.yml in {project_dir}",
            hint="run from the dbt project's folder or pass --project-dir",
        )
    data = _read_yaml(path)
    target_path = Path(os.environ.get("DBT_TARGET_PATH") or data.get("target-path") or "target")
    return DbtProject(
        root=project_dir,
        profile=str(data.get("profile") or ""),
        target_path=target_path if target_path.is_absolute() else project_dir / target_path,
    )


def find_profiles_file(profiles_dir: Path | None, project_dir: Path) -> Path:
    """Find profiles.yml in dbt's order: --profiles-dir, DBT_PROFILES_DIR, project dir, ~/.dbt."""
    env_dir = os.environ.get("DBT_PROFILES_DIR")
    candidates = [
        *([profiles_dir] if profiles_dir else []),
        *([Path(env_dir)] if env_dir else []),
        project_dir,
        Path.home() / ".dbt",
    ]
    for directory in candidates:
        if (directory / "profiles.yml").is_file():
            return directory / "profiles.yml"
    raise ProfileError(
        "no profiles.yml found (looked in "
        + ", ".join(str(directory) for directory in candidates)
        + ")",
        hint="pass --profiles-dir or set DBT_PROFILES_DIR",
    )


def load_profiles(path: Path) -> dict[str, Any]:
    """Read profiles.yml without rendering it: only the targets used get rendered."""
    return _read_yaml(path)


def kafka_target(
    profiles: dict[str, Any], target: str | None, path: Path
) -> tuple[str, KafkaTarget]:
    """Resolve and validate the `kafka_sync` profile's chosen output; return its name too."""
    name, output = _pick_output(profiles, KAFKA_PROFILE, target, path)
    where = f"{KAFKA_PROFILE}.outputs.{name}"
    rendered = render_env_vars(output, where)
    try:
        return name, KafkaTarget.model_validate(rendered)
    except ValidationError as exc:
        raise ProfileError(
            describe_validation_error(exc, KafkaTarget, prefix=where), location=str(path)
        ) from None


def dbt_output(profiles: dict[str, Any], profile: str, target: str | None, path: Path) -> Any:
    """Resolve the dbt profile's output, the connection dbt itself used for the warehouse."""
    name, output = _pick_output(profiles, profile, target, path)
    return render_env_vars(output, f"{profile}.outputs.{name}")


def _pick_output(
    profiles: dict[str, Any], profile: str, target: str | None, path: Path
) -> tuple[str, dict[str, Any]]:
    entry = profiles.get(profile)
    if not isinstance(entry, dict) or not isinstance(entry.get("outputs"), dict):
        raise ProfileError(
            f"profile '{profile}' with `outputs` not found",
            location=str(path),
            hint=_profile_hint(profile),
        )
    outputs: dict[str, Any] = entry["outputs"]
    name = target or render_env_vars(entry.get("target"), f"{profile}.target")
    if not name and len(outputs) == 1:
        name = next(iter(outputs))
    if name not in outputs or not isinstance(outputs[name], dict):
        raise ProfileError(
            f"profile '{profile}' has no output named '{name}'",
            location=str(path),
            hint=f"outputs are {quote_list(list(outputs))}; choose one with `target:` or --target",
        )
    return str(name), outputs[name]


def _profile_hint(profile: str) -> str:
    if profile == KAFKA_PROFILE:
        return (
            "add to profiles.yml:\n    kafka_sync:\n      target: dev\n      outputs:\n"
            "        dev:\n          bootstrap_servers: localhost:9092"
        )
    return "check `profile:` in dbt_project.yml and that `dbt debug` works"


def render_env_vars(value: Any, where: str) -> Any:
    """Render `{{ env_var(...) }}` in every string of a parsed YAML value, like dbt."""
    if isinstance(value, dict):
        return {key: render_env_vars(item, f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, list):
        return [render_env_vars(item, f"{where}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, str) and ("{{" in value or "{%" in value):
        return _render_string(value, where)
    return value


_MISSING = object()


def _render_string(text: str, where: str) -> str:
    from jinja2 import StrictUndefined, TemplateError
    from jinja2.sandbox import SandboxedEnvironment

    def env_var(name: str, default: object = _MISSING) -> str:
        if name in os.environ:
            return os.environ[name]
        if default is not _MISSING:
            return str(default)
        raise ProfileError(
            f"environment variable '{name}' is not set",
            location=f"profiles.yml, {where}",
            hint=f"export {name}=... or give a default: env_var('{name}', '...')",
        )

    environment = SandboxedEnvironment(undefined=StrictUndefined)
    environment.globals["env_var"] = env_var
    try:
        return environment.from_string(text).render()
    except ProfileError:
        raise
    except (TemplateError, ArithmeticError, TypeError, ValueError) as exc:
        # Neither the text nor its value is shown: a password may contain "{{".
        raise ProfileError(
            f"cannot render this value ({type(exc).__name__}: {getattr(exc, 'message', exc)})",
            location=f"profiles.yml, {where}",
            hint="only {{ env_var('NAME') }} and {{ env_var('NAME', 'default') }} are rendered",
        ) from None


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ProfileError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ProfileError(f"{path} is empty or not a mapping")
    return data
