"""profiles.yml: the `kafka_sync` connection profile and the dbt profile of the warehouse.

profiles.yml is found the way dbt finds it, and `{{ env_var('NAME') }}` /
`{{ env_var('NAME', 'default') }}` are rendered the way dbt renders them, so that a
project keeps one profiles.yml and one habit for secrets.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from dbt_kafka_sync.config.kafka import KafkaTarget
from dbt_kafka_sync.config.validation import describe_validation_error
from dbt_kafka_sync.dbt.project import read_yaml
from dbt_kafka_sync.errors import ProfileError, quote_list

KAFKA_PROFILE = "kafka_sync"


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
    return read_yaml(path)


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
    # dbt's filters for typed values, e.g. `port: "{{ env_var('PG_PORT') | as_number }}"`:
    # the value stays text here, and each setting converts it to its own type.
    for name in ("as_number", "as_bool", "as_text", "as_native"):
        environment.filters[name] = str
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
