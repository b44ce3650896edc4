"""The run record is rewritten while the run goes on, with a growing revision number."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.report.live import record_now, start_build, wait_for


def test_a_running_build_rewrites_its_record_every_few_seconds(tmp_path: Path) -> None:
    build = start_build(tmp_path)
    try:

        def holding() -> dict[str, Any] | None:
            record = record_now(tmp_path)
            if record and record["revision"] >= 1:
                entry = record["instances"]["hold"]
                return record if entry["status"] == "running" else None
            return None

        record = wait_for(holding, what="a rewritten record with `hold` running")
        assert record["status"] == "running"
        assert record["instances"]["first"]["status"] == "succeeded"
        assert record["instances"]["hold"]["ready"] is not None
        (tmp_path / "go").touch()
        assert build.wait(timeout=60) == 0
    finally:
        (tmp_path / "go").touch()
        build.wait(timeout=60)
    final = record_now(tmp_path)
    assert final is not None and final["status"] == "succeeded"
    assert final["revision"] > record["revision"]
