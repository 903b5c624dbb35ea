"""Message modes and routing, consumed back from the real broker."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import local_servers.kafka as local_kafka
from harness import Kafka, Project, on_both_engines

EVENT_HEADER = "dbt-kafka-sync-event"


def values_by_key(kafka: Kafka, topic: str) -> dict[str | None, str | None]:
    return {record.key: record.value for record in kafka.consume_all(topic)}


@on_both_engines
def test_each_mode_sends_exact_values_for_tricky_data(project: Project, kafka: Kafka) -> None:
    prefix = project.build(kafka)
    plan = project.sync("plan", "--select", "tricky_values")

    result = project.sync("--select", "tricky_values", "--log-level", "debug")

    assert result.returncode == 0, result.stdout + result.stderr
    assert values_by_key(kafka, prefix + "tricky_columns") == {
        "1": '{"id":1,"text":"say \\"hi\\"","amount":12345678901234567890.123456789,'
        '"happened_at":"2024-01-02T01:04:05Z","tags":["a","b"],"payload":"{\\"ok\\": true}"}',
        "2": '{"id":2,"text":"back\\\\slash\\nnew line","amount":-0.000000001,'
        '"happened_at":"2024-07-01T06:59:59.5Z","tags":[],"payload":"[1, 2, 3]"}',
        "3": '{"id":3,"text":"emoji 😀 and ünïcødé","amount":null,"happened_at":null,'
        '"tags":null,"payload":"null"}',
        "4": '{"id":4,"text":null,"amount":0.000000000,"happened_at":"1999-12-31T23:59:59Z",'
        '"tags":[null],"payload":"\\"just a string\\""}',
    }
    assert values_by_key(kafka, prefix + "tricky_column") == {
        "1": '{"ok": true}',
        "2": "[1, 2, 3]",
        "3": "null",
        "4": '"just a string"',
    }
    template = values_by_key(kafka, prefix + "tricky_template")
    assert {key: json.loads(value or "") for key, value in template.items()} == {
        "1": {
            "id": 1,
            "text": 'say "hi"',
            "amount": 12345678901234567890.123456789,
            "at": "2024-01-02T01:04:05Z",
            "tags": ["a", "b"],
        },
        "2": {
            "id": 2,
            "text": "back\\slash\nnew line",
            "amount": -1e-9,
            "at": "2024-07-01T06:59:59.5Z",
            "tags": [],
        },
        "3": {"id": 3, "text": "emoji 😀 and ünïcødé", "amount": None, "at": None, "tags": None},
        "4": {"id": 4, "text": "", "amount": 0, "at": "1999-12-31T23:59:59Z", "tags": [None]},
    }
    assert '"amount": 12345678901234567890.123456789' in (template["1"] or "")
    # Only `{{ row.x | json }}` values: DuckDB builds the same documents Liquid would.
    assert "(as_built_template): DuckDB builds the template" in result.stderr
    assert "(as_template): DuckDB builds" not in result.stderr
    assert (
        "(as_rendered_template): Liquid renders the template: message.compile is false"
        in result.stderr
    )
    assert "template messages built by DuckDB\n" in plan.stdout
    assert "template messages built by Liquid: its text is not JSON for every row" in plan.stdout
    # The same template, built by DuckDB and rendered by Liquid: the same bytes.
    built_and_rendered = kafka.consume_all(prefix + "tricky_built_template")
    assert len(built_and_rendered) == 8
    assert len({(record.key, record.value) for record in built_and_rendered}) == 4
    assert values_by_key(kafka, prefix + "tricky_built_template") == {
        "1": '{"id": 1, "text": "say \\"hi\\"", "amount": 12345678901234567890.123456789,'
        ' "at": "2024-01-02T01:04:05Z"}',
        "2": '{"id": 2, "text": "back\\\\slash\\nnew line", "amount": -0.000000001,'
        ' "at": "2024-07-01T06:59:59.5Z"}',
        "3": '{"id": 3, "text": "emoji 😀 and ünïcødé", "amount": null, "at": null}',
        "4": '{"id": 4, "text": null, "amount": 0.000000000, "at": "1999-12-31T23:59:59Z"}',
    }


@on_both_engines
def test_template_file_with_previous_and_inline_template_with_headers(
    project: Project, kafka: Kafka
) -> None:
    prefix = project.build(kafka)
    assert (
        project.sync("--select", "customer_events", "--select", "order_notifications").returncode
        == 0
    )
    rows = project.read_seed("raw_customers")
    rows[0]["email"] = "ada@analytical.engine"
    project.write_seed("raw_customers", rows)
    project.rebuild()

    result = project.sync("--select", "customer_events")

    assert result.returncode == 0, result.stdout + result.stderr
    events = [json.loads(r.value or "") for r in kafka.consume_all(prefix + "customer_events")]
    assert len(events) == 6
    changed = events[-1]
    assert changed["type"] == "customer.changed"
    assert changed["email"] == "ada@analytical.engine"
    assert changed["previous_email"] == "ada@example.com"
    assert events[0]["balance"] == 1234.5 and events[0]["type"] == "customer.added"
    notifications = kafka.consume_all(prefix + "order_notifications")
    assert {r.value for r in notifications} >= {
        '{"order": 2, "customer": 1, "text": "Order 2 is placed"}'
    }
    assert all(
        r.headers["order-status"] in ("shipped", "placed", "cancelled") for r in notifications
    )
    assert all(r.headers[EVENT_HEADER] == "added" for r in notifications)


KEYS_MODEL = """
{{ config(meta={'kafka_sync': {
    'primary_key': 'id', 'key_column': 'k', 'message': {'columns': ['id']},
    'topic': var('kafka_topic_prefix', 'demo.') ~ 'keys'}}) }}
select 0 as id, '' as k
union all select range + 1, 'key-' || range from {{ series(500) }}
union all select range + 1001, 'ключ-' || range || '-😀 ü' from {{ series(500) }}
union all select 2001, ' spaces and\ttab '
"""

JAVA_PARTITIONER = """
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.apache.kafka.common.utils.Utils;

public class Partitions {
    public static void main(String[] args) throws Exception {
        int partitions = Integer.parseInt(args[1]);
        for (String key : Files.readAllLines(Path.of(args[0]), StandardCharsets.UTF_8)) {
            byte[] bytes = key.getBytes(StandardCharsets.UTF_8);
            System.out.println(Utils.toPositive(Utils.murmur2(bytes)) % partitions);
        }
    }
}
"""


def java_partitions(tmp_path: Path, keys: list[str], partitions: int) -> list[int]:
    """The partition Kafka's Java client gives each key, computed by its own code."""
    (tmp_path / "keys.txt").write_text("\n".join(keys) + "\n", encoding="utf-8")
    (tmp_path / "Partitions.java").write_text(JAVA_PARTITIONER)
    libs = local_kafka.fetch_jars()
    result = subprocess.run(
        [
            "java",
            "-cp",
            f"{libs}/*",
            str(tmp_path / "Partitions.java"),
            str(tmp_path / "keys.txt"),
            str(partitions),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return [int(line) for line in result.stdout.split()]


def test_key_placement_matches_the_java_client(
    project: Project, kafka: Kafka, tmp_path: Path
) -> None:
    project.write_model("partition_keys", KEYS_MODEL)
    prefix = project.build(kafka, ("keys",), partitions=7)

    result = project.sync("--select", "partition_keys")

    assert result.returncode == 0, result.stdout + result.stderr
    placed = {r.key or "": r.partition for r in kafka.consume_all(prefix + "keys")}
    assert len(placed) == 1002 and "" in placed
    keys = sorted(placed)
    assert [placed[k] for k in keys] == java_partitions(tmp_path, keys, 7)
    assert len(set(placed.values())) == 7


ROUTED_MODEL = """
{{ config(meta={'kafka_sync': {
    'primary_key': 'id', 'message': {'columns': ['id']},
    'topic_column': 'destination', 'partition_column': 'part', 'key_column': 'k',
    'headers': {'source-system': 'source', 'tenant': 'tenant'}}}) }}
select * from (values
    (1, '{{ var("kafka_topic_prefix") }}' || 'main', '3', 'key-a', 'crm', 'acme'),
    (2, '{{ var("kafka_topic_prefix") }}' || 'main', 'not a number', 'key-b', 'crm', null),
    (3, '{{ var("kafka_topic_prefix") }}' || 'main', '9', 'key-c', null, null),
    (4, '{{ var("kafka_topic_prefix") }}' || 'other', null, null, 'erp', 'acme')
) as t(id, destination, part, k, source, tenant)
"""


@on_both_engines
def test_topic_column_partition_precedence_and_headers(project: Project, kafka: Kafka) -> None:
    project.write_model("routed", ROUTED_MODEL)
    prefix = project.build(kafka, ("main",), partitions=4)  # "other" is missing

    missing = project.sync("--select", "routed")

    assert missing.returncode == 1
    assert f"topic(s) '{prefix}other' do not exist" in missing.stdout
    assert local_kafka.message_count(kafka.bootstrap_servers, prefix + "main") == 0

    local_kafka.create_topic(kafka.bootstrap_servers, prefix + "other", 2)
    result = project.sync("--select", "routed")

    assert result.returncode == 1  # row 3's partition 9 does not exist
    assert "row key '3' (added): partition 9 is out of range" in result.stdout
    main = {r.key: r for r in kafka.consume_all(prefix + "main")}
    assert main["key-a"].partition == 3  # the partition column wins over the key
    java = java_partitions(project.path, ["key-b"], 4)[0]
    assert main["key-b"].partition == java  # not a number: NULL, so the key decides
    assert main["key-a"].headers == {
        "source-system": "crm",
        "tenant": "acme",
        EVENT_HEADER: "added",
    }
    assert main["key-b"].headers == {"source-system": "crm", EVENT_HEADER: "added"}
    [other] = kafka.consume_all(prefix + "other")
    assert other.headers == {"source-system": "erp", "tenant": "acme", EVENT_HEADER: "added"}


SPREAD_MODEL = """
{{ config(meta={'kafka_sync': {
    'primary_key': 'id', 'event_header': false,
    'topic': var('kafka_topic_prefix', 'demo.') ~ 'spread'}}) }}
select range as id from {{ series(12) }}
"""


@on_both_engines
def test_keyless_messages_spread_round_robin(project: Project, kafka: Kafka) -> None:
    project.write_model("spread", SPREAD_MODEL)
    prefix = project.build(kafka, ("spread",), partitions=4)

    assert project.sync("--select", "spread").returncode == 0

    records = kafka.consume_all(prefix + "spread")
    per_partition = [sum(1 for r in records if r.partition == p) for p in range(4)]
    assert per_partition == [3, 3, 3, 3]
    assert all(r.key is None and r.headers == {} for r in records)
