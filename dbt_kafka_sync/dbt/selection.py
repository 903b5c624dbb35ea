"""--select / --exclude / --state: dbt's node selection, narrowed to the synced models.

Model names and unique_ids of synced models are looked up directly: importing dbt-core
costs more than a second, and most runs select nothing or a few models by name. Anything
else (methods, graph operators, unions, intersections, folder or package names) goes
through dbt's own selector (see node_selector).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dbt_kafka_sync.dbt.manifest import SyncedModel
from dbt_kafka_sync.dbt.node_selector import DbtSelector
from dbt_kafka_sync.dbt.project import DbtProject
from dbt_kafka_sync.errors import ConfigError, quote_list

log = logging.getLogger(__name__)

# A selector without a method or graph operator: dbt reads it as a name, folder or package.
_PLAIN = re.compile(r"[\w.-]+")


@dataclass(frozen=True)
class Selection:
    """What --select, --exclude and --state asked for, as the user wrote it."""

    select: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    state_dir: Path | None = None  # the folder of the manifest.json state:modified compares with

    def describe(self) -> str:
        """The selection as it would be typed, for messages."""
        parts = [f"--select {quote_list(_words(self.select))}"] if self.select else []
        if self.exclude:
            parts.append(f"--exclude {quote_list(_words(self.exclude))}")
        return " ".join(parts)


def select_models(
    models: list[SyncedModel], selection: Selection, project: DbtProject
) -> list[SyncedModel]:
    """The synced models the selection chooses; all of them when it chooses nothing in particular.

    A plain name that selects no synced model is an error (a typo must not sync nothing
    quietly); a method or graph selector that selects none is not (`state:modified` often
    does), and is said so.
    """
    select, exclude = _words(selection.select), _words(selection.exclude)
    if not select and not exclude:
        return models
    if all(_named_model(models, word) for word in select + exclude):
        return [m for m in models if _picked(m, select, exclude)]
    selector = _Matcher(DbtSelector(project, selection.state_dir), models)
    unknown = [word for word in select if _PLAIN.fullmatch(word) and not selector.synced([word])]
    if unknown:
        raise ConfigError(
            f"--select names no synced model: {quote_list(unknown)}",
            hint="synced models are: " + (quote_list([m.name for m in models]) or "none"),
        )
    included = selector.synced(select) if select else {m.unique_id for m in models}
    chosen = included - selector.synced(exclude)
    found = [m for m in models if m.unique_id in chosen]
    if not found:
        log.warning(
            "nothing is selected: %s matches no model with a kafka_sync block", selection.describe()
        )
    return found


class _Matcher:
    """dbt's selector, plus the synced models' unique_ids (dbt reads those as paths of names)."""

    def __init__(self, selector: DbtSelector, models: list[SyncedModel]) -> None:
        self.selector = selector
        self.ids = {m.unique_id for m in models}

    def synced(self, words: list[str]) -> set[str]:
        """The unique_ids of the synced models the words select (a union)."""
        direct = {word for word in words if word in self.ids}
        rest = [word for word in words if word not in self.ids]
        return (direct | self.selector.select(rest)) & self.ids if rest else direct


def _words(values: Iterable[str]) -> list[str]:
    # dbt reads `-s "a b" -s c` as three selectors: a union.
    return [word for value in values for word in value.split()]


def _named_model(models: list[SyncedModel], word: str) -> bool:
    return any(word in (m.name, m.unique_id) for m in models)


def _picked(model: SyncedModel, select: list[str], exclude: list[str]) -> bool:
    names = (model.name, model.unique_id)
    chosen = not select or any(word in names for word in select)
    return chosen and not any(word in names for word in exclude)
