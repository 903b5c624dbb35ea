"""The benchmark's inputs: a generated DuckDB warehouse and a minimal dbt project around it.

No dbt run is needed: the project folder holds dbt_project.yml, profiles.yml and a
target/manifest.json with just the fields dbt-kafka-sync reads from each model node.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import yaml

from dbt_kafka_sync.messages.columns import json_value
from dbt_kafka_sync.sql import quote_identifier, quote_literal

PROJECT = "bench"
TABLE = "customers"
PAYLOAD_TABLE = "customers_payload"
PAYLOAD_COLUMN = "payload"
COLUMNS = {
    "id": "BIGINT",
    "name": "VARCHAR",
    "email": "VARCHAR",
    "country": "VARCHAR",
    "balance": "DECIMAL(12,2)",
    "score": "DOUBLE",
    "active": "BOOLEAN",
    "updated_at": "TIMESTAMP",
}
FIRST = ["Alice", "Bruno", "Chiara", "Dmitri", "Emeka", "Fatima", "Giulia", "Hiroshi"]
LAST = ["Martin", "Schmidt", "Rossi", "Tanaka", "Okafor", "Silva", "Novak", "Haddad"]
COUNTRIES = ["FR", "DE", "IT", "JP", "NG", "BR", "CZ", "LB"]
CHANGE_STEP = 30  # 10% of rows change: one in 30 each updated, deleted and added

# The model with a list column, for the Hightouch-style template: the customers and 0-3 tags.
TAGGED_TABLE = "customers_tagged"
TAGGED_SAMPLE = "customers_tagged_sample"  # its first rows (run.py --liquid-rows), for Liquid
TAGS = ["vip", "newsletter", "beta", "b2b", "churn-risk", "wholesale", "early-adopter"]
# The kind of template a Hightouch Kafka destination is given: nesting, filters, an `if`,
# a `for` over the list column, a date format and the run's time.
HIGHTOUCH_TEMPLATE_FILE = "templates/customer_hightouch.json.liquid"
HIGHTOUCH_TEMPLATE = """\
{
  "type": "customer_{{ event }}",
  "customer": {
    "id": {{ row.id | json }},
    "name": "{{ row.name }}",
    "email": "{{ row.email | downcase }}",
    "country": "{{ row.country | upcase }}"
  },
  "balance": {{ row.balance | json }},
  {% if row.active %}"status": "active",{% else %}"status": "inactive",{% endif %}
  "tags": [{% for tag in row.tags %}"{{ tag }}"{% unless forloop.last %},{% endunless %}{% endfor %}],
  "updated": "{{ row.updated_at | date: '%Y-%m-%d %H:%M' }}",
  "synced_at": "{{ run.started_at }}"
}
"""  # noqa: E501

# Liquid template giving the same JSON document as the columns mode; DuckDB builds it.
TEMPLATE = "{" + ", ".join(f'"{c}": {{{{ row.{c} | json }}}}' for c in COLUMNS) + "}"
# The same document from a template with a tag, rendered by Liquid (`compile: false`).
LIQUID_TEMPLATE = TEMPLATE.replace(
    "{{ row.active | json }}", "{% if row.active %}true{% else %}false{% endif %}"
)


def _sql_list(values: list[str]) -> str:
    return "[" + ", ".join(quote_literal(v) for v in values) + "]"


def _rows_sql(rows: int, first_id: int = 0) -> str:
    """SELECT producing `rows` deterministic rows with ids from first_id."""
    first, last, countries = _sql_list(FIRST), _sql_list(LAST), _sql_list(COUNTRIES)
    return f"""
        SELECT
            i AS id,
            {first}[1 + i % 8] || ' ' || {last}[1 + (i // 8) % 8] AS name,
            lower({first}[1 + i % 8]) || '.' || lower({last}[1 + (i // 8) % 8])
                || i || '@example-mail.com' AS email,
            {countries}[1 + (i // 64) % 8] AS country,
            ((i * 7919) % 10000000 / 100)::DECIMAL(12,2) AS balance,
            (i * 2654435761 % 1000003) / 997.0 AS score,
            i % 3 <> 0 AS active,
            TIMESTAMP '2024-01-01 00:00:00' + to_microseconds(i * 1234567) AS updated_at
        FROM (SELECT range + {first_id} AS i FROM range({rows}))
    """


def payload_sql(source: str) -> str:
    """The JSON document the columns mode builds, as one SQL expression over `source`."""
    pairs = ", ".join(
        f"{quote_literal(c)}, {json_value(quote_identifier(c), t)}" for c, t in COLUMNS.items()
    )
    return f"SELECT id, CAST(json_object({pairs}) AS VARCHAR) AS {PAYLOAD_COLUMN} FROM {source}"


def build_warehouse(
    path: Path, rows: int, payloads: bool = True, tagged_sample: int | None = None
) -> None:
    """Create the model table and (unless payloads is False) the model with a JSON column.

    With `tagged_sample`, also the model with tags and a table of its first rows.
    """
    with duckdb.connect(str(path)) as con:
        con.execute(f"CREATE TABLE {TABLE} AS {_rows_sql(rows)}")
        if payloads:
            con.execute(f"CREATE TABLE {PAYLOAD_TABLE} AS {payload_sql(TABLE)}")
        if tagged_sample is not None:
            con.execute(f"CREATE TABLE {TAGGED_TABLE} AS {_tagged_sql(TABLE)}")
            con.execute(
                f"CREATE TABLE {TAGGED_SAMPLE} AS SELECT * FROM {TAGGED_TABLE}"
                f" WHERE id < {tagged_sample}"
            )
        con.execute("CHECKPOINT")


def _tagged_sql(source: str) -> str:
    """The rows of `source` with 0-3 distinct tags each (a step prime to the vocabulary)."""
    tags = _sql_list(TAGS)
    return (
        f"SELECT *, list_transform(range(id % 4),"
        f" lambda j: {tags}[1 + (id + j * 3) % {len(TAGS)}]) AS tags FROM {source}"
    )


def export_payloads(warehouse: Path, parquet: Path, lines: Path) -> float:
    """Write every row's JSON payload to a Parquet file and a text file, one per line.

    Returns the average payload size in bytes. JSON text holds no raw newline, so the
    text file is a valid --payload-file for Kafka's ProducerPerformance.
    """
    with duckdb.connect(str(warehouse), read_only=True) as con:
        query = f"SELECT {PAYLOAD_COLUMN} FROM {PAYLOAD_TABLE} ORDER BY id"
        con.execute(f"COPY ({query}) TO {quote_literal(str(parquet))} (FORMAT parquet)")
        payloads = [str(value) for (value,) in con.execute(query).fetchall()]
    lines.write_text("\n".join(payloads) + "\n", encoding="utf-8")
    return sum(len(p.encode()) for p in payloads) / len(payloads)


def change_rows(path: Path, rows: int) -> dict[str, int]:
    """Change 10% of the model's rows: a third each updated, deleted and added."""
    step = CHANGE_STEP
    with duckdb.connect(str(path)) as con:
        changed = _count(
            con,
            f"UPDATE {TABLE} SET email = 'new.' || email, score = score + 1 WHERE id % {step} = 0",
        )
        removed = _count(con, f"DELETE FROM {TABLE} WHERE id % {step} = 1")
        added = _count(
            con,
            f"INSERT INTO {TABLE} SELECT * REPLACE (id + {rows} AS id) FROM {TABLE}"
            f" WHERE id % {step} = 2 AND id < {rows}",
        )
        con.execute("CHECKPOINT")
    return {"added": added, "changed": changed, "removed": removed}


def _count(con: duckdb.DuckDBPyConnection, statement: str) -> int:
    result = con.execute(statement).fetchone()
    return int(result[0]) if result else 0


PROGRESS_TOPIC = "bench-progress"  # exactly-once markers


@dataclass(frozen=True)
class BenchModel:
    """One synced model of the benchmark project and how its messages are built."""

    name: str
    relation: str
    message: dict[str, Any] | None = None
    delivery: str | None = None  # the sync's `delivery`, when not the default
    optional: bool = False  # in the manifest only once enabled (BenchProject.enabled)


MODELS = {
    "columns": BenchModel("customers", TABLE),
    "columns_list": BenchModel("customers_columns", TABLE, {"columns": list(COLUMNS)}),
    "column": BenchModel("customers_json", PAYLOAD_TABLE, {"column": PAYLOAD_COLUMN}),
    "template": BenchModel("customers_template", TABLE, {"template": TEMPLATE}),
    "liquid": BenchModel(
        "customers_liquid", TABLE, {"template": LIQUID_TEMPLATE, "compile": False}
    ),
    "exactly_once": BenchModel("customers_exactly_once", TABLE, delivery="exactly_once"),
    "hightouch_columns": BenchModel("customers_tagged", TAGGED_TABLE, optional=True),
    "hightouch": BenchModel(
        "customers_hightouch",
        TAGGED_TABLE,
        {"template_file": HIGHTOUCH_TEMPLATE_FILE},
        optional=True,
    ),
    # `compile: false` makes Liquid render a template the tool could build in SQL.
    "hightouch_liquid": BenchModel(
        "customers_hightouch_liquid",
        TAGGED_SAMPLE,
        {"template_file": HIGHTOUCH_TEMPLATE_FILE, "compile": False},
        optional=True,
    ),
    "cprofile": BenchModel("customers_cprofiled", TABLE),
    "py-spy": BenchModel("customers_spied", TABLE),
}


@dataclass
class BenchProject:
    """A dbt project folder: its warehouse, profiles and a manifest rewritten per run."""

    root: Path
    bootstrap_servers: str
    topics: dict[str, str] = field(default_factory=dict)  # model name -> topic
    enabled: set[str] = field(default_factory=set)  # names of the optional models included

    def models(self) -> list[BenchModel]:
        """The models of the manifest: every one but the optional ones not enabled."""
        return [m for m in MODELS.values() if not m.optional or m.name in self.enabled]

    @property
    def warehouse(self) -> Path:
        return self.root / "warehouse.duckdb"

    def write(self) -> None:
        """Write dbt_project.yml, profiles.yml and the manifest."""
        (self.root / "target").mkdir(parents=True, exist_ok=True)
        project = {"name": PROJECT, "profile": PROJECT, "version": "1.0", "config-version": 2}
        _write_yaml(self.root / "dbt_project.yml", project)
        _write_yaml(self.root / "profiles.yml", self._profiles())
        template = self.root / HIGHTOUCH_TEMPLATE_FILE
        template.parent.mkdir(parents=True, exist_ok=True)
        template.write_text(HIGHTOUCH_TEMPLATE, encoding="utf-8")
        self.write_manifest()

    def _profiles(self) -> dict[str, Any]:
        warehouse = {"type": "duckdb", "path": str(self.warehouse), "threads": 1}
        kafka = {"bootstrap_servers": self.bootstrap_servers, "progress_topic": PROGRESS_TOPIC}
        return {
            PROJECT: {"target": "dev", "outputs": {"dev": warehouse}},
            "kafka_sync": {"target": "dev", "outputs": {"dev": kafka}},
        }

    def use_topic(self, model: BenchModel, topic: str) -> None:
        """Point a model's sync at a topic (a fresh one per measurement)."""
        self.topics[model.name] = topic
        self.write_manifest()

    def write_manifest(self) -> None:
        nodes = {}
        for model in self.models():
            topic = self.topics.get(model.name, f"not-yet-{model.name}")
            node = _manifest_node(model, topic, self.warehouse.stem)
            nodes[node["unique_id"]] = node
        manifest = {"metadata": {"dbt_schema_version": "bench"}, "nodes": nodes}
        text = json.dumps(manifest, indent=2)
        (self.root / "target" / "manifest.json").write_text(text, encoding="utf-8")


def _manifest_node(model: BenchModel, topic: str, database: str) -> dict[str, Any]:
    sync: dict[str, Any] = {"primary_key": "id", "topic": topic}
    if model.message is not None:
        sync["message"] = model.message
    if model.delivery is not None:
        sync["delivery"] = model.delivery
    return {
        "resource_type": "model",
        "unique_id": f"model.{PROJECT}.{model.name}",
        "name": model.name,
        "database": database,
        "schema": "main",
        "alias": model.relation,
        "original_file_path": f"models/{model.name}.sql",
        "config": {"meta": {"kafka_sync": sync}},
    }


def _write_yaml(path: Path, data: dict[str, Any]) -> None:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
