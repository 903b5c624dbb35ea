"""After `dbt run`: a model dbt failed to build is not synced; a sync on a terminal shows a bar.

Both share one build of the example project (three models), to keep the suite short.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness import RUN_ID, Kafka, Project, copy_example
from terminal import open_terminal, read_pending, screen
from test_changes import TopicReader, summary_line

MODELS = ("customers", "orders", "customer_profiles")
SELECTED = ("--select", " ".join(MODELS))


def dbt_build(project: Project) -> subprocess.CompletedProcess[str]:
    """`dbt build` of the three models and their seeds only (a full build takes longer)."""
    dbt = str(Path(sys.executable).with_name("dbt"))
    variables = json.dumps({"kafka_topic_prefix": project.prefix})
    return subprocess.run(
        [dbt, "build", "--select", "+customer_profiles +orders", "--vars", variables],
        cwd=project.path,
        env=project.env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, kafka: Kafka) -> Project:
    project = copy_example(tmp_path_factory.mktemp("last_dbt_run") / "project", kafka)
    project.create_topics(kafka, MODELS)
    assert dbt_build(project).returncode == 0
    return project


def sync_on_terminal(project: Project, *args: str) -> tuple[int, str, str]:
    """dbt-kafka-sync with stderr on a pseudo-terminal: exit code, what it shows, stdout."""
    reader, writer = open_terminal()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "dbt_kafka_sync", *args, "--project-dir", str(project.path)],
            cwd=project.path,
            env=project.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=writer,
            text=True,
        )
        os.close(writer)
        stdout, _ = process.communicate(timeout=300)
        return process.returncode, read_pending(reader), stdout
    finally:
        os.close(reader)


def test_a_sync_on_a_terminal_shows_a_bar_per_sync_beside_the_log(built: Project) -> None:
    built.add_kafka_output("terminal", {"bootstrap_servers": built.env["KAFKA_BOOTSTRAP_SERVERS"]})

    code, shown, stdout = sync_on_terminal(built, "--target", "terminal", *SELECTED)

    assert code == 0, shown + stdout
    assert "\r\x1b[K" in shown  # drawn in place
    lines = screen(shown)
    bars = [line for line in lines if " msg/s, ETA " in line]
    logs = [line for line in lines if line.startswith(("INFO ", "WARNING "))]
    assert sorted(lines) == sorted(bars + logs)  # no line holds a bit of both
    assert [bar.split(" [", 1)[0] for bar in bars] == [
        f"{name} -> {built.prefix}{name}" for name in sorted(MODELS)
    ]
    assert all("] 100% " in bar for bar in bars)
    assert any("publishing 5 messages" in line for line in logs)


def test_a_model_dbt_failed_keeps_its_state_until_dbt_builds_it(
    built: Project, kafka: Kafka
) -> None:
    project, prefix = built, built.prefix
    customers = TopicReader(kafka, prefix + "customers")
    orders = TopicReader(kafka, prefix + "orders")
    assert project.sync(*SELECTED).returncode == 0
    customers.new_messages()
    orders.new_messages()

    # A day of changes, then a dbt run in which customers fails (and its child is skipped).
    rows = project.read_seed("raw_customers")
    rows[0]["email"] = "ada@changed.example"
    project.write_seed("raw_customers", rows)
    order_rows = project.read_seed("raw_orders")
    order_rows[0]["status"] = "returned"
    project.write_seed("raw_orders", order_rows)
    # The table is rebuilt with the change, then a post-hook fails: dbt reports an error.
    model_sql = (project.path / "models" / "customers.sql").read_text()
    failing_hook = "{{ config(post_hook='select * from no_such_table') }}\n"
    project.write_model("customers", failing_hook + model_sql)
    assert dbt_build(project).returncode == 1

    result = project.sync(*SELECTED)

    assert result.returncode == 0, result.stdout + result.stderr  # dbt already failed the pipeline
    assert "\r" not in result.stderr  # no terminal: progress is logged, never drawn
    assert summary_line(result, "customers").startswith(
        "SKIP customers: its last dbt run ended in error: Runtime Error in model customers"
    )
    assert summary_line(result, "customer_profiles") == (
        "SKIP customer_profiles: its last dbt run skipped it (a model it depends on failed)"
    )
    assert customers.new_messages() == []
    assert [(e, v["state"]) for e, _, v in orders.new_messages()] == [("changed", "returned")]
    run_id = RUN_ID.search(result.stdout)
    assert run_id is not None
    shown = project.sync("show", run_id.group()).stdout
    assert "customers [default] -> " in shown
    assert "skipped; 0 added, 0 changed, 0 removed" in shown
    assert "skipped: its last dbt run ended in error: Runtime Error in model customers" in shown

    # --ignore-run-results syncs it anyway (on another target: its first run sends every row).
    project.add_kafka_output("ignoring", {"bootstrap_servers": kafka.bootstrap_servers})
    ignored = project.sync(*SELECTED, "--target", "ignoring", "--ignore-run-results")
    assert ignored.returncode == 0
    assert summary_line(ignored, "customers").startswith("OK   customers")
    assert len(customers.new_messages()) == 5

    # Fixed: the next dbt run builds it, and the change held back is sent.
    project.write_model("customers", model_sql)
    assert dbt_build(project).returncode == 0
    fixed = project.sync(*SELECTED)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert [(e, k, v["email"]) for e, k, v in customers.new_messages()] == [
        ("changed", "1", "ada@changed.example")
    ]
