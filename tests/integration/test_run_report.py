"""The results file and the HTML report of a real run, the report loaded in headless Chromium.

One run against the test broker, with two rows whose JSON is broken; one of them has a
`<script>` as its key, which the report must show as text, never run.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from harness import Kafka, Project, copy_example

SCRIPT_KEY = '<script>document.documentElement.setAttribute("data-pwned","1")</script>'
SCRIPT_VALUE = '{"note": "</script><script>document.title=\'pwned\'</script>"}'
PROFILES = f"""
select
    case when id = 3 then '{SCRIPT_KEY}' else cast(id as varchar) end as id,
    case
        when id in (3, 4) then '{{broken'
        when id = 2 then '{SCRIPT_VALUE.replace("'", "''")}'
        else {{{{ dbt_kafka_sync.json_payload(['id', 'full_name', 'country']) }}}}
    end as payload
from {{{{ ref('customers') }}}}
"""


@dataclass(frozen=True)
class Reported:
    """The run, its results file and its report."""

    project: Project
    run: subprocess.CompletedProcess[str]
    results: dict[str, Any]
    report: Path


@pytest.fixture(scope="module")
def reported(tmp_path_factory: pytest.TempPathFactory, kafka: Kafka) -> Reported:
    project = copy_example(tmp_path_factory.mktemp("report") / "project", kafka)
    project.write_model("customer_profiles", PROFILES)
    project.build(kafka, ("customers", "customer_profiles"))
    run = project.sync("--select", "customers", "--select", "customer_profiles")
    assert run.returncode == 1, run.stdout + run.stderr
    results = json.loads((project.path / "target" / "kafka_sync_results.json").read_text())
    made = project.sync("report")
    assert made.returncode == 0, made.stderr
    report = Path(made.stdout.strip().rsplit(": ", 1)[1])
    return Reported(project, run, results, report)


def browser() -> str:
    """Debian's chromium; the test command's set-up (.ci/run) installs it."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def rendered_dom(page: Path, fragment: str = "") -> str:
    """The page's DOM after its scripts ran, as headless Chromium dumps it."""
    url = page.resolve().as_uri() + fragment
    command = [browser(), "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout


class Elements(HTMLParser):
    """The attributes of each element, and the text of those with data-field or data-total."""

    def __init__(self, dom: str) -> None:
        super().__init__()
        self.elements: list[dict[str, str | None]] = []
        self.texts: list[tuple[dict[str, str | None], str]] = []
        self._open: list[dict[str, str | None]] = []
        self.title = ""  # the page's, not a chart's <title>
        self.feed(dom)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = {"tag": tag, **dict(attrs)}
        self.elements.append(element)
        if "data-field" in element or "data-total" in element:
            self._open.append(element)
            self.texts.append((element, ""))

    def handle_data(self, data: str) -> None:
        if (
            self.elements
            and self.elements[-1]["tag"] == "title"
            and self.elements[-1] is self.first("title")
        ):
            self.title += data
        if self._open and self.texts and self.texts[-1][0] is self._open[-1]:
            self.texts[-1] = (self.texts[-1][0], self.texts[-1][1] + data)

    def handle_endtag(self, tag: str) -> None:
        if self._open and self._open[-1]["tag"] == tag:
            self._open.pop()

    def first(self, tag: str) -> dict[str, str | None]:
        return next(element for element in self.elements if element["tag"] == tag)

    def key_rows(self) -> list[dict[str, str | None]]:
        return [element for element in self.elements if "data-key" in element]

    def number(self, attribute: str, name: str) -> int:
        texts = [text for element, text in self.texts if element.get(attribute) == name]
        return sum(int(text.replace(",", "")) for text in texts)


def test_results_file_names_each_sync_and_its_failed_rows(reported: Reported) -> None:
    results, run = reported.results, reported.run
    run_id = re.search(r"run (\S+) \(details", run.stdout)
    assert run_id is not None
    assert results["metadata"]["run_id"] == run_id.group(1)
    assert results["metadata"]["command"] == "run"
    assert results["metadata"]["args"]["select"] == ["customers", "customer_profiles"]
    assert results["status"] == "failed"
    by_model = {entry["model"]: entry for entry in results["results"]}
    assert by_model["customers"]["status"] == "success"
    profiles = by_model["customer_profiles"]
    assert profiles["status"] == "partial"
    assert profiles["unique_id"].endswith(".customer_profiles")
    counts = profiles["messages"]
    line = f"{counts['delivered']} delivered, {counts['failed']} failed"
    assert f"customer_profiles -> {profiles['topic']}: 5 added" in run.stdout
    assert line == "3 delivered, 2 failed" and line in run.stdout
    keys = {row["key"] for row in profiles["failed_rows"]}
    assert keys == {SCRIPT_KEY, "4"}
    assert all("not valid JSON" in row["reason"] for row in profiles["failed_rows"])
    assert profiles["timing"]["elapsed_time"] > 0


def test_a_run_stopped_by_an_error_leaves_a_results_file_saying_so(reported: Reported) -> None:
    stopped = reported.project.sync("--target", "nowhere")

    assert stopped.returncode == 1
    results = json.loads((reported.project.path / "target" / "kafka_sync_results.json").read_text())
    assert results["status"] == "error"
    assert "nowhere" in results["error"] and results["error"] in stopped.stderr
    assert results["results"] == []


def test_report_loads_without_errors_and_shows_the_run(reported: Reported) -> None:
    page = Elements(rendered_dom(reported.report))

    html = page.first("html")
    assert html.get("data-js-errors") is None, html.get("data-js-errors")
    assert html.get("data-ready") == "true"  # the page's script ran to its end
    assert "data-pwned" not in html  # the key's <script> was shown, not run
    entries = reported.results["results"]
    for name in ("delivered", "failed", "rejected", "published"):
        expected = sum(entry["messages"][name] for entry in entries)
        assert page.number("data-total", name) == expected, name
        assert page.number("data-field", name) == expected, name
    assert page.number("data-total", "added") == sum(e["counts"]["added"] for e in entries)
    shown_keys = [text for element, text in page.texts if element.get("data-field") == "key"]
    assert SCRIPT_KEY in shown_keys
    values = [text for element, text in page.texts if element.get("data-field") == "value"]
    assert SCRIPT_VALUE in values  # the message log's sample, shown as text
    assert page.title == "dbt-kafka-sync run " + reported.results["metadata"]["run_id"]
    charts = [element for element in page.elements if element["tag"] == "circle"]
    assert charts, "the send rate chart has no point"


def test_key_search_filters_the_rows(reported: Reported) -> None:
    everything = Elements(rendered_dom(reported.report)).key_rows()
    found = Elements(rendered_dom(reported.report, "#key=%3Cscript"))

    shown = [row for row in found.key_rows() if "hidden" not in row]
    assert shown and {row["data-key"] for row in shown} == {SCRIPT_KEY}
    assert len(found.key_rows()) == len(everything) > len(shown)
    assert all("hidden" not in row for row in everything)


def test_a_plan_writes_its_results_too(reported: Reported) -> None:
    planned = reported.project.sync("plan", "--select", "customers")

    assert planned.returncode == 0, planned.stderr
    results = json.loads((reported.project.path / "target" / "kafka_sync_results.json").read_text())
    assert (results["metadata"]["command"], results["status"]) == ("plan", "success")
    (entry,) = results["results"]
    assert entry["counts"] == {"added": 0, "changed": 0, "removed": 0}  # all delivered before
    assert entry["messages"]["published"] == 0
