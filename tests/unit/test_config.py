from __future__ import annotations

from typing import Any

import pytest

from dbt_kafka_sync.config.sync import parse_syncs
from dbt_kafka_sync.errors import ConfigError

VALID = {"primary_key": "id", "topic": "customers"}


def test_minimal_block_gets_safe_defaults() -> None:
    [sync] = parse_syncs("customers", VALID)
    assert sync.name == "default"
    assert sync.primary_key == ["id"]
    assert sync.events == ["added", "changed", "removed"]
    assert sync.initial_sync == "backfill"
    assert sync.on_remove == "message"
    assert sync.message is None


def test_list_of_named_syncs() -> None:
    syncs = parse_syncs(
        "customers",
        [
            {**VALID, "name": "all", "primary_key": ["tenant", "id"]},
            {**VALID, "name": "removals", "topic": "gone", "events": ["removed"]},
        ],
    )
    assert [s.name for s in syncs] == ["all", "removals"]
    assert syncs[0].primary_key == ["tenant", "id"]


def test_columns_mapping_and_list() -> None:
    [mapped] = parse_syncs("m", {**VALID, "message": {"columns": {"first": "first_name"}}})
    [listed] = parse_syncs("m", {**VALID, "message": {"columns": ["a", "b"]}})
    assert mapped.message is not None and mapped.message.field_to_column() == {
        "first": "first_name"
    }
    assert listed.message is not None and listed.message.field_to_column() == {"a": "a", "b": "b"}


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        pytest.param(
            {"primary_keys": "id", "topic": "t"},
            ["unknown key 'primary_keys'", "did you mean 'primary_key'?", "allowed keys: name,"],
            id="typo-top-level",
        ),
        pytest.param(
            {**VALID, "message": {"colums": ["a"]}},
            ["unknown key 'colums' in kafka_sync.message", "did you mean 'columns'?"],
            id="typo-nested",
        ),
        pytest.param({"topic": "t"}, ["kafka_sync.primary_key is required"], id="missing-key"),
        pytest.param(
            {"primary_key": "id"}, ["exactly one of 'topic' or 'topic_column'"], id="no-topic"
        ),
        pytest.param(
            {**VALID, "topic_column": "t"},
            ["exactly one of 'topic' or 'topic_column'"],
            id="two-topics",
        ),
        pytest.param(
            {**VALID, "headers": {"dbt-kafka-sync-event": "c"}},
            ["is the event header"],
            id="event-header-clash",
        ),
        pytest.param(
            {**VALID, "message": {"template": "{}", "template_file": "t.liquid"}},
            ["got 'template', 'template_file'"],
            id="two-templates",
        ),
        pytest.param(
            {**VALID, "events": ["added", "deleted"]}, ["kafka_sync.events.1"], id="bad-event"
        ),
        pytest.param(
            {**VALID, "on_remove": "tombstone"}, ["tombstone needs a key_column"], id="tombstone"
        ),
        pytest.param(
            {**VALID, "message": {"columns": ["a"], "column": "b"}},
            ["exactly one of 'template', 'template_file', 'column', 'columns'", "got 'column',"],
            id="two-modes",
        ),
        pytest.param({**VALID, "message": {}}, ["exactly one of"], id="no-mode"),
        pytest.param(["not a mapping"], ["must be a mapping"], id="not-mapping"),
        pytest.param([VALID, VALID], ["needs a `name`"], id="list-without-names"),
        pytest.param(
            [{**VALID, "name": "a"}, {**VALID, "name": "a"}],
            ["several syncs named 'a'"],
            id="duplicate-names",
        ),
    ],
)
def test_invalid_blocks_name_model_and_problem(block: Any, expected: list[str]) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_syncs("customers", block, "models/schema.yml")
    message = raised.value.render()
    assert message.startswith("model 'customers': ")
    assert "models/schema.yml" in message
    for fragment in expected:
        assert fragment in message
