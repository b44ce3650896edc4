"""Make examples/screenshots/report.png, the README's picture of a report: build the small
demo project of the report tests (a fan-out, a retried failure), write its report, and let headless
Chromium photograph it. Run from the repository root:

    python tests/report/make_screenshot.py
"""

from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.helpers import kflow  # noqa: E402
from tests.report.project import built_project  # noqa: E402

ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking"]


def main() -> None:
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="kflow-shot-"))
    try:
        built_project(folder)
        out = folder / "report.html"
        assert kflow("report", "-C", folder, "-o", out).exit_code == 0
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=ARGS)
            page = browser.new_page(viewport={"width": 1000, "height": 1250})
            page.goto(out.as_uri())
            page.locator('svg .task-node[data-task="flaky"] text').first.click()
            page.evaluate("window.scrollTo(0, 0)")
            target = ROOT / "examples" / "screenshots" / "report.png"
            page.screenshot(path=str(target))
            browser.close()
        print(f"wrote {target.relative_to(ROOT)}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
