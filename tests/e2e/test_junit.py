"""`kflow build --junit FILE`: the run as JUnit XML that CI systems read."""

from __future__ import annotations

from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import xmlschema

from tests.helpers import kflow, write_project

SCHEMA = xmlschema.XMLSchema(str(Path(__file__).parent / "fixtures" / "junit.xsd"))

PROJECT = r"""
[project]
name = "ci"
storage = "file://./data"

[tasks.ok]
command = "sh -c 'echo fine > {output}'"
outputs = ["{root}/ok.txt"]

[tasks.bad]
command = ["sh", "-c", "echo first line; printf 'colour \\033[31m red\\n'; echo boom >&2; exit 3"]
outputs = ["{root}/bad.txt"]

[tasks.after]
requires = ["bad"]
command = "sh -c 'echo x > {output}'"
outputs = ["{root}/after.txt"]

[tasks.all]
requires = ["ok", "after"]
command = "sh -c 'echo x > {output}'"
outputs = ["{root}/all.txt"]
"""


def _cases(report: Path) -> dict[str, ET.Element]:
    SCHEMA.validate(str(report))  # raises with the offending element if CI could not read it
    root = ET.parse(report).getroot()
    return {case.attrib["name"]: case for case in root.iter("testcase")}


def test_junit_has_a_case_per_instance_with_failure_reason_and_log_tail(tmp_path: Path) -> None:
    write_project(tmp_path, PROJECT)
    report = tmp_path / "report.xml"
    result = kflow("build", "-C", tmp_path, "-k", "--junit", report, "all")
    assert result.exit_code == 1, result.output
    cases = _cases(report)
    assert set(cases) == {"ok", "bad", "after", "all"}
    assert list(cases["ok"]) == [] or all(c.tag == "system-out" for c in cases["ok"])
    assert float(cases["ok"].attrib["time"]) >= 0  # seconds, as CI systems read them
    failure = cases["bad"].find("failure")
    assert failure is not None
    assert "exit code 3" in failure.attrib["message"]
    assert failure.attrib["type"] == "exit 3"
    assert failure.text is not None and "boom" in failure.text and "first line" in failure.text
    for name in ("after", "all"):
        skipped = cases[name].find("skipped")
        assert skipped is not None and "bad" in skipped.attrib["message"]
    suite = ET.parse(report).getroot().find("testsuite")
    assert suite is not None
    assert (suite.attrib["tests"], suite.attrib["failures"], suite.attrib["skipped"]) == (
        "4",
        "1",
        "2",
    )


def test_junit_of_a_successful_build_then_of_an_up_to_date_one(tmp_path: Path) -> None:
    write_project(tmp_path, PROJECT)
    report = tmp_path / "report.xml"
    assert kflow("build", "-C", tmp_path, "--junit", report, "ok").exit_code == 0
    cases = _cases(report)
    assert list(cases) == ["ok"]
    assert cases["ok"].find("failure") is None and cases["ok"].find("skipped") is None
    assert kflow("build", "-C", tmp_path, "--junit", report, "ok").exit_code == 0
    assert _cases(report) == {}  # nothing ran: an empty, valid report


def test_junit_in_a_missing_folder_is_bad_usage_and_runs_nothing(tmp_path: Path) -> None:
    write_project(tmp_path, PROJECT)
    result = kflow("build", "-C", tmp_path, "--junit", tmp_path / "nowhere/report.xml", "ok")
    assert result.exit_code == 2
    assert "--junit" in result.output and "does not exist" in result.output
    assert not (tmp_path / "data/ok.txt").exists()


@pytest.mark.parametrize("flag", ["-n", "-q"])
def test_junit_is_not_written_when_nothing_is_run_on_purpose(tmp_path: Path, flag: str) -> None:
    write_project(tmp_path, PROJECT)
    report = tmp_path / "report.xml"
    kflow("build", "-C", tmp_path, flag, "--junit", report, "ok")
    assert not report.exists()
