"""--select / --exclude / --state in dbt's syntax, on a real manifest written by `dbt parse`."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from dbt_kafka_sync.cli import main
from dbt_kafka_sync.dbt.manifest import load_manifest, synced_models
from dbt_kafka_sync.dbt.project import load_dbt_project
from dbt_kafka_sync.dbt.selection import Selection, select_models
from dbt_kafka_sync.errors import ConfigError, SyncError

UNUSED = "127.0.0.1:1"  # no broker: selection errors come before any connection
SYNC = {"kafka_sync": {"primary_key": "id", "topic": "t"}}
# name -> (folder, SQL, config); the synced ones carry SYNC.
MODELS = {
    "stg_customers": ("staging", "select 1 as id", {}),
    "customers": (
        "marts",
        "select * from {{ ref('stg_customers') }}",
        {"tags": ["crm"], "meta": SYNC},
    ),
    "orders": ("marts", "select 1 as id", {"materialized": "table", "meta": SYNC}),
    "customer_orders": (
        "marts",
        "select c.id from {{ ref('customers') }} c join {{ ref('orders') }} o using (id)",
        {"tags": ["crm"], "meta": SYNC},
    ),
    "customer_stats": ("other", "select * from {{ ref('customers') }}", {}),
}


def write_project(root: Path) -> None:
    (root / "dbt_project.yml").write_text(
        yaml.safe_dump({"name": "sel", "version": "1.0", "profile": "sel", "config-version": 2})
    )
    (root / "profiles.yml").write_text(
        yaml.safe_dump(
            {
                "sel": {
                    "target": "dev",
                    "outputs": {"dev": {"type": "duckdb", "path": ":memory:"}},
                },
                "kafka_sync": {"target": "dev", "outputs": {"dev": {"bootstrap_servers": UNUSED}}},
            }
        )
    )
    for name, (folder, sql, config) in MODELS.items():
        (root / "models" / folder).mkdir(parents=True, exist_ok=True)
        (root / "models" / folder / f"{name}.sql").write_text(sql)
        (root / "models" / folder / f"{name}.yml").write_text(
            yaml.safe_dump({"version": 2, "models": [{"name": name, "config": config}]})
        )


def dbt_parse(root: Path) -> None:
    dbt = str(Path(sys.executable).with_name("dbt"))
    subprocess.run(
        [dbt, "parse", "--project-dir", str(root), "--profiles-dir", str(root)],
        check=True,
        capture_output=True,
        env={"DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "PATH": ""},
    )


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("selection")
    write_project(root)
    dbt_parse(root)
    return root


def chosen(project: Path, selection: Selection) -> list[str]:
    dbt_project = load_dbt_project(project)
    models = synced_models(load_manifest(dbt_project.manifest_path))
    return sorted(m.name for m in select_models(models, selection, dbt_project))


ALL = ["customer_orders", "customers", "orders"]


@pytest.mark.parametrize(
    ("select", "exclude", "expected"),
    [
        pytest.param((), (), ALL, id="nothing-given-all"),
        pytest.param(("customers",), (), ["customers"], id="name"),
        pytest.param(("model.sel.orders",), (), ["orders"], id="unique-id"),
        pytest.param(("customers", "orders"), (), ["customers", "orders"], id="names-repeated"),
        pytest.param(("customers orders",), (), ["customers", "orders"], id="union-by-space"),
        pytest.param(("tag:crm",), (), ["customer_orders", "customers"], id="tag"),
        pytest.param(("path:models/marts",), (), ALL, id="path"),
        pytest.param(("marts",), (), ALL, id="folder-name"),
        pytest.param(("config.materialized:table",), (), ["orders"], id="config"),
        pytest.param(("+customer_orders",), (), ALL, id="parents"),
        pytest.param(("customers+",), (), ["customer_orders", "customers"], id="children"),
        pytest.param(("stg_customers+",), (), ["customer_orders", "customers"], id="unsynced+"),
        pytest.param(("1+customers",), (), ["customers"], id="parents-depth"),
        pytest.param(("@customers",), (), ALL, id="childrens-parents"),
        pytest.param(("tag:crm,customers+",), (), ["customer_orders", "customers"], id="and"),
        pytest.param(("tag:crm",), ("customers",), ["customer_orders"], id="exclude-name"),
        pytest.param((), ("orders",), ["customer_orders", "customers"], id="exclude-only"),
        pytest.param(("customers+",), ("tag:crm,customer_orders",), ["customers"], id="ex-and"),
        pytest.param(("model.sel.orders tag:crm",), (), ALL, id="unique-id-and-method"),
        pytest.param(("tag:crm",), ("model.sel.customers",), ["customer_orders"], id="ex-id"),
    ],
)
def test_selects_as_dbt_does(
    project: Path, select: tuple[str, ...], exclude: tuple[str, ...], expected: list[str]
) -> None:
    assert chosen(project, Selection(select, exclude)) == expected


@pytest.mark.parametrize(
    ("select", "message"),
    [
        pytest.param(("zzz",), "--select names no synced model: 'zzz'", id="unknown-name"),
        pytest.param(
            ("customers", "stg_customers"),
            "--select names no synced model: 'stg_customers'",
            id="unsynced-name",
        ),
        pytest.param(("foo:bar",), "'foo' is not a valid method name", id="unknown-method"),
        pytest.param(("@customers+",), "are incompatible", id="malformed"),
        pytest.param(("state:modified",), "no comparison manifest", id="state-without-state"),
    ],
)
def test_bad_selectors_are_clear_errors(
    project: Path, select: tuple[str, ...], message: str
) -> None:
    with pytest.raises(SyncError, match=message) as caught:
        chosen(project, Selection(select))
    if message.startswith("--select names"):
        synced = "synced models are: 'customer_orders', 'customers', 'orders'"
        assert synced in caught.value.render()


def test_a_method_that_selects_nothing_says_so(
    project: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="dbt_kafka_sync"):
        assert chosen(project, Selection(("tag:nope",))) == []
    assert "nothing is selected: --select 'tag:nope' matches no model" in caplog.text


def test_state_modified_compares_with_the_state_manifest(project: Path, tmp_path: Path) -> None:
    work = tmp_path / "project"
    shutil.copytree(project, work)
    state = tmp_path / "prod"
    shutil.copytree(work / "target", state)
    (work / "models" / "marts" / "orders.sql").write_text("select 2 as id")
    dbt_parse(work)

    assert chosen(work, Selection(("state:modified",), state_dir=state)) == ["orders"]
    assert chosen(work, Selection(("state:modified+",), state_dir=state)) == [
        "customer_orders",
        "orders",
    ]
    with pytest.raises(ConfigError, match=r"holds no manifest\.json"):
        chosen(work, Selection(("state:modified",), state_dir=tmp_path))


def test_names_need_no_dbt_import(project: Path) -> None:
    # dbt-core's import costs over a second: a run by name (or with no selector) skips it.
    script = (
        "import sys; from pathlib import Path;"
        "from dbt_kafka_sync.dbt.manifest import load_manifest, synced_models;"
        "from dbt_kafka_sync.dbt.project import load_dbt_project;"
        "from dbt_kafka_sync.dbt.selection import Selection, select_models;"
        f"project = load_dbt_project(Path({str(project)!r}));"
        "models = synced_models(load_manifest(project.manifest_path));"
        "select_models(models, Selection(('customers',), ('orders',)), project);"
        "print('dbt' in sys.modules);"
        "select_models(models, Selection(('tag:crm',)), project);"
        "print('dbt' in sys.modules)"
    )
    found = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    ).stdout.split()
    assert found == ["False", "True"]


@pytest.mark.parametrize("command", ["run", "plan", "copy-state", "debug"])
def test_every_command_reports_a_bad_selector_with_exit_1(project: Path, command: str) -> None:
    extra = ["--to", "local"] if command == "copy-state" else []
    result = CliRunner().invoke(
        main, [command, *extra, "--select", "tagg:crm", "--project-dir", str(project)]
    )
    assert "'tagg' is not a valid method name" in result.output
    assert "Traceback" not in result.output
    # debug reports it as a failed check among the others, exiting 1 at the end
    assert result.exit_code == 1, result.output
