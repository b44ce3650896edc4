"""The page's limits, in Chromium: capped log tails with their note, control characters
shown escaped, a CSP that runs nothing inline but the page's own script and style, records
of an older shape, and `kflow ui` refusing a page that reached it under another name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.browser.conftest import ARGS, CHROMIUM, Watch
from tests.helpers import kflow, write_project
from tests.report.caps import built_caps, run_id
from tests.report.live import wait_for
from tests.report.project import built_project
from tests.report.test_report_records import OLD_ID, OLD_RECORD
from tests.report.ui import running_ui


def _open(folder: Path, watch: Watch, *run: str) -> None:
    out = folder / "report.html"
    result = kflow("report", *run, "-C", folder, "-o", out)
    assert result.exit_code == 0, result.output
    watch.page.goto(out.as_uri())
    watch.page.wait_for_selector("#summary")


def _show(watch: Watch, instance: str) -> str:
    watch.page.locator("#instance-table .link", has_text=instance).first.click()
    return str(watch.page.locator("#log-tail").inner_text())


def test_a_6_mb_log_line_shows_as_4_kb_and_a_note_and_escapes_show_as_text(
    tmp_path: Path, watch: Watch
) -> None:
    built_caps(tmp_path)
    _open(tmp_path, watch)
    assert (tmp_path / "report.html").stat().st_size < 60_000
    tail = _show(watch, "huge")
    assert tail.startswith(f"\u2026 6.0 MB more; kflow logs {run_id(tmp_path)} huge\n")
    assert set(tail.split("\n", 1)[1]) == {"\u20ac"}  # cut between characters, never inside
    assert _show(watch, "noisy").endswith("100\nesc \\x1b[2J nul \\x00 end")
    names = watch.page.locator("#instance-table").inner_text()
    assert 'named[note="\\x1b]0;pwned\\x07"]' in names
    watch.clean()


def test_the_csp_runs_the_pages_own_script_and_style_only(tmp_path: Path, watch: Watch) -> None:
    built_project(tmp_path)
    _open(tmp_path, watch)
    page = watch.page
    csp = page.locator('meta[http-equiv="Content-Security-Policy"]').get_attribute("content")
    assert csp is not None and "unsafe-inline" not in csp and "'sha256-" in csp
    assert page.locator(".bar.attempt").count() == 7  # its script ran, its bars are placed
    assert page.locator(".bar.attempt").first.evaluate("b => b.style.width") != ""
    watch.clean()  # and nothing of its own was refused
    injected = page.evaluate(
        """() => {
        const s = document.createElement("script");
        s.textContent = "window.injected = 1";
        document.body.appendChild(s);
        document.body.insertAdjacentHTML("beforeend", '<p id="red" style="color: red">x</p>');
        return [window.injected === undefined,
                getComputedStyle(document.getElementById("red")).color];
    }"""
    )
    assert injected[0] is True and injected[1] != "rgb(255, 0, 0)"  # neither ran
    assert any("Content Security Policy" in e for e in watch.errors)


def test_a_hand_written_record_of_an_older_shape_renders_with_dashes(
    tmp_path: Path, watch: Watch
) -> None:
    built_project(tmp_path)
    (tmp_path / f"data/.kflow/runs/{OLD_ID}.json").write_text(json.dumps(OLD_RECORD))
    _open(tmp_path, watch, OLD_ID)
    text = watch.page.locator("#summary").inner_text()
    assert "started / ended / took\t\u2014 / \u2014 / \u2014" in text
    assert "targets\t\u2014" in text
    watch.page.locator("#instance-table .link", has_text="fetch[region=eu]").click()
    assert "\u2014" in watch.page.locator("#attempts").inner_text()  # no start time
    watch.clean()


def test_a_page_that_reached_the_ui_under_another_name_is_refused(
    tmp_path: Path, browser: Any
) -> None:
    """DNS rebinding, for real: Chromium resolves rebind.test to 127.0.0.1, as an
    attacker's DNS would, and sends that name; the server answers 421, not the runs."""
    built_project(tmp_path)
    rebinding = browser.browser_type.launch(
        executable_path=CHROMIUM, args=[*ARGS, "--host-resolver-rules=MAP rebind.test 127.0.0.1"]
    )
    try:
        page = rebinding.new_page()
        with running_ui(tmp_path) as (url, _):
            port = url.rsplit(":", 1)[1].strip("/")
            response = page.goto(f"http://rebind.test:{port}/api/runs")
            assert response is not None and response.status == 421
            assert "runs" not in page.content()
            response = page.goto(f"http://localhost:{port}/api/runs")
            assert response is not None and response.status == 200
    finally:
        rebinding.close()


def test_the_instance_detail_shows_what_changed_old_and_new(tmp_path: Path, watch: Watch) -> None:
    from tests.report.test_report_changes import PROJECT

    write_project(tmp_path, PROJECT.replace("WORD", "one"))
    assert kflow("build", "-C", tmp_path).exit_code == 0
    write_project(tmp_path, PROJECT.replace("WORD", "two"))
    run = kflow("build", "-C", tmp_path).stdout.split()[2].rstrip(":")
    _open(tmp_path, watch, run)
    watch.page.locator("#instance-table .link", has_text="a").first.click()
    changes = watch.page.locator("#changes").inner_text()
    assert '- "echo one > data/a.txt"\n' in changes and '+ "echo two > data/a.txt"' in changes
    watch.clean()


def _reused_from_first_run(folder: Path) -> tuple[str, str]:
    """A second run's record, as kflow writes one, where fetch[region=eu] was built by the
    first run while this one waited for it: (first, second)."""
    built_project(folder)
    (path,) = (folder / "data/.kflow/runs").iterdir()
    record = json.loads(path.read_text())
    first, second = record["run_id"], record["run_id"][:-6] + "zzzzzz"
    record["run_id"] = second
    entry = record["instances"]["fetch[region=eu]"]
    entry.update(status="reused", detail=f"built by run {first} on vm pid 1", attempts=[])
    (path.parent / f"{second}.json").write_text(json.dumps(record))
    return first, second


def test_reused_from_run_x_is_a_note_in_a_report_file(tmp_path: Path, watch: Watch) -> None:
    first, second = _reused_from_first_run(tmp_path)
    _open(tmp_path, watch, second)
    text = watch.page.locator("#not-run").inner_text()
    assert f"built by run {first} on vm pid 1 (not in this file: kflow report {first})" in text
    assert watch.page.locator("#not-run a").count() == 0  # nothing to link to offline
    watch.clean()


def test_reused_from_run_x_links_to_its_page_in_kflow_ui(tmp_path: Path, watch: Watch) -> None:
    first, second = _reused_from_first_run(tmp_path)
    with running_ui(tmp_path) as (url, _):
        page = watch.page
        page.goto(f"{url}run/{second}")
        page.wait_for_selector("#summary")
        page.locator("#not-run a", has_text=f"open run {first}").click()
        page.wait_for_url(f"{url}run/{first}")
        assert f"Run {first}" in page.locator("#summary h2").first.inner_text()
        watch.clean()


def test_the_whole_log_arrives_intact_across_chunks(tmp_path: Path, watch: Watch) -> None:
    """6 MB of three-byte characters in 64 kB chunks: each chunk ends inside a character."""
    built_caps(tmp_path)
    with running_ui(tmp_path) as (url, _):
        page = watch.page
        page.goto(f"{url}run/{run_id(tmp_path)}")
        page.wait_for_selector("#summary")
        page.locator("#instance-table .link", has_text="huge").click()
        page.locator("#detail .link", has_text="whole log").click()
        length = "() => document.getElementById('log-tail').textContent.length"
        wait_for(lambda: page.evaluate(length) >= 2_000_001, what="the whole log")
        text = page.evaluate("document.getElementById('log-tail').textContent")
        assert text == "\u20ac" * 2_000_000 + "\n"
        watch.clean()
