"""The page as one self-contained HTML file: CSS, script and data inline.

The Content-Security-Policy forbids every request except to the page's own origin
(which a file has none of; ``kflow ui`` polls itself), so an opened report fetches
nothing. Data goes in a JSON script block with ``<``, ``>`` and ``&`` escaped, and the
script builds the DOM with textContent: markup in a record always shows as text.
"""

from __future__ import annotations

import html
import json
from importlib import resources
from typing import Any

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
    "img-src data:; connect-src 'self'"
)


def _asset(name: str) -> str:
    return (resources.files("kflow.report") / "static" / name).read_text(encoding="utf-8")


def script_json(data: Any) -> str:
    """JSON that is safe inside a <script> element (no ``</script>``, no ``<!--``)."""
    text = json.dumps(data, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(title: str, data: Any, config: dict[str, Any] | None = None) -> str:
    """The page for ``data`` (a run's model, or the runs list with ``mode: runs``)."""
    config = {"mode": "run", "live": None, **(config or {})}
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width">'
        f"<title>{html.escape(title)}</title><style>{_asset('page.css')}</style></head>"
        f'<body><header>kflow \u00b7 {html.escape(title)}</header><main id="app"></main>'
        f'<script type="application/json" id="kflow-config">{script_json(config)}</script>'
        f'<script type="application/json" id="kflow-data">{script_json(data)}</script>'
        f"<script>{_asset('page.js')}</script></body></html>\n"
    )


def render_html(model: dict[str, Any]) -> str:
    run = model["run"]
    return render_page(f"run {run['run_id']} ({run['status']})", model)
