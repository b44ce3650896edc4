"""Worker for process races: kept apart from the tests so that a spawned child imports
only kflow.storage (not pytest, moto and flask), and starts in a fraction of a second."""

from __future__ import annotations

from typing import Any

from kflow.storage import Storage


def create_in_process(
    project: str, options: dict[str, Any], lease: str, name: str, start: Any, out: Any
) -> None:
    """Build a Storage, wait for the others, then try to take ``lease``; report the result."""
    storage = Storage(project, options)
    storage.stat_many([lease])  # warm up before the start line, so the race is the create
    start.wait()
    out.put((name, storage.create_exclusive(lease, name.encode())))
