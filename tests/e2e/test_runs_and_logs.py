"""`kflow runs` and `kflow logs`: what a cron run did, read back from the project's storage."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.test_build import _project, cli, kflow


def test_runs_and_logs_show_what_happened(tmp_path: Path) -> None:
    _project(tmp_path)
    kflow(tmp_path)
    code, out = cli("runs", "-C", str(tmp_path))
    assert code == 0 and "succeeded" in out
    run_id = out.split()[0]
    code, out = cli("runs", "show", run_id[:10], "-C", str(tmp_path))
    assert code == 0 and "shout[loud=2,who=world]" in out and "exit 0" in out
    code, out = cli("logs", "-C", str(tmp_path), "shout[loud=2]")
    assert code == 0 and out == "shouting 2\n"
    code, out = cli("logs", "-C", str(tmp_path), run_id, "report")
    assert code == 0 and json.loads(out) == {"0": "data/report-world.txt"}


def test_runs_lists_newest_first_and_logs_picks_the_latest_run_with_the_instance(
    tmp_path: Path,
) -> None:
    _project(tmp_path)
    kflow(tmp_path, "greet")
    kflow(tmp_path, "greet", "-B")
    code, out = cli("runs", "-C", str(tmp_path))
    ids = [line.split()[0] for line in out.splitlines()]
    assert code == 0 and len(ids) == 2
    started = [
        json.loads(cli("runs", "show", i, "-C", str(tmp_path), "--json")[1])["started"] for i in ids
    ]
    assert started[0] >= started[1]  # newest first, even when both started in one second
    code, out = cli("runs", "show", "latest", "-C", str(tmp_path), "--json")
    assert json.loads(out)["run_id"] == ids[0]
    code, out = cli("runs", "-C", str(tmp_path), "show", ids[1], "--json")
    assert code == 0 and json.loads(out)["run_id"] == ids[1]
    code, out = cli("logs", "-C", str(tmp_path), "nope")
    assert code == 2


def test_logs_of_a_failed_attempt_are_kept_per_attempt(tmp_path: Path) -> None:
    (tmp_path / "kflow.toml").write_text(
        '[project]\nname = "t"\n[tasks.f]\nretries = 1\nretry_delay = 0.01\n'
        'outputs = ["f.txt"]\ncommand = "sh -c \'echo try; exit 2\'"\n'
    )
    code, _ = kflow(tmp_path)
    assert code == 1
    code, out = cli("logs", "-C", str(tmp_path), "f", "--attempt", "1")
    assert code == 0 and out == "try\n"
    code, out = cli("runs", "show", "latest", "-C", str(tmp_path))
    assert "attempt 2: failed, exit 2" in out


def test_a_record_of_another_shape_is_left_out_and_the_others_still_show(tmp_path: Path) -> None:
    # not a record (no object with a run id): left out; a field of the wrong type: "—"
    _project(tmp_path)
    kflow(tmp_path)
    runs = tmp_path / "data/.kflow/runs"
    (runs / "20261128T000000Z-arr001.json").write_text("[]")  # valid JSON, not a record
    (runs / "20261128T000001Z-str001.json").write_text(
        json.dumps({"run_id": "20261128T000001Z-str001", "started": "yesterday"})
    )
    code, out = cli("runs", "-C", str(tmp_path))
    assert code == 0 and "succeeded" in out, out
    assert "arr001" not in out
    (shown,) = [line for line in out.splitlines() if "str001" in line]
    assert " — " in shown, out
    code, out = cli("report", "-C", str(tmp_path), "--format", "md", "-o", str(tmp_path / "r.md"))
    assert code == 0, out
    code, out = cli("report", "-C", str(tmp_path), "20261128T000000Z-arr001", "--format", "md")
    assert code == 2 and "unreadable" in out, out
