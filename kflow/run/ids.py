"""Names the runner gives things: run ids sortable by time, file-safe instance names."""

from __future__ import annotations

import hashlib
import re
import secrets
import time

_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+-]+")


def new_run_id(now: float | None = None) -> str:
    """``20261125T031500Z-ab12cd``: UTC start time first, so names sort by time."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now is None else now))
    return f"{stamp}-{secrets.token_hex(3)}"


def safe_name(text: str, limit: int = 150) -> str:
    """A file name for an instance id: readable, unique, no separators or brackets.

    ``clean[region=eu]`` becomes ``clean_region=eu_-1f2e3d``: the hash of the
    original text keeps two ids that clean up alike apart.
    """
    cleaned = _UNSAFE.sub("_", text).strip(".")
    if cleaned == text and len(text) <= limit:
        return text
    digest = hashlib.sha256(text.encode()).hexdigest()[:6]
    return f"{cleaned[:limit]}-{digest}"
