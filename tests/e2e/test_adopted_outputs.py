"""Outputs that exist without a record get one from `kflow build` (SPEC §2: adopted outputs).

Otherwise a team moving from Make would edit a command and nothing would ever rerun.
"""

from __future__ import annotations

from pathlib import Path

from tests.helpers import files_under, kflow, write_project

PROJECT = """
[project]
name = "t"
storage = "file://./data"

[tasks.report]
command = "sh -c 'echo v1 > {output}'"
outputs = ["{root}/report.txt"]
"""


def test_build_records_adopted_outputs_so_a_later_command_change_reruns(tmp_path: Path) -> None:
    write_project(tmp_path, PROJECT, **{"data__report.txt": "made by make\n"})
    plan = kflow("plan", "-C", tmp_path)
    assert plan.exit_code == 0, plan.output
    assert "`kflow build` will record it" in plan.stdout, plan.stdout
    assert not (tmp_path / "data/.kflow").exists()  # plan stays read-only

    built = kflow("build", "-C", tmp_path)
    assert built.exit_code == 0, built.output
    assert "recorded 1 up-to-date instance with outputs but no record" in built.stdout
    assert (tmp_path / "data/report.txt").read_text() == "made by make\n"  # nothing ran
    assert any(p.startswith(".kflow/records/") for p in files_under(tmp_path / "data"))

    again = kflow("plan", "-C", tmp_path)
    assert "no record" not in again.stdout, again.stdout  # recorded once, for good

    changed = PROJECT.replace("echo v1", "echo v2")
    write_project(tmp_path, changed)
    plan = kflow("plan", "-C", tmp_path)
    assert plan.exit_code == 0, plan.output
    assert "report  fingerprint changed: command" in plan.stdout, plan.stdout
