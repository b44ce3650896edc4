"""Headless Chromium (Debian's ``chromium``) driven by playwright, for the report pages.

Every request a page makes is routed through ``Watch``: file:// and 127.0.0.1 go on,
anything else is aborted and recorded, and the tests assert that nothing was.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium")
ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]

if CHROMIUM is None:  # CI installs it (.ci/run); a machine without it skips, saying why
    pytest.skip("no `chromium` on PATH (apt-get install chromium)", allow_module_level=True)
playwright_api = pytest.importorskip("playwright.sync_api")


@dataclass
class Watch:
    """A page and what it asked for and threw."""

    page: Any
    outside: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def clean(self) -> None:
        assert self.outside == [], f"requests outside file:// and 127.0.0.1: {self.outside}"
        assert self.errors == [], f"page errors: {self.errors}"


def _local(url: str) -> bool:
    return url.startswith(("file://", "http://127.0.0.1:", "data:", "about:"))


def _csp(text: str) -> bool:
    return "Content Security Policy" in text


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def watch(browser: Any) -> Iterator[Watch]:
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(30_000)
    seen = Watch(page)

    def route(r: Any) -> None:
        if _local(r.request.url):
            r.continue_()
        else:
            seen.outside.append(r.request.url)
            r.abort()

    context.route("**/*", route)
    page.on("pageerror", lambda exc: seen.errors.append(str(exc)))
    # what the Content-Security-Policy blocked (an inline style or script it does not allow)
    page.on("console", lambda m: _csp(m.text) and seen.errors.append(f"console: {m.text}"))
    page.on("dialog", lambda d: (seen.errors.append(f"dialog: {d.message}"), d.dismiss()))
    yield seen
    context.close()
