"""dbt-core's own node selector over the project's manifest: the same choice `dbt run` makes.

dbt-core is imported here only, when a selector needs it (the import takes over a second).
"""

from __future__ import annotations

import logging
import os
from argparse import Namespace
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dbt_kafka_sync.dbt.project import DbtProject
from dbt_kafka_sync.errors import ConfigError, ManifestError

if TYPE_CHECKING:
    from dbt.graph.selector import NodeSelector
    from dbt_common.events.base_types import EventMsg

log = logging.getLogger(__name__)


class DbtSelector:
    """dbt's graph of the manifest's nodes, ready to answer selections."""

    def __init__(self, project: DbtProject, state_dir: Path | None) -> None:
        from dbt.flags import set_from_args
        from dbt_common.events.event_manager_client import (
            add_callback_to_manager,
            cleanup_event_logger,
        )

        set_from_args(Namespace(), None)  # dbt's default flags (e.g. indirect selection)
        cleanup_event_logger()  # dbt's events would print on stdout: its warnings go to our log
        add_callback_to_manager(_log_warning)
        self._root = project.root
        with _dbt_errors("cannot read the dbt manifest for --select"):
            self._selector = _node_selector(project.manifest_path, state_dir)

    def select(self, words: list[str]) -> set[str]:
        """The unique_ids of the nodes `dbt run --select WORDS` would choose (a union)."""
        from dbt.graph.cli import parse_difference

        # path: selectors are relative to the project, as dbt runs in it.
        with _dbt_errors(f"invalid selector {' '.join(words)!r}"), _working_dir(self._root):
            spec = parse_difference(words, None)
            return {str(unique_id) for unique_id in self._selector.get_selected(spec)}


def _node_selector(manifest_path: Path, state_dir: Path | None) -> NodeSelector:
    from dbt.artifacts.schemas.manifest import WritableManifest
    from dbt.compilation import Linker
    from dbt.contracts.graph.manifest import Manifest
    from dbt.graph.graph import Graph
    from dbt.graph.selector import NodeSelector

    manifest = Manifest.from_writable_manifest(
        WritableManifest.read_and_check_versions(str(manifest_path))
    )
    linker = Linker()
    linker.link_graph(manifest)
    return NodeSelector(Graph(linker.graph), manifest, _previous_state(manifest_path, state_dir))


def _log_warning(event: EventMsg) -> None:
    # e.g. "The selection criterion 'x' does not match any enabled nodes"
    if event.info.level in ("warn", "error"):
        log.warning("dbt: %s", getattr(event.info, "msg", event.info.name))


def _previous_state(manifest_path: Path, state_dir: Path | None) -> Any:
    if state_dir is None:
        return None
    if not (state_dir / "manifest.json").is_file():
        raise ConfigError(
            f"--state {state_dir} holds no manifest.json",
            hint="point --state at the target folder of the dbt run to compare with"
            " (e.g. a copy of the production run's target/)",
        )
    from dbt.contracts.state import PreviousState

    return PreviousState(state_dir.resolve(), manifest_path.parent, state_dir.resolve())


@contextmanager
def _working_dir(path: Path) -> Iterator[None]:
    before = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


@contextmanager
def _dbt_errors(doing: str) -> Iterator[None]:
    """Raise dbt's errors (a bad selector, an unknown method) as this tool's, in dbt's words."""
    from dbt_common.exceptions import DbtBaseException

    try:
        yield
    # ValueError and KeyError: a manifest (or --state's) that is not valid JSON or lacks a field.
    except (DbtBaseException, ValueError, KeyError) as exc:
        message = str(getattr(exc, "msg", "") or exc).strip()
        error = ManifestError if "manifest" in doing else ConfigError
        raise error(f"{doing}: {message}", hint=_hint(message)) from None


def _hint(message: str) -> str | None:
    from dbt.graph.selector_methods import MethodName

    if "method name" in message:
        return "selector methods are: " + ", ".join(m.value for m in MethodName)
    if "comparison manifest" in message:
        return "state: selectors need --state PATH, the folder of the manifest.json to compare with"
    return None
