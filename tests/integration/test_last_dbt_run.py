"""A model whose last `dbt run` failed is not synced; the next run that builds it catches up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness import RUN_ID, Kafka, Project
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


def test_a_model_dbt_failed_keeps_its_state_until_dbt_builds_it(
    project: Project, kafka: Kafka
) -> None:
    prefix = project.create_topics(kafka, MODELS)
    assert dbt_build(project).returncode == 0
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
    model_sql = (project.path / "models" / "customers.sql").read_text()
    project.write_model("customers", "select * from {{ ref('raw_customers') }} where nonsense")
    assert dbt_build(project).returncode == 1

    result = project.sync(*SELECTED)

    assert result.returncode == 0, result.stdout + result.stderr  # dbt already failed the pipeline
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

    # --ignore-run-results syncs it anyway: its table still holds the rows of the last build.
    ignored = project.sync(*SELECTED, "--ignore-run-results")
    assert ignored.returncode == 0
    assert summary_line(ignored, "customers").startswith("OK   customers")
    assert customers.new_messages() == []

    # Fixed: the next dbt run builds it, and the skipped change is the one sent.
    project.write_model("customers", model_sql)
    assert dbt_build(project).returncode == 0
    fixed = project.sync(*SELECTED)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert [(e, k, v["email"]) for e, k, v in customers.new_messages()] == [
        ("changed", "1", "ada@changed.example")
    ]
