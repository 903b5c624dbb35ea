"""A large template sync rendered in processes sends what rendering in-process sends."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from harness import Kafka, Project

ROWS = 3_000
FAILED = re.compile(r"row key '(\d+)' \(added\): (.*)")
TEMPLATE = Path("templates") / "rendered.json.liquid"
# Liquid must render it (tags), row 77 fails in Liquid and row 99 is not JSON.
SOURCE = """{
  "type": "customer_{{ event }}",
  "customer": {"id": {{ row.id | json }}, "name": "{{ row.name | upcase }}"},
  {% if row.active %}"status": "active",{% else %}"status": "inactive",{% endif %}
  "tags": [{% for tag in row.tags %}"{{ tag }}"{% unless forloop.last %},{% endunless %}\
{% endfor %}],
  "day": "{{ 'now' | date: '%Y-%m-%d' }}"{% if row.id == 77 %}{{ row.id | divided_by: 0 }}\
{% endif %}{% if row.id == 99 %},{% endif %}
}
""".replace("\\\n", "")
MODEL = f"""
{{{{ config(meta={{'kafka_sync': {{
    'primary_key': 'id',
    'topic': var('kafka_topic_prefix', 'demo.') ~ 'rendered',
    'key_column': 'id',
    'message': {{'template_file': '{TEMPLATE}'}}}}}}) }}}}
select range as id, 'name "' || range || '"' as name, range % 3 <> 0 as active,
    list_slice(['vip', 'eu', 'new'], 1, (range % 4)::int) as tags
from {{{{ series({ROWS}) }}}}
"""


def test_rendering_processes_send_what_the_run_process_sends(
    project: Project, kafka: Kafka
) -> None:
    (project.path / TEMPLATE).write_text(SOURCE)
    project.write_model("rendered", MODEL)
    topic = project.build(kafka, ("rendered",)) + "rendered"
    profiles = yaml.safe_load((project.path / "profiles.yml").read_text())
    dev = profiles["kafka_sync"]["outputs"]["dev"]
    project.add_kafka_output("serial", {**dev, "render_workers": 1})
    project.add_kafka_output(
        "parallel", {**dev, "render_workers": 2, "render_workers_from_rows": ROWS // 2}
    )

    serial = project.sync("--select", "rendered", "--target", "serial", "--log-level", "info")
    first = kafka.consume_all(topic)
    parallel = project.sync("--select", "rendered", "--target", "parallel", "--log-level", "info")
    second = kafka.consume_all(topic, start=len(first))

    assert serial.returncode == parallel.returncode == 1, serial.stderr + parallel.stderr
    started = f"rendered: rendering {ROWS} messages in 2 processes"
    assert started in parallel.stderr and started.split(" in ")[0] not in serial.stderr
    assert len(first) == ROWS - 2  # every row but the two that cannot be rendered
    sent = [(r.key, r.value, sorted(r.headers.items())) for r in first]
    assert [(r.key, r.value, sorted(r.headers.items())) for r in second] == sent
    failed = [FAILED.findall(output.stdout) for output in (serial, parallel)]
    assert failed[0] == failed[1]
    assert [key for key, _ in failed[0]] == ["77", "99"]
    assert failed[0][0][1].startswith("template error: ")
    assert failed[0][1][1].startswith("the template's output is not valid JSON")
