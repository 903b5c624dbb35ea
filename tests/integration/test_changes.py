"""Change detection end to end: successive versions of the seeds, consumed back from Kafka."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest
from harness import ENGINES, WAREHOUSE_STATE, Kafka, Project

# Each engine, with the state in a local file and in the warehouse: the same events.
pytestmark = pytest.mark.parametrize("project", ENGINES + WAREHOUSE_STATE, indirect=True)

EVENT_HEADER = "dbt-kafka-sync-event"

Event = tuple[str, str | None, Any]  # (event, key, parsed value)


class TopicReader:
    """Reads what each run added to a single-partition topic."""

    def __init__(self, kafka: Kafka, topic: str) -> None:
        self.kafka, self.topic, self.seen = kafka, topic, 0

    def new_messages(self) -> list[Event]:
        records = self.kafka.consume_all(self.topic)
        fresh = records[self.seen :]
        self.seen = len(records)
        return [
            (r.headers[EVENT_HEADER], r.key, json.loads(r.value) if r.value else None)
            for r in fresh
        ]


def customer(row: dict[str, str]) -> dict[str, Any]:
    """The message the example's customers model gives for a seed row."""
    return {
        "id": int(row["id"]),
        "full_name": row["full_name"],
        "email": row["email"] or None,
        "country": row["country"] or None,
        "balance": float(row["balance"]) if row["balance"] else None,
        "signed_up_on": row["signed_up_on"],
        "updated_at": None,
    }


def comparable(events: list[Event]) -> list[Event]:
    """Sort, and drop the timestamp that the seeds write in varied zones."""
    cleaned = []
    for event, key, value in events:
        if isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in ("updated_at",)}
        cleaned.append((event, key, value))
    return sorted(cleaned, key=lambda e: (e[0], e[1] or "", json.dumps(e[2], sort_keys=True)))


def summary_line(result: subprocess.CompletedProcess[str], model: str) -> str:
    """The run summary's line for a model: `OK   model -> ...` or `FAIL model: ...`."""
    return next(
        line
        for line in result.stdout.splitlines()
        if line[5:].startswith((f"{model} ", f"{model}:"))
    )


def test_three_versions_publish_exactly_what_changed(project: Project, kafka: Kafka) -> None:
    prefix = project.build(kafka)
    customers = TopicReader(kafka, prefix + "customers")
    orders = TopicReader(kafka, prefix + "orders")
    v1_customers = project.read_seed("raw_customers")
    v1_orders = project.read_seed("raw_orders")

    first = project.sync()
    assert first.returncode == 0, first.stdout + first.stderr
    assert [e[0] for e in customers.new_messages()] == ["added"] * 5
    assert len(orders.new_messages()) == 4

    # Version 2: one change, one removal, one addition in each model.
    v2_customers = [dict(r) for r in v1_customers if r["id"] != "4"]
    v2_customers[1]["email"] = "grace@navy.mil"
    v2_customers.append(
        {
            "id": "6",
            "full_name": "New Person",
            "email": "new@example.com",
            "country": "FR",
            "balance": "1.5",
            "signed_up_on": "2024-05-01",
            "updated_at": "",
        }
    )
    project.write_seed("raw_customers", v2_customers)
    v2_orders = [dict(r) for r in v1_orders if (r["customer_id"], r["order_number"]) != ("3", "1")]
    v2_orders[1]["amount"] = "7.50"
    v2_orders.append(
        {
            "customer_id": "2",
            "order_number": "2",
            "amount": "3.00",
            "status": "placed",
            "ordered_at": "2024-04-01 00:00:00",
        }
    )
    project.write_seed("raw_orders", v2_orders)
    project.rebuild()

    second = project.sync()

    assert second.returncode == 0, second.stdout + second.stderr
    assert "1 added, 1 changed, 1 removed; 3 delivered" in summary_line(second, "customers")
    removed_4 = next(r for r in v1_customers if r["id"] == "4")
    assert comparable(customers.new_messages()) == comparable(
        [
            ("added", "6", customer(v2_customers[-1])),
            ("changed", "2", customer(v2_customers[1])),
            ("removed", "4", customer(removed_4)),  # the last known values
        ]
    )
    assert sorted((e, k, v["number"], v["total"]) for e, k, v in orders.new_messages()) == [
        ("added", "2", 2, 3.0),
        ("changed", "1", 2, 7.5),
        ("removed", "3", 1, 0.5),
    ]

    # No change: nothing is published.
    unchanged = project.sync()
    assert unchanged.returncode == 0
    assert "0 added, 0 changed, 0 removed; 0 delivered" in summary_line(unchanged, "customers")
    assert customers.new_messages() == [] and orders.new_messages() == []

    # Version 3: a removed key comes back, and a composite-key row changes.
    v3_customers = [*v2_customers, removed_4]
    v3_customers[-2]["country"] = "BE"  # customer 6
    project.write_seed("raw_customers", v3_customers)
    v2_orders[-1]["status"] = "shipped"
    project.write_seed("raw_orders", v2_orders)
    project.rebuild()

    third = project.sync()

    assert third.returncode == 0, third.stdout + third.stderr
    assert comparable(customers.new_messages()) == comparable(
        [("added", "4", customer(removed_4)), ("changed", "6", customer(v3_customers[-2]))]
    )
    assert [(e, k, v["state"]) for e, k, v in orders.new_messages()] == [
        ("changed", "2", "shipped")
    ]


def test_a_column_the_message_does_not_use_produces_no_events(
    project: Project, kafka: Kafka
) -> None:
    prefix = project.build(kafka, ("orders",))
    assert project.sync("--select", "orders").returncode == 0

    project.write_model(
        "orders",
        "select customer_id, order_number, amount, status, ordered_at,"
        " 'new' || order_number as note from {{ ref('raw_orders') }}",
    )
    project.rebuild()
    result = project.sync("--select", "orders")

    assert result.returncode == 0
    assert "0 added, 0 changed, 0 removed" in summary_line(result, "orders")
    assert len(kafka.consume_all(prefix + "orders")) == 4


def test_duplicate_keys_fail_the_model_and_leave_its_state(project: Project, kafka: Kafka) -> None:
    prefix = project.build(kafka)
    customers = TopicReader(kafka, prefix + "customers")
    assert project.sync().returncode == 0
    customers.new_messages()

    rows = project.read_seed("raw_customers")
    rows[0]["email"] = "ada@changed.example"
    duplicated = [*rows, dict(rows[1]), dict(rows[1]), dict(rows[2])]
    project.write_seed("raw_customers", duplicated)
    project.rebuild()

    result = project.sync()

    assert result.returncode == 1
    failure = summary_line(result, "customers")
    assert failure.startswith("FAIL customers: model 'customers', column 'id'")
    assert "primary key id is not unique: 2 (3 rows), 3 (2 rows)" in failure
    assert customers.new_messages() == []
    assert summary_line(result, "orders").startswith("OK ")  # other models proceed

    project.write_seed("raw_customers", rows)  # fixed: only the real change is sent
    project.rebuild()
    fixed = project.sync()
    assert fixed.returncode == 0
    assert [(e, k) for e, k, _ in customers.new_messages()] == [("changed", "1")]


def test_null_keys_are_rejected_and_the_rest_proceed(project: Project, kafka: Kafka) -> None:
    rows = project.read_seed("raw_customers")
    rows.append({**rows[0], "id": "", "full_name": "No Key"})
    project.write_seed("raw_customers", rows)
    prefix = project.build(kafka, ("customers",))

    result = project.sync("--select", "customers")

    assert result.returncode == 1
    assert "5 delivered, 0 failed, 1 rejected (NULL primary key)" in result.stdout
    assert 'rejected, primary key is NULL: {"id":null,"full_name":"No Key"' in result.stdout
    assert len(kafka.consume_all(prefix + "customers")) == 5


def test_initial_sync_skip_events_filter_and_tombstones(project: Project, kafka: Kafka) -> None:
    def configure(schema: dict[str, Any]) -> None:
        block = schema["models"][0]["config"]["meta"]["kafka_sync"]
        block.update(initial_sync="skip", events=["changed", "removed"], on_remove="tombstone")

    project.edit_schema(configure)
    prefix = project.build(kafka, ("customers",))
    customers = TopicReader(kafka, prefix + "customers")

    first = project.sync("--select", "customers")
    assert first.returncode == 0
    assert customers.new_messages() == []  # skip: the rows are recorded, none sent

    rows = project.read_seed("raw_customers")
    rows[0]["country"] = "IE"
    added = {**rows[0], "id": "7"}
    project.write_seed("raw_customers", [*[r for r in rows if r["id"] != "5"], added])
    project.rebuild()

    second = project.sync("--select", "customers")

    assert second.returncode == 0
    events = customers.new_messages()
    assert [(e, k) for e, k, _ in sorted(events)] == [("changed", "1"), ("removed", "5")]
    assert dict((k, v) for _, k, v in events)["5"] is None  # a tombstone: key, null value
    # `added` is not published, but the snapshot advanced: 7 is not sent again later.
    assert project.sync("--select", "customers").returncode == 0
    assert customers.new_messages() == []


def test_full_refresh_resends_and_reset_forgets(project: Project, kafka: Kafka) -> None:
    prefix = project.build(kafka, ("orders",))
    orders = TopicReader(kafka, prefix + "orders")
    assert project.sync("--select", "orders").returncode == 0
    assert len(orders.new_messages()) == 4

    def rename_field(schema: dict[str, Any]) -> None:
        columns = schema["models"][1]["config"]["meta"]["kafka_sync"]["message"]["columns"]
        columns["grand_total"] = columns.pop("total")

    project.edit_schema(rename_field)
    project.rebuild()
    changed_config = project.sync("--select", "orders")
    assert "the message config (topic, key, message or on_remove) changed" in (
        changed_config.stderr
    )
    assert "Use --full-refresh to resend every row" in changed_config.stderr
    assert orders.new_messages() == []  # said, not silently resent

    plan = project.sync("plan", "--select", "orders", "--full-refresh")
    assert "4 added, 0 changed, 0 removed; 4 to publish" in plan.stdout
    assert orders.new_messages() == []

    refresh = project.sync("--select", "orders", "--full-refresh")
    assert refresh.returncode == 0
    refreshed = orders.new_messages()
    assert [e for e, _, _ in refreshed] == ["added"] * 4
    assert all("grand_total" in value for _, _, value in refreshed)

    reset = project.sync("reset", "orders", "--yes")
    assert reset.returncode == 0 and "reset dev:model." in reset.stdout
    again = project.sync("--select", "orders")
    assert [e for e, _, _ in orders.new_messages()] == ["added"] * 4
    assert "4 added" in summary_line(again, "orders")


def test_plan_shows_counts_and_samples_and_changes_nothing(project: Project, kafka: Kafka) -> None:
    prefix = project.build(kafka, ("customers",))

    plan = project.sync("plan", "--select", "customers")

    assert plan.returncode == 0, plan.stderr
    assert "customers -> " in plan.stdout and "5 added, 0 changed, 0 removed" in plan.stdout
    assert 'added    key=1  value={"id":1,"full_name":"Ada Lovelace"' in plan.stdout
    assert kafka.consume_all(prefix + "customers") == []
    assert "5 added" in summary_line(project.sync("--select", "customers"), "customers")


CODES_MODEL = """{{{{ config(materialized='table', meta={{'kafka_sync': {{'primary_key': 'id',
    'key_column': 'id', 'topic': var('kafka_topic_prefix') ~ 'codes'}}}}) }}}}
select cast(id as integer) as id, cast(code as {kind}) as code
from (values {rows}) as t (id, code)
"""


def test_a_type_change_says_which_old_values_it_cannot_keep(project: Project, kafka: Kafka) -> None:
    prefix = project.create_topics(kafka, ("codes",))
    codes = TopicReader(kafka, prefix + "codes")
    build = ("run", "--select", "codes", "--vars", json.dumps({"kafka_topic_prefix": prefix}))
    project.write_model(
        "codes", CODES_MODEL.format(kind="varchar", rows="(1, 'abc'), (2, '5'), (3, '7')")
    )
    project.dbt(*build)
    assert project.sync("--select", "codes").returncode == 0
    assert len(codes.new_messages()) == 3

    # The column becomes an integer; rows 1 ('abc', no integer) and 3 ('7') are removed.
    project.write_model("codes", CODES_MODEL.format(kind="integer", rows="(2, 6)"))
    project.dbt(*build)
    retyped = project.sync("--select", "codes")

    assert retyped.returncode == 0, retyped.stdout + retyped.stderr
    assert comparable(codes.new_messages()) == [
        ("changed", "2", {"id": 2, "code": 6}),
        ("removed", "1", {"id": 1, "code": None}),  # 'abc' cannot be an integer: said below
        ("removed", "3", {"id": 3, "code": 7}),  # '7' is kept as 7
    ]
    assert "codes [default]: column 'code' changed type (" in retyped.stderr
    assert (
        "1 row(s) of the snapshot hold a value the new type cannot hold (e.g. row key '1')"
        in retyped.stderr
    )
