"""`kflow build --junit FILE`: a run record as JUnit XML, the test report CI systems display.

One ``<testcase>`` per instance of the run: passed (succeeded, or reused from another
run), ``<failure>`` with the reason and the log's tail, ``<skipped>`` (not started after a
failure, or held by another run), ``<error>`` (interrupted, cancelled). The shape is the
Surefire/Jenkins one that GitHub Actions reporters, GitLab and Jenkins read.
"""

from __future__ import annotations

import re
import socket
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING
from xml.etree import ElementTree as ET

from kflow.cli.outfile import check_output_path, write_output
from kflow.model import parse_instance_id
from kflow.storage import Storage

if TYPE_CHECKING:  # the run layer loads only when something runs
    from kflow.run.records import InstanceRecord, RunRecord

PASSED = ("succeeded", "reused")
SKIPPED = ("skipped", "held", "queued")
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _task_name(instance: str) -> str:
    try:
        return parse_instance_id(instance).task
    except ValueError:
        return instance


def _seconds(entry: InstanceRecord) -> float:
    return sum(a.duration or 0.0 for a in entry.attempts)


def _case(name: str, entry: InstanceRecord, project: str, tail: str) -> ET.Element:
    from kflow.run.logtail import visible  # names with control characters: shown escaped

    case = ET.Element(
        "testcase",
        name=_xml_text(visible(name)),
        classname=_xml_text(visible(f"{project}.{_task_name(name)}")),
        time=f"{_seconds(entry):.3f}",
    )
    last = entry.attempts[-1] if entry.attempts else None
    why = _xml_text(entry.detail or (last.reason if last else "") or entry.status)
    if entry.status == "failed":
        code = "-" if last is None or last.exit_code is None else str(last.exit_code)
        failure = ET.SubElement(case, "failure", message=why, type=f"exit {code}")
        failure.text = _xml_text(tail)
    elif entry.status in SKIPPED:
        ET.SubElement(case, "skipped", message=why)
    elif entry.status not in PASSED:  # interrupted, cancelled, still running (killed)
        ET.SubElement(case, "error", message=why, type=entry.status)
    if last is not None and last.log:
        ET.SubElement(case, "system-out").text = f"log: {last.log}"
    return case


def _xml_text(text: str) -> str:
    """What XML 1.0 may hold: a log's escape sequences and NULs would make the file unreadable."""
    return _NOT_XML.sub("\ufffd", text)


def junit_xml(record: RunRecord | None, tails: Mapping[str, str], suite: str) -> bytes:
    """The run as one JUnit test suite (``record`` None: nothing ran, an empty suite).

    ``tails``: instance → the tail of its last attempt's log, for the failed ones.
    """
    cases = []
    if record is not None:
        for name, entry in record.instances.items():
            cases.append(_case(name, entry, record.project, tails.get(name, "")))
    statuses = [e.status for e in record.instances.values()] if record else []
    failures = statuses.count("failed")
    skipped = sum(statuses.count(s) for s in SKIPPED)
    errors = len(statuses) - failures - skipped - sum(statuses.count(s) for s in PASSED)
    started = record.started if record is not None else time.time()
    took = (record.duration or 0.0) if record is not None else 0.0
    attrs = {
        "name": suite,
        "tests": str(len(cases)),
        "failures": str(failures),
        "errors": str(errors),
        "skipped": str(skipped),
        "time": f"{took:.3f}",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(started)),
        "hostname": record.host if record is not None and record.host else socket.gethostname(),
    }
    if record is not None:
        attrs["id"] = record.run_id
    root = ET.Element("testsuites", name="kflow", tests=attrs["tests"], failures=str(failures))
    root.set("errors", attrs["errors"])
    root.set("time", attrs["time"])
    testsuite = ET.SubElement(root, "testsuite", attrs)
    testsuite.extend(cases)
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


def check_junit_path(path: Path, definitions: Iterable[Path] = ()) -> None:
    """Before anything runs: the report's folder must exist, and it is no definition file
    (exit 2 otherwise)."""
    check_output_path("--junit", path, definitions)


def failure_tails(record: RunRecord, storage: Storage) -> dict[str, str]:
    """The log tail of each failed instance's last attempt (one batched read)."""
    from kflow.run.logtail import log_tail

    wanted = {
        entry.attempts[-1].log: name
        for name, entry in record.instances.items()
        if entry.status == "failed" and entry.attempts and entry.attempts[-1].log
    }
    if not wanted:
        return {}
    found = storage.read_many(list(wanted))
    return {
        wanted[loc]: log_tail(data, record.run_id, wanted[loc])
        for loc, data in found.items()
        if data is not None
    }


def write_junit(
    path: Path,
    record: RunRecord | None,
    storage: Storage | None,
    suite: str,
    definitions: Iterable[Path] = (),
) -> None:
    tails = failure_tails(record, storage) if record is not None and storage is not None else {}
    write_output("--junit", path, junit_xml(record, tails, suite or "kflow"), definitions)
