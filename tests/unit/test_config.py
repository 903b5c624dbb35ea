from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from dbt_kafka_sync.config.kafka import unsafe_producer_settings
from dbt_kafka_sync.config.sync import parse_syncs
from dbt_kafka_sync.dbt.profiles import kafka_target
from dbt_kafka_sync.errors import ConfigError, ProfileError
from dbt_kafka_sync.kafka.producer import producer_settings

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


def kafka_output(producer: dict[str, Any], allow_unsafe: bool | None = None) -> dict[str, Any]:
    output: dict[str, Any] = {"bootstrap_servers": "b:9092", "producer": producer}
    if allow_unsafe is not None:
        output["allow_unsafe_producer_settings"] = allow_unsafe
    return {"kafka_sync": {"target": "dev", "outputs": {"dev": output}}}


@pytest.mark.parametrize(
    ("producer", "expected"),
    [
        pytest.param({"acks": 1}, "acks: 1 (the broker confirms", id="acks-int"),
        pytest.param({"acks": "0"}, "acks: 0 (the broker confirms", id="acks-text"),
        pytest.param({"acks": "leader"}, "acks: leader", id="acks-other"),
        pytest.param({"request.required.acks": 1}, "request.required.acks: 1", id="acks-alias"),
        pytest.param({"topic.acks": 1}, "topic.acks: 1", id="acks-topic-prefix"),
        pytest.param(
            {"enable.idempotence": False},
            "enable.idempotence: False (retries may write a message twice",
            id="idempotence-bool",
        ),
        pytest.param(
            {"enable.idempotence": "false"}, "enable.idempotence: false", id="idempotence-text"
        ),
        pytest.param({"enable.idempotence": 0}, "enable.idempotence: 0", id="idempotence-int"),
        pytest.param(
            {"message.timeout.ms": 0},
            "message.timeout.ms: 0 (0 means a message never times out",
            id="timeout-int",
        ),
        pytest.param({"message.timeout.ms": "0"}, "message.timeout.ms: 0", id="timeout-text"),
        pytest.param({"delivery.timeout.ms": 0}, "delivery.timeout.ms: 0", id="timeout-alias"),
    ],
)
def test_producer_settings_that_break_the_guarantee_are_refused(
    producer: dict[str, Any], expected: str
) -> None:
    with pytest.raises(ProfileError) as raised:
        kafka_target(kafka_output(producer), None, Path("profiles.yml"))
    message = raised.value.render()
    assert "kafka_sync.outputs.dev.producer" in message
    assert expected in message
    assert "a row is never lost, and retries send it at most twice" in message
    assert "allow_unsafe_producer_settings: true" in message
    # The escape hatch lets it through.
    kafka_target(kafka_output(producer, allow_unsafe=True), None, Path("profiles.yml"))


@pytest.mark.parametrize(
    "producer",
    [
        pytest.param({"acks": "all"}, id="acks-all"),
        pytest.param({"acks": -1}, id="acks-minus-one-int"),
        pytest.param({"acks": "-1"}, id="acks-minus-one-text"),
        pytest.param({"request.required.acks": "ALL"}, id="acks-alias-all"),
        pytest.param({"enable.idempotence": True}, id="idempotence-on"),
        pytest.param({"enable.idempotence": "true"}, id="idempotence-on-text"),
        pytest.param({"message.timeout.ms": 30000}, id="timeout-set"),
        pytest.param({"delivery.timeout.ms": "300000"}, id="timeout-alias-set"),
        pytest.param({"linger.ms": 0}, id="other-zero"),
    ],
)
def test_producer_settings_that_keep_the_guarantee_pass(producer: dict[str, Any]) -> None:
    _, target = kafka_target(kafka_output(producer), None, Path("profiles.yml"))
    assert target.producer == producer
    assert unsafe_producer_settings(target.producer) == []


@pytest.mark.parametrize("allow_unsafe", [False, True], ids=["strict", "allow-unsafe"])
def test_a_transactional_id_is_always_refused(allow_unsafe: bool) -> None:
    output = kafka_output({"transactional.id": "mine"}, allow_unsafe)
    with pytest.raises(ProfileError) as raised:
        kafka_target(output, None, Path("profiles.yml"))
    assert (
        "transactional.id is set by dbt-kafka-sync in exactly-once delivery;"
        " not allowed in producer:" in raised.value.render()
    )


def test_allowed_unsafe_settings_warn_when_the_run_starts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    output = kafka_output({"acks": 1, "enable.idempotence": False}, allow_unsafe=True)
    _, target = kafka_target(output, None, Path("profiles.yml"))
    with caplog.at_level(logging.WARNING, logger="dbt_kafka_sync"):
        settings = producer_settings(target, Path.cwd())
    assert (settings["acks"], settings["enable.idempotence"]) == (1, False)
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "acks: 1" in warning and "enable.idempotence: False" in warning
    assert "a row is never lost, and retries send it at most twice does not hold" in warning


def test_the_default_producer_logs_no_warning(caplog: pytest.LogCaptureFixture) -> None:
    _, target = kafka_target(kafka_output({}, allow_unsafe=True), None, Path("profiles.yml"))
    with caplog.at_level(logging.WARNING, logger="dbt_kafka_sync"):
        producer_settings(target, Path.cwd())
    assert not caplog.records
