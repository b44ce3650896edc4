"""The `kflow report` HTML page in headless Chromium: offline, counts, clicks, escaping."""

from __future__ import annotations

import json
from pathlib import Path

from tests.browser.conftest import Watch
from tests.helpers import kflow
from tests.report.project import MARKUP, built_project


def _open_report(folder: Path, watch: Watch) -> None:
    out = folder / "report.html"
    result = kflow("report", "-C", folder, "-o", out)
    assert result.exit_code == 0, result.output
    watch.page.goto(out.as_uri())
    watch.page.wait_for_selector("#summary")


def test_the_report_draws_one_node_per_task_and_one_bar_per_attempt(
    tmp_path: Path, watch: Watch
) -> None:
    built_project(tmp_path)
    _open_report(tmp_path, watch)
    page = watch.page
    assert page.locator("svg .task-node").count() == 3  # fetch, flaky, summary
    assert page.locator(".bar.attempt").count() == 3 + 2 + 2  # the retry has its own bar
    assert page.locator(".bar.attempt.failed").count() == 2
    assert page.locator(".tl-row.critical").count() == 2  # fetch[us] → flaky[us]
    # the first failure and its log tail come first
    assert "flaky[region=us]" in page.locator("#first-failure").inner_text()
    assert "boom-us-tail" in page.locator("#summary pre.log").inner_text()
    watch.clean()


def test_a_click_on_a_failed_task_shows_its_log_tail(tmp_path: Path, watch: Watch) -> None:
    built_project(tmp_path)
    _open_report(tmp_path, watch)
    page = watch.page
    assert "boom-us-tail" not in page.locator("#detail").inner_text()
    page.locator('svg .task-node[data-task="flaky"] text').first.click()  # its name
    assert "flaky[region=us]" in page.locator("#detail h2").inner_text()
    assert "boom-us-tail" in page.locator("#log-tail").inner_text()
    assert page.locator("#attempts tr").count() == 1 + 2
    page.locator("svg .pin", has_text="fetch[region=eu]").click()  # a pinned instance
    assert "raw-eu.txt\t3\t" in page.locator("#outputs").inner_text()  # size and stamp
    # the instances table filters by task and status
    page.select_option("#filter-status", "failed")
    assert page.locator("#instance-table tr").count() == 1 + 1
    watch.clean()


def test_the_diff_of_two_runs_shows_in_the_page(tmp_path: Path, watch: Watch) -> None:
    built_project(tmp_path)
    first = sorted(p.stem for p in (tmp_path / "data/.kflow/runs").iterdir())[0]
    kflow("build", "-C", tmp_path, "-k", "-B")
    out = tmp_path / "diff.html"
    assert kflow("report", "-C", tmp_path, "--against", first, "-o", out).exit_code == 0
    watch.page.goto(out.as_uri())
    text = watch.page.locator("#against").inner_text()
    assert f"Compared with run {first}" in text and "new failures (0)" in text
    assert watch.page.locator("#task-times tr").count() == 1 + 3  # fetch, flaky, summary
    watch.clean()


def test_markup_in_a_parameter_shows_as_text(tmp_path: Path, watch: Watch) -> None:
    built_project(tmp_path)
    _open_report(tmp_path, watch)
    page = watch.page
    assert page.evaluate("document.querySelectorAll('img').length") == 0
    assert MARKUP in page.locator("#not-run").inner_text()
    watch.clean()  # no alert() dialog either


def test_the_request_guard_catches_a_request_to_another_host(watch: Watch) -> None:
    """So that "no request outside" above means something."""
    watch.page.set_content('<img src="http://example.invalid/x.png">')
    watch.page.wait_for_load_state()
    assert watch.outside == ["http://example.invalid/x.png"]


def test_a_record_from_an_older_kflow_renders_with_dashes(tmp_path: Path, watch: Watch) -> None:
    built_project(tmp_path)
    (path,) = (tmp_path / "data/.kflow/runs").iterdir()
    record = json.loads(path.read_text())
    for key in ("revision", "up_to_date"):
        del record[key]
    for entry in record["instances"].values():
        for key in ("requires", "ready", "why", "outputs"):
            del entry[key]
        for attempt in entry["attempts"]:
            del attempt["free"]
    path.write_text(json.dumps(record))
    _open_report(tmp_path, watch)
    page = watch.page
    assert page.locator("svg .task-node").count() == 3
    assert page.locator("svg .edge").count() == 0  # no edges recorded then
    page.locator('svg .task-node[data-task="flaky"] text').first.click()
    assert "ready\t—" in page.locator("#detail").inner_text()
    watch.clean()
