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
    path = ".".join(str(part) for part in (prefix, *error["loc"]) if not _is_type_tag(part))
    if error["type"] == "extra_forbidden":
        return _describe_unknown_key(error, schema, prefix)
    if error["type"] == "missing":
        return f"{path} is required"
    return f"{path}: {error['msg']}"


def _describe_unknown_key(error: ErrorDetails, schema: type[BaseModel], prefix: str) -> str:
    *parents, key = [str(part) for part in error["loc"]]
    allowed = _allowed_keys(schema, parents)
    text = f"unknown key '{key}' in {'.'.join([prefix, *parents])}"
    close = difflib.get_close_matches(key, allowed, n=1)
    if close:
        text += f" (did you mean '{close[0]}'?)"
    return text + f"; allowed keys: {', '.join(allowed)}"


def _allowed_keys(schema: type[BaseModel], parents: list[str]) -> list[str]:
    """Walk nested config models along the error's path to list the keys allowed there."""
    current: type[BaseModel] = schema
    for part in parents:
        field = current.model_fields.get(part)
        nested = _nested_model(field.annotation) if field else None
        if nested is None:
            break
        current = nested
    return list(current.model_fields)


def _nested_model(annotation: Any) -> type[BaseModel] | None:
    candidates = getattr(annotation, "__args__", None) or (annotation,)
    for candidate in candidates:
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _is_type_tag(part: object) -> bool:
    # pydantic inserts union member names such as "list[str]" into error locations.
    return isinstance(part, str) and ("[" in part or part in {"str", "int"})
