from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from dbt_kafka_sync.config.kafka import WarehouseState
from dbt_kafka_sync.dbt.profiles import find_profiles_file, kafka_target, render_env_vars
from dbt_kafka_sync.errors import ProfileError

PATH = Path("profiles.yml")


def profiles(output: dict[str, object], target: str = "dev") -> dict[str, object]:
    return {"kafka_sync": {"target": target, "outputs": {target: output}}}


def test_env_var_with_and_without_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROKERS", "b1:9092")
    monkeypatch.delenv("UNSET_VAR", raising=False)
    rendered = render_env_vars(
        {"a": "{{ env_var('BROKERS') }}", "b": ["x-{{ env_var('UNSET_VAR', 'fallback') }}"]},
        "p",
    )
    assert rendered == {"a": "b1:9092", "b": ["x-fallback"]}


def test_missing_env_var_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KAFKA_PASSWORD", raising=False)
    with pytest.raises(ProfileError) as raised:
        render_env_vars({"password": "{{ env_var('KAFKA_PASSWORD') }}"}, "kafka_sync.outputs.dev")
    message = raised.value.render()
    assert "environment variable 'KAFKA_PASSWORD' is not set" in message
    assert "kafka_sync.outputs.dev.password" in message


def test_bootstrap_servers_as_list_and_client_id() -> None:
    _, target = kafka_target(
        profiles({"bootstrap_servers": ["b1:9092", " b2:9092"], "client_id": "me"}), None, PATH
    )
    assert target.bootstrap_servers == "b1:9092,b2:9092"
    assert target.client_id == "me"


def test_target_option_picks_output() -> None:
    data = {
        "kafka_sync": {
            "target": "dev",
            "outputs": {"dev": {"bootstrap_servers": "d:1"}, "prod": {"bootstrap_servers": "p:1"}},
        }
    }
    name, dev = kafka_target(data, None, PATH)
    assert (name, dev.bootstrap_servers) == ("dev", "d:1")
    assert kafka_target(data, "prod", PATH)[1].bootstrap_servers == "p:1"
    with pytest.raises(ProfileError, match="no output named 'qa'"):
        kafka_target(data, "qa", PATH)


def test_only_the_chosen_output_is_rendered(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROD_ONLY", raising=False)
    data = {
        "kafka_sync": {
            "target": "dev",
            "outputs": {
                "dev": {"bootstrap_servers": "d:1"},
                "prod": {"bootstrap_servers": "{{ env_var('PROD_ONLY') }}"},
            },
        }
    }
    assert kafka_target(data, None, PATH)[1].bootstrap_servers == "d:1"


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        pytest.param(
            {"bootstrap_server": "x"},
            "unknown key 'bootstrap_server' in kafka_sync.outputs.dev (did you mean "
            "'bootstrap_servers'?)",
            id="typo",
        ),
        pytest.param({}, "kafka_sync.outputs.dev.bootstrap_servers is required", id="missing"),
        pytest.param(
            {"bootstrap_servers": "x", "memory_limit": "lots"},
            "kafka_sync.outputs.dev.memory_limit: Value error, 'lots' is not a size",
            id="memory_limit",
        ),
        pytest.param(
            {"bootstrap_servers": "x", "memory_limit": "100KB"},
            "'100KB' is too little for DuckDB: give it 64MB at least",
            id="memory_limit_too_small",
        ),
        pytest.param(
            {"bootstrap_servers": "x", "state": {"type": "warehouse", "schem": "s"}},
            "unknown key 'schem' in kafka_sync.outputs.dev.state (did you mean 'schema'?);"
            " allowed keys: type, schema, lease_seconds",
            id="state_typo",
        ),
        pytest.param(
            {"bootstrap_servers": "x", "state": {"type": "cloud"}},
            "kafka_sync.outputs.dev.state: Input tag 'cloud' found using 'type' does not match"
            " any of the expected tags: 'local', 'warehouse'",
            id="state_type",
        ),
        pytest.param(
            {"bootstrap_servers": "x", "state": {"type": "warehouse", "lease_seconds": 1}},
            "kafka_sync.outputs.dev.state.lease_seconds: Input should be greater than or equal",
            id="state_lease",
        ),
    ],
)
def test_invalid_kafka_output(output: dict[str, object], expected: str) -> None:
    with pytest.raises(ProfileError) as raised:
        kafka_target(profiles(output), None, PATH)
    assert expected in raised.value.render()


def test_state_is_local_unless_the_warehouse_is_chosen() -> None:
    default = kafka_target(profiles({"bootstrap_servers": "x"}), None, PATH)[1]
    chosen = profiles({"bootstrap_servers": "x", "state": {"type": "warehouse", "schema": "s"}})
    warehouse = kafka_target(chosen, None, PATH)[1].state

    assert default.state.type == "local"
    assert isinstance(warehouse, WarehouseState)
    assert (warehouse.schema_name, warehouse.lease_seconds) == ("s", 120)


def test_memory_limit_defaults_to_one_gigabyte() -> None:
    default = kafka_target(profiles({"bootstrap_servers": "x"}), None, PATH)[1]
    chosen = profiles({"bootstrap_servers": "x", "memory_limit": " 2.5 GiB"})

    assert default.memory_limit == "1GB"
    assert kafka_target(chosen, None, PATH)[1].memory_limit == "2.5 GiB"


def test_missing_kafka_profile_shows_an_example() -> None:
    with pytest.raises(ProfileError) as raised:
        kafka_target({"other": {}}, None, PATH)
    assert "bootstrap_servers: localhost:9092" in raised.value.render()


def test_profiles_file_search_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    explicit, env_dir, project = (tmp_path / d for d in ("explicit", "env", "project"))
    for directory in (explicit, env_dir, project):
        directory.mkdir()
        (directory / "profiles.yml").write_text(yaml.safe_dump({"x": 1}))
    monkeypatch.setenv("DBT_PROFILES_DIR", str(env_dir))
    assert find_profiles_file(explicit, project) == explicit / "profiles.yml"
    assert find_profiles_file(None, project) == env_dir / "profiles.yml"
    monkeypatch.delenv("DBT_PROFILES_DIR")
    assert find_profiles_file(None, project) == project / "profiles.yml"
    monkeypatch.setenv("HOME", str(tmp_path / "nohome"))
    with pytest.raises(ProfileError, match=r"no profiles\.yml found"):
        find_profiles_file(None, tmp_path / "empty")


def test_a_value_that_does_not_render_is_not_shown() -> None:
    with pytest.raises(ProfileError) as raised:
        render_env_vars({"password": "p@{{ss%}w0rd"}, "kafka_sync.outputs.dev.auth")
    message = raised.value.render()
    assert "kafka_sync.outputs.dev.auth.password" in message
    assert "w0rd" not in message
