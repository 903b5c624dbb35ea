"""The debugger: what `show --messages` and `messages --key` tell matches what Kafka holds."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace

import duckdb
import local_servers.kafka as local_kafka
import pytest
from click.testing import CliRunner
from harness import Kafka, Project

from dbt_kafka_sync.cli import main

MODELS = ("customers", "customer_profiles", "orders", "customer_events")
STATE = ".dbt_kafka_sync/state.duckdb"
LINE = re.compile(
    r"^\s+(?P<model>\S+) \[\S+\] #\d+ (?P<event>\w+) row (?P<row>.+?) key (?P<key>null|\".*?\")"
    r" -> (?P<topic>[^:]+?): (?P<outcome>\w+)(?: \((?P<reason>.*)\))?; \d+ bytes$"
)


@dataclass(frozen=True)
class Listed:
    """One message as the CLI lists it."""

    model: str
    event: str
    row_key: str
    key: str | None
    topic: str
    outcome: str
    reason: str | None
    value: str | None


def listed(stdout: str) -> list[Listed]:
    """Parse the messages of `show --messages` or `messages --key`."""
    found: list[Listed] = []
    label = 0
    for line in stdout.splitlines():
        if (match := LINE.match(line)) is not None:
            key = None if match["key"] == "null" else match["key"][1:-1]
            topic = re.sub(r"\[\d+\]$", "", match["topic"])
            found.append(
                Listed(
                    match["model"],
                    match["event"],
                    match["row"],
                    key,
                    topic,
                    match["outcome"],
                    match["reason"],
                    None,
                )
            )
        elif line.strip().startswith("value: ") and found:
            label = line.index("value: ") + len("value: ")
            found[-1] = replace(found[-1], value=line[label:])
        elif label and line.startswith(" " * label) and found:  # the value's next line
            found[-1] = replace(found[-1], value=f"{found[-1].value}\n{line[label:]}")
    return found


def read(project: Project, *args: str) -> list[Listed]:
    """A command that only reads the state, run in this process (it starts faster)."""
    result = CliRunner().invoke(main, [*args, "--project-dir", str(project.path)], env=project.env)
    assert result.exit_code == 0, result.output
    return listed(result.output)


def run_id(result: object) -> str:
    stdout = str(getattr(result, "stdout", ""))
    return re.search(r"show ([\w-]+)", stdout).group(1)  # type: ignore[union-attr]


def consumed(kafka: Kafka, prefix: str) -> set[tuple[str, str | None, str | None]]:
    return {
        (prefix + model, record.key, record.value)
        for model in MODELS
        for record in kafka.consume_all(prefix + model)
    }


def write_broken_profiles(project: Project) -> None:
    """Profile 3's payload is not JSON: its message is refused, never sent."""
    (project.path / "models" / "customer_profiles.sql").write_text(
        "select id, case when id = 3 then '{broken' else"
        " {{ dbt_kafka_sync.json_payload(['id', 'full_name']) }} end as payload"
        " from {{ ref('customers') }}"
    )


@pytest.fixture
def failing_project(project: Project, kafka: Kafka) -> Project:
    """Customer 3 too large for its topic (the broker refuses it: failed) and an invalid
    JSON payload for profile 3 (never sent: refused)."""
    rows = project.read_seed("raw_customers")
    rows[2]["full_name"] = "x" * 3000
    project.write_seed("raw_customers", rows)
    write_broken_profiles(project)
    prefix = project.build(kafka, ("customer_profiles", "orders", "customer_events"))
    local_kafka.create_topic(
        kafka.bootstrap_servers, prefix + "customers", 1, config={"max.message.bytes": "2000"}
    )
    project.set_producer({"batch.num.messages": 1, "compression.type": "none"})
    return project


def sync(project: Project, *args: str) -> str:
    result = project.sync(*args, *(f"--select={m}" for m in MODELS))
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return run_id(result)


def test_messages_listed_as_kafka_holds_them_and_a_key_followed(
    failing_project: Project, kafka: Kafka
) -> None:
    project, prefix = failing_project, failing_project.prefix
    first = sync(project)

    shown = read(project, "show", first, "--messages")

    delivered = {(m.topic, m.key, m.value) for m in shown if m.outcome == "delivered"}
    assert delivered == consumed(kafka, prefix)
    assert len([m for m in shown if m.outcome == "delivered"]) == len(delivered)
    not_delivered = {(m.model, m.row_key, m.outcome) for m in shown if m.outcome != "delivered"}
    assert not_delivered == {("customers", "3", "failed"), ("customer_profiles", "3", "refused")}
    failed = read(project, "show", first, "--failed")
    assert sorted(m.outcome for m in failed) == ["failed", "refused"]
    assert "MSG_SIZE_TOO_LARGE" in str([m.reason for m in failed])
    assert "not valid JSON" in str([m.reason for m in failed])
    by_key = read(project, "show", first, "--key", "2", "--model", "customers")
    assert [(m.model, m.key) for m in by_key] == [("customers", "2")]
    assert read(project, "show", first, "--event", "removed") == []
    assert len(read(project, "show", first, "--messages", "--limit", "2")) == 2

    # Customer 3 gets a name that fits, customer 1 a new email: both sent by the next run.
    rows = project.read_seed("raw_customers")
    rows[2]["full_name"] = "Zoe"
    rows[0]["email"] = "ada@lovelace.org"
    project.write_seed("raw_customers", rows)
    project.dbt(
        "build", "--select", "raw_customers+", "--vars", json.dumps({"kafka_topic_prefix": prefix})
    )
    second = sync(project)

    history = project.sync("messages", "--key", "1", "--model", "customers").stdout
    followed = listed(history)
    assert [m.event for m in followed] == ["changed", "added"]  # newest first
    assert history.index(f"run {second}") < history.index(f"run {first}")  # one real process
    assert "ada@lovelace.org" in (followed[0].value or "")
    assert [
        (m.event, m.outcome)
        for m in read(project, "messages", "--key", "3", "--model", "customers")
    ] == [("added", "delivered"), ("added", "failed")]
    composite = read(project, "messages", "--key", '["1","2"]')
    assert [(m.model, m.key) for m in composite] == [("orders", "1")]

    # Without values: another Kafka target, whose first run sends every row again.
    project.add_kafka_output(
        "novalues",
        {
            "bootstrap_servers": kafka.bootstrap_servers,
            "debugger": {"record_values": False, "retention_days": 1},
        },
    )
    third = project.sync("--target", "novalues", "--select", "orders")
    assert third.returncode == 0, third.stdout + third.stderr
    with duckdb.connect(str(project.path / STATE), read_only=True) as state:
        [(rows_kept, values_kept)] = state.execute(
            "SELECT count(*), count(message_value) FROM sent_messages WHERE run_id = ?",
            [run_id(third)],
        ).fetchall()
    assert (rows_kept, values_kept) == (4, 0)

    # Retention: the first run is made two days old; the next run prunes its records.
    with duckdb.connect(str(project.path / STATE)) as state:
        state.execute(
            "UPDATE runs SET started_at = started_at - INTERVAL 2 DAY WHERE run_id = ?", [first]
        )
    assert project.sync("--target", "novalues", "--select", "orders").returncode == 0
    assert read(project, "show", first, "--messages") == []
    assert read(project, "show", second, "--messages") != []

    # A state written before the debugger existed reads as one without records.
    with duckdb.connect(str(project.path / STATE)) as state:
        state.execute("DROP TABLE sent_messages; DROP TABLE stage_timings; DROP TABLE send_rates")
    assert read(project, "show", second, "--messages") == []
    assert read(project, "messages", "--key", "1") == []


@pytest.mark.parametrize("project", ["postgres+warehouse"], indirect=True)
def test_log_kept_with_the_state_in_postgres(project: Project, kafka: Kafka) -> None:
    write_broken_profiles(project)
    prefix = project.build(kafka, ("customer_profiles",))
    run = run_id(project.sync("--select", "customer_profiles"))

    shown = read(project, "show", run, "--messages")

    topic = prefix + "customer_profiles"
    delivered = {(m.topic, m.key, m.value) for m in shown if m.outcome == "delivered"}
    assert delivered == {(topic, r.key, r.value) for r in kafka.consume_all(topic)}
    assert [(m.row_key, m.outcome) for m in shown if m.outcome != "delivered"] == [("3", "refused")]
    assert [m.event for m in read(project, "messages", "--key", "2")] == ["added"]


HYBRID_TEMPLATE = "templates/hybrid.json.liquid"
HYBRID_MODEL = f"""
{{{{ config(meta={{'kafka_sync': {{
    'primary_key': 'id',
    'topic': var('kafka_topic_prefix', 'demo.') ~ 'hybrid',
    'key_column': 'id',
    'message': {{'template_file': '{HYBRID_TEMPLATE}'}}}}}}) }}}}
select range as id, case when range = 2 then 'straße' else 'name ' || range end as name
from {{{{ series(5) }}}}
"""


def test_template_built_but_for_a_few_rows_logs_what_kafka_holds(
    project: Project, kafka: Kafka
) -> None:
    """DuckDB builds every value but the non-ASCII name's (Liquid's upcase): staged, patched."""
    (project.path / HYBRID_TEMPLATE).write_text(
        '{"id": {{ row.id | json }}, "n": "{{ row.name | upcase }}"}'
    )
    project.write_model("hybrid", HYBRID_MODEL)
    topic = project.build(kafka, ("hybrid",)) + "hybrid"

    result = project.sync("--select", "hybrid", "--log-level", "debug")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "commit staged in" in result.stderr
    sent = {(r.key, r.value) for r in kafka.consume_all(topic)}
    assert ("2", '{"id": 2, "n": "STRASSE"}') in sent and len(sent) == 5
    shown = read(project, "show", run_id(result), "--messages")
    assert {(m.key, m.value) for m in shown} == sent
    assert {m.outcome for m in shown} == {"delivered"} and len(shown) == 5
    with duckdb.connect(str(project.path / STATE), read_only=True) as state:
        sizes = state.execute(
            "SELECT size, strlen(message_value) FROM sent_messages WHERE run_id = ?",
            [run_id(result)],
        ).fetchall()
    assert len(sizes) == 5 and all(size == length for size, length in sizes)

    # Exactly-once commits unstaged: the log the recorder returns holds the patch itself.
    project.set_output(delivery="exactly_once", progress_topic=kafka.create_topic())
    again = project.sync("--select", "hybrid", "--full-refresh", "--log-level", "debug")
    assert again.returncode == 0, again.stdout + again.stderr
    assert "commit staged in" not in again.stderr
    resent = read(project, "show", run_id(again), "--messages")
    assert {(m.key, m.value) for m in resent} == sent and len(resent) == 5
