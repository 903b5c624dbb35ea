"""pydantic's validation errors turned into lines a data engineer can act on."""

from __future__ import annotations

import difflib
from typing import Any

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails


def describe_validation_error(exc: ValidationError, schema: type[BaseModel], prefix: str) -> str:
    """Turn pydantic's report into lines a data engineer can act on."""
    return "\n  ".join(_describe(error, schema, prefix) for error in exc.errors())


def _describe(error: ErrorDetails, schema: type[BaseModel], prefix: str) -> str:
    *parents, last = [str(part) for part in error["loc"] if not _is_type_tag(part)] or [""]
    path = ".".join(part for part in (prefix, *_model_at(schema, parents)[1], last) if part)
    if error["type"] == "extra_forbidden":
        return _describe_unknown_key(error, schema, prefix)
    if error["type"] == "missing":
        return f"{path} is required"
    return f"{path}: {error['msg']}"


def _describe_unknown_key(error: ErrorDetails, schema: type[BaseModel], prefix: str) -> str:
    *parents, key = [str(part) for part in error["loc"]]
    model, shown = _model_at(schema, parents)
    allowed = [field.alias or name for name, field in model.model_fields.items()]
    text = f"unknown key '{key}' in {'.'.join([prefix, *shown])}"
    close = difflib.get_close_matches(key, allowed, n=1)
    if close:
        text += f" (did you mean '{close[0]}'?)"
    return text + f"; allowed keys: {', '.join(allowed)}"


def _model_at(schema: type[BaseModel], parents: list[str]) -> tuple[type[BaseModel], list[str]]:
    """Walk nested config models along the error's path.

    Returns:
        The model there, and the path as the user wrote it (without the tags pydantic
        adds for a discriminated union's member, such as `warehouse` in `state`).
    """
    current: type[BaseModel] = schema
    shown: list[str] = []
    members: list[type[BaseModel]] = []
    for part in parents:
        tagged = [m for m in members if part in _type_tags(m)]
        if tagged:  # the tag of a discriminated union's member (e.g. state.warehouse)
            current, members = tagged[0], []
            continue
        shown.append(part)
        by_alias = {f.alias: f for f in current.model_fields.values() if f.alias}
        field = current.model_fields.get(part) or by_alias.get(part)
        members = _nested_models(field.annotation) if field else []
        if not members:
            break
        current = members[0]
    return current, shown


def _nested_models(annotation: Any) -> list[type[BaseModel]]:
    candidates = getattr(annotation, "__args__", None) or (annotation,)
    return [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]


def _type_tags(model: type[BaseModel]) -> tuple[Any, ...]:
    field = model.model_fields.get("type")
    return getattr(field.annotation, "__args__", ()) if field else ()


def _is_type_tag(part: object) -> bool:
    # pydantic inserts union member names such as "list[str]" into error locations.
    return isinstance(part, str) and ("[" in part or part in {"str", "int"})
