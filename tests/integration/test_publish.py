"""dbt build, then dbt-kafka-sync, then read the messages back from the real broker."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import pytest
from harness import Kafka, Project, on_both_engines


def values(kafka: Kafka, topic: str) -> dict[str | None, Any]:
    """Messages of a topic by key, values parsed keeping decimals exact."""
    return {
        m.key: json.loads(m.value, parse_float=Decimal) if m.value else None
        for m in kafka.consume_all(topic)
    }


@on_both_engines
def test_every_row_published_with_exact_values(project: Project, kafka: Kafka) -> None:
    prefix = project.build(kafka)

    result = project.sync()

    assert result.returncode == 0, result.stderr
    assert (
        f"OK   customers -> {prefix}customers: 5 added, 0 changed, 0 removed;"
        " 5 delivered, 0 failed" in result.stdout
    )
    assert f"OK   orders -> {prefix}orders: 4 added" in result.stdout
    customers = values(kafka, prefix + "customers")
    assert customers == {
        "1": {
            "id": 1,
            "full_name": "Ada Lovelace",
            "email": "ada@example.com",
            "country": "GB",
            "balance": Decimal("1234.5000"),
            "signed_up_on": "2024-01-15",
            "updated_at": "2024-03-01T10:15:00Z",
        },
        "2": {
            "id": 2,
            "full_name": 'Grace "Amazing" Hopper',
            "email": "grace@example.com",
            "country": "US",
            "balance": Decimal("99999999999999.9999"),
            "signed_up_on": "2023-12-31",
            "updated_at": "2024-03-02T21:59:59.123456Z",
        },
        "3": {
            "id": 3,
            "full_name": "Zoë Ünïcødé 🚀",
            "email": "zoe@example.com",
            "country": "DE",
            "balance": Decimal("0.0001"),
            "signed_up_on": "2024-02-29",
            "updated_at": "2024-03-03T00:00:00Z",
        },
        "4": {
            "id": 4,
            "full_name": "Back\\slash\nNew line",
            "email": None,
            "country": None,
            "balance": Decimal("-42.1000"),
            "signed_up_on": "2022-06-01",
            "updated_at": "2024-03-04T17:00:00Z",
        },
        "5": {
            "id": 5,
            "full_name": "李小龍",
            "email": "bruce@example.com",
            "country": "HK",
            "balance": None,
            "signed_up_on": "2021-11-27",
            "updated_at": None,
        },
    }


@on_both_engines
def test_mapped_columns_and_composite_key(project: Project, kafka: Kafka) -> None:
    prefix = project.build(kafka)
    assert project.sync("--select", "orders").returncode == 0

    messages = kafka.consume_all(prefix + "orders")

    # Decimals keep every significant digit; DuckDB drops trailing zeros (5.00 -> 5.0).
    by_order = {(m.key, json.loads(m.value or "")["number"]): m.value for m in messages}
    assert by_order == {
        ("1", 1): '{"customer":1,"number":1,"total":19.99,"state":"shipped",'
        '"ordered_at":"2024-03-01T10:20:00"}',
        ("1", 2): '{"customer":1,"number":2,"total":5.0,"state":"placed",'
        '"ordered_at":"2024-03-05T08:00:00"}',
        ("2", 1): '{"customer":2,"number":1,"total":1000.1,"state":"shipped",'
        '"ordered_at":"2024-03-02T09:00:00"}',
        ("3", 1): '{"customer":3,"number":1,"total":0.5,"state":"cancelled",'
        '"ordered_at":"2024-03-03T11:11:11"}',
    }


@on_both_engines
def test_json_column_sent_as_is_and_invalid_rows_reported(project: Project, kafka: Kafka) -> None:
    (project.path / "models" / "customer_profiles.sql").write_text(
        "select id, case when id = 3 then '{broken' else"
        " {{ dbt_kafka_sync.json_payload(['id', 'full_name', 'country']) }} end as payload"
        " from {{ ref('customers') }}"
    )
    prefix = project.build(kafka)

    result = project.sync("--select", "customer_profiles")

    assert result.returncode == 1
    assert "4 delivered, 1 failed" in result.stdout
    assert "row key '3' (added): column 'payload' is not valid JSON" in result.stdout
    published = values(kafka, prefix + "customer_profiles")
    assert sorted(published, key=lambda k: int(k or 0)) == ["1", "2", "4", "5"]
    assert published["2"] == {"id": 2, "full_name": 'Grace "Amazing" Hopper', "country": "US"}


@on_both_engines
def test_missing_topic_fails_that_model_only(project: Project, kafka: Kafka) -> None:
    prefix = project.build(kafka, ("customers",))

    result = project.sync("--select", "customers", "--select", "orders")

    assert result.returncode == 1
    assert f"topic(s) '{prefix}orders' do not exist" in result.stdout
    assert "customers -> " in result.stdout and "5 delivered" in result.stdout
    assert len(kafka.consume_all(prefix + "customers")) == 5


@pytest.mark.parametrize("key", ["primary_keys", "topik"])
def test_config_typo_exits_1_before_publishing_anything(
    project: Project, kafka: Kafka, key: str
) -> None:
    def typo(schema: dict[str, Any]) -> None:
        block = schema["models"][1]["config"]["meta"]["kafka_sync"]  # orders
        block[key] = block.pop(key[:-1] if key == "primary_keys" else "topic")

    project.edit_schema(typo)
    prefix = project.build(kafka)

    result = project.sync()

    assert result.returncode == 1
    assert "model 'orders'" in result.stderr
    assert f"unknown key '{key}'" in result.stderr
    assert "allowed keys: name, primary_key, topic" in result.stderr
    assert kafka.consume_all(prefix + "customers") == []


def test_missing_manifest_exits_1_with_what_to_do(project: Project) -> None:
    result = project.sync()

    assert result.returncode == 1
    assert "no dbt manifest at" in result.stderr
    assert "run `dbt parse`" in result.stderr


def test_unreachable_broker_exits_1(project: Project, kafka: Kafka) -> None:
    project.build(kafka)
    project.env["KAFKA_BOOTSTRAP_SERVERS"] = "127.0.0.1:1"

    result = project.sync()

    assert result.returncode == 1
    assert "cannot connect to Kafka at 127.0.0.1:1 over PLAINTEXT" in result.stderr
