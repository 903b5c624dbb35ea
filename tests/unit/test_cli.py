"""The command line's own behaviour: argument order, prompts, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from dbt_kafka_sync.cli import main
from dbt_kafka_sync.config.kafka import KafkaTarget
from dbt_kafka_sync.errors import ProfileError
from dbt_kafka_sync.kafka.producer import Publisher


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "dbt_project.yml").write_text(yaml.safe_dump({"name": "p", "profile": "p"}))
    profiles = {
        "p": {"target": "dev", "outputs": {"dev": {"type": "duckdb", "path": "wh.duckdb"}}},
        "kafka_sync": {"target": "dev", "outputs": {"dev": {"bootstrap_servers": "x:9092"}}},
    }
    (tmp_path / "profiles.yml").write_text(yaml.safe_dump(profiles))
    return tmp_path


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(["runs", "--log-level", "debug"], id="options-after"),
        pytest.param(["--log-level", "debug", "runs"], id="options-before"),
    ],
)
def test_options_before_or_after_the_command(project: Path, args: list[str]) -> None:
    result = CliRunner().invoke(main, [*args, "--project-dir", str(project)])
    assert result.exit_code == 0, result.output
    assert "no runs recorded yet" in result.output


def test_no_command_means_run(project: Path) -> None:
    result = CliRunner().invoke(main, ["--project-dir", str(project)])
    assert result.exit_code == 1
    assert "no dbt manifest at" in result.output


def test_reset_of_a_name_the_state_lacks_asks_nothing(project: Path) -> None:
    result = CliRunner().invoke(main, ["reset", "m", "--project-dir", str(project)])
    assert result.exit_code == 0
    assert result.output == "nothing to reset: no sync of 'm' in the state\n"


def test_show_unknown_run(project: Path) -> None:
    result = CliRunner().invoke(main, ["show", "nope", "--project-dir", str(project)])
    assert result.exit_code == 1
    assert "no run 'nope'" in result.output


def test_a_typo_in_producer_settings_is_a_profile_error() -> None:
    target = KafkaTarget(bootstrap_servers="127.0.0.1:1", producer={"lingr.ms": 5})
    with pytest.raises(ProfileError) as raised:
        Publisher(target, Path.cwd())
    assert 'No such configuration property: "lingr.ms"' in raised.value.render()


def test_debug_logging_is_this_tools_only(project: Path) -> None:
    import logging

    CliRunner().invoke(main, ["runs", "--log-level", "debug", "--project-dir", str(project)])
    assert logging.getLogger("dbt_kafka_sync").getEffectiveLevel() == logging.DEBUG
    # botocore logs signed requests (credentials included) at debug level.
    assert logging.getLogger("botocore").getEffectiveLevel() >= logging.WARNING
