"""The page as one self-contained HTML file: CSS, script and data inline.

The Content-Security-Policy forbids every request except to the page's own origin
(which a file has none of; ``kflow ui`` polls itself), so an opened report fetches
nothing. Its one script and one style sheet are allowed by their SHA-256 hashes, not
``unsafe-inline``: a file has no server to make a nonce per load, and a hash works offline
and served alike; anything else inline (an injected ``<script>``, a ``style`` attribute)
does not run. Data goes in a JSON script block with ``<``, ``>`` and ``&`` escaped, and the
script builds the DOM with textContent: markup in a record always shows as text.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
from functools import cache
from importlib import resources
from typing import Any


@cache
def _asset(name: str) -> str:
    return (resources.files("kflow.report") / "static" / name).read_text(encoding="utf-8")


def _hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def content_security_policy() -> str:
    """Nothing but the page's own script and style (by hash), data: images, and requests
    to its own origin (``kflow ui``; a file has none)."""
    return (
        f"default-src 'none'; style-src {_hash(_asset('page.css'))}; "
        f"script-src {_hash(_asset('page.js'))}; img-src data:; connect-src 'self'"
    )


def script_json(data: Any) -> str:
    """JSON that is safe inside a <script> element (no ``</script>``, no ``<!--``)."""
    text = json.dumps(data, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(title: str, data: Any, config: dict[str, Any] | None = None) -> str:
    """The page for ``data`` (a run's model, or the runs list with ``mode: runs``)."""
    config = {"mode": "run", "live": None, **(config or {})}
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{content_security_policy()}">'
        '<meta name="viewport" content="width=device-width">'
        f"<title>{html.escape(title)}</title><style>{_asset('page.css')}</style></head>"
        f'<body><header>kflow \u00b7 {html.escape(title)}</header><main id="app"></main>'
        f'<script type="application/json" id="kflow-config">{script_json(config)}</script>'
        f'<script type="application/json" id="kflow-data">{script_json(data)}</script>'
        f"<script>{_asset('page.js')}</script></body></html>\n"
    )


def render_html(model: dict[str, Any]) -> str:
    run = model["run"]
    return render_page(f"run {run['run_id']} ({run['status'] or '—'})", model)
