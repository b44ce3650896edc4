"""An open `kflow ui` page of a running build updates without a reload."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.browser.conftest import Watch, playwright_api
from tests.report.live import record_now, start_build, wait_for
from tests.report.ui import running_ui

expect = playwright_api.expect


def test_a_live_update_reaches_an_open_ui_page(tmp_path: Path, watch: Watch) -> None:
    build = start_build(tmp_path)
    try:

        def holding() -> Any:
            record = record_now(tmp_path)
            return record and record["instances"]["hold"]["status"] == "running"

        wait_for(holding, what="`hold` running")
        with running_ui(tmp_path) as (url, _):
            page = watch.page
            page.goto(url)
            assert page.locator("#runs-table tr").count() == 1 + 1
            page.locator("#runs-table a").click()
            page.wait_for_selector("#summary")
            assert page.locator("#summary h2 .status").inner_text() == "running"
            page.evaluate("window.kflowNoReload = true")
            (tmp_path / "go").touch()
            status = page.locator("#summary h2 .status")
            expect(status).to_have_text("succeeded", timeout=60_000)  # polled, not reloaded
            assert page.evaluate("window.kflowNoReload") is True  # the same page, updated
            assert page.locator(".bar.attempt").count() == 3
            watch.clean()
    finally:
        (tmp_path / "go").touch()
        build.wait(timeout=60)
