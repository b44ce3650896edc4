"""A run record on storage is untrusted input (another user, an older kflow, a hand edit):
`kflow runs`, `logs`, `report` and `ui` read every field type- and range-checked, never a
path from it, and never show a traceback. One test per finding of the tester's round 3."""

from __future__ import annotations

import copy
import json
import os
import pty
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.helpers import data_project, kflow
from tests.report.ui import get, running_ui

FENCE = '[tasks.fence]\ncommand = "echo fence-log"\n'
DEADLINE = 60.0


def _built(folder: Path, tasks: str = FENCE) -> tuple[Path, dict[str, Any]]:
    data_project(folder, tasks)
    result = kflow("build", "-C", folder, "-B", "fence")
    assert result.exit_code == 0, result.output
    runs = folder / "data/.kflow/runs"
    (record,) = runs.glob("*.json")
    return runs, json.loads(record.read_text())


def _plant(runs: Path, raw: dict[str, Any], run_id: str, **changes: Any) -> dict[str, Any]:
    """A copy of ``raw`` as run ``run_id`` with ``changes`` (None: the key removed)."""
    planted = copy.deepcopy(raw)
    planted["run_id"] = run_id
    for key, value in changes.items():
        if value is None:
            planted.pop(key, None)
        else:
            planted[key] = value
    (runs / f"{run_id}.json").write_text(json.dumps(planted))
    return planted


def _attempt(planted: dict[str, Any]) -> dict[str, Any]:
    attempt: dict[str, Any] = planted["instances"]["fence"]["attempts"][0]
    return attempt


def _rewrite(runs: Path, planted: dict[str, Any]) -> None:
    (runs / f"{planted['run_id']}.json").write_text(json.dumps(planted))


def test_logs_are_read_only_where_kflow_stores_them_never_from_a_path_in_a_record(
    tmp_path: Path,
) -> None:
    runs, raw = _built(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("TOPSECRET\n")
    stored = _plant(runs, raw, "20261201T000001Z-aaaaaa")
    _attempt(stored)["log"] = "../../../../" + str(secret)
    _rewrite(runs, stored)
    local = _plant(runs, raw, "20261201T000002Z-bbbbbb", status="running", ended=None)
    _attempt(local).update(log="", log_here=str(secret), status="running", ended=None)
    _rewrite(runs, local)
    for run_id in (stored["run_id"], local["run_id"]):
        result = kflow("logs", "-C", tmp_path, run_id, "fence")
        assert result.exit_code == 2 and "TOPSECRET" not in result.output, result.output
    assert kflow("logs", "-C", tmp_path, raw["run_id"], "fence").stdout == "fence-log\n"
    with running_ui(tmp_path) as (url, _):
        for run_id in (stored["run_id"], local["run_id"]):
            status, _, body = get(f"{url}api/log/{run_id}/fence/1?offset=0")
            assert status == 404 and b"TOPSECRET" not in body
        assert get(f"{url}api/log/{raw['run_id']}/fence/1?offset=0")[2] == b"fence-log\n"


def test_a_record_whose_run_id_is_not_its_file_name_is_unreadable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs, raw = _built(tmp_path / "p")
    evil = dict(raw, run_id="x/../../adv3-evil")
    (runs / "20261201T000005Z-eeeeee.json").write_text(json.dumps(evil))
    work = tmp_path / "work"
    (work / "kflow-report-x").mkdir(parents=True)
    monkeypatch.chdir(work)
    result = kflow("report", "-C", tmp_path / "p", "20261201T000005Z")
    assert result.exit_code == 2 and "unreadable" in result.output, result.output
    assert not list(tmp_path.rglob("adv3-evil*"))
    listed = kflow("runs", "-C", tmp_path / "p")
    assert listed.exit_code == 0 and raw["run_id"] in listed.stdout
    assert "adv3-evil" not in listed.stdout


def test_fields_of_the_wrong_type_read_as_missing_never_a_traceback(tmp_path: Path) -> None:
    runs, raw = _built(tmp_path)
    run_id = "20261201T000004Z-dddddd"
    _plant(runs, raw, run_id, pid="1; rm -rf /", pid_start="x", status="running", ended=None)
    for args in (
        ("runs",),
        ("runs", "--running"),
        ("runs", "show", run_id),
        ("report", run_id, "--format", "md"),
        ("cancel", run_id),
    ):
        result = kflow(*args, "-C", tmp_path)
        assert result.exit_code == 0 and run_id in result.output, (args, result.output)
    with running_ui(tmp_path) as (url, _):
        for path in ("", "api/runs", f"run/{run_id}", f"api/run/{run_id}"):
            assert get(url + path)[0] == 200, path


def _page_data(page: str) -> Any:
    found = re.search(r'<script type="application/json" id="kflow-data">(.*?)</script>', page)
    assert found is not None

    def strict(name: str) -> None:
        raise AssertionError(f"{name} in the page's JSON")

    return json.loads(found.group(1), parse_constant=strict)


def test_times_out_of_range_read_as_missing(tmp_path: Path) -> None:
    runs, raw = _built(tmp_path)
    _plant(runs, raw, "20261201T000006Z-ffffff", started=1e308)
    _plant(runs, raw, "20261201T000007Z-gggggg", started=1e22)
    text = json.dumps(raw).replace(f'"started": {_attempt(raw)["started"]}', '"started": Infinity')
    assert "Infinity" in text
    text = text.replace(raw["run_id"], "20261201T000008Z-hhhhhh")
    (runs / "20261201T000008Z-hhhhhh.json").write_text(text)
    listed = kflow("runs", "-C", tmp_path)
    assert listed.exit_code == 0, listed.output
    for line in listed.stdout.splitlines():
        if "ffffff" in line or "gggggg" in line:
            assert " — " in line, line
    for run_id in ("ffffff", "gggggg", "hhhhhh"):
        run = next(p.stem for p in runs.glob(f"*-{run_id}.json"))
        for fmt in ("md", "json", "trace"):
            result = kflow("report", run, "-C", tmp_path, "--format", fmt)
            assert result.exit_code == 0, (run, fmt, result.output)
            if fmt != "md":
                json.loads(result.stdout, parse_constant=lambda c: pytest.fail(c))
        page = tmp_path / f"{run}.html"
        assert kflow("report", run, "-C", tmp_path, "-o", page).exit_code == 0
        assert _page_data(page.read_text())["run"]["run_id"] == run


def test_report_files_never_overwrite_the_definition_file(tmp_path: Path) -> None:
    _built(tmp_path)
    definition = tmp_path / "kflow.toml"
    before = definition.read_text()
    result = kflow("build", "-C", tmp_path, "-B", "fence", "--junit", definition)
    assert result.exit_code == 2 and "definition file" in result.output, result.output
    result = kflow("report", "-C", tmp_path, "-o", definition)
    assert result.exit_code == 2 and "definition file" in result.output, result.output
    assert definition.read_text() == before


def test_report_and_ui_refuse_bad_places_and_ports_with_exit_2(tmp_path: Path) -> None:
    _built(tmp_path)
    places = [tmp_path / "nonexistent/x.html", tmp_path]
    if Path("/proc/version").exists():
        places.append(Path("/proc/version"))
    for place in places:
        result = kflow("report", "-C", tmp_path, "-o", place)
        assert result.exit_code == 2 and str(place) in result.stderr, result.output
    assert not list(tmp_path.glob(".*.html*"))  # no temporary file left behind
    result = kflow("ui", "-C", tmp_path, "--port", "99999")
    assert result.exit_code == 2 and "--port" in result.stderr, result.output


def _running_record(runs: Path) -> dict[str, Any] | None:
    for path in runs.glob("*.json"):
        try:
            raw: dict[str, Any] = json.loads(path.read_text())
        except ValueError:
            continue
        attempts = raw.get("instances", {}).get("fence", {}).get("attempts", [])
        here = attempts[0].get("log_here", "") if attempts else ""
        if raw.get("status") == "running" and here and b"live-line" in Path(here).read_bytes():
            return raw
    return None


def test_the_live_view_serves_a_running_attempts_whole_log_and_after_kill_9(
    tmp_path: Path,
) -> None:
    go = tmp_path / "go"
    wait = f"while [ ! -e {go} ]; do sleep 0.1; done"
    tasks = f"[tasks.fence]\ncommand = \"sh -c 'echo live-line; {wait}'\"\n"
    data_project(tmp_path, tasks)
    env = {**os.environ, "KFLOW_HEARTBEAT": "0.2"}
    build = subprocess.Popen(
        [sys.executable, "-m", "kflow", "build", "-C", str(tmp_path), "-B", "fence"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        runs = tmp_path / "data/.kflow/runs"
        deadline = time.monotonic() + DEADLINE
        raw = None
        while raw is None and time.monotonic() < deadline:
            raw = _running_record(runs) if runs.is_dir() else None
            time.sleep(0.05)
        assert raw is not None, "the build never recorded its running attempt"
        with running_ui(tmp_path) as (url, _):
            log = f"{url}api/log/{raw['run_id']}/fence/1?offset=0"
            assert get(log)[:3:2] == (200, b"live-line\n")
            build.send_signal(signal.SIGKILL)
            build.wait(timeout=30)
            assert get(log)[:3:2] == (200, b"live-line\n")
    finally:
        go.touch()
        if build.poll() is None:
            build.kill()
            build.wait()


def _through_a_terminal(args: list[str]) -> bytes:
    main, other = pty.openpty()
    proc = subprocess.Popen(args, stdout=other, stderr=subprocess.DEVNULL)
    os.close(other)
    out = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:  # EIO: the other end closed
            break
        if not chunk:
            break
        out += chunk
    os.close(main)
    assert proc.wait(timeout=30) == 0
    return out


def test_logs_escape_control_characters_to_a_terminal_and_pipe_raw_bytes(
    tmp_path: Path,
) -> None:
    noise = b"A\x1b[31mB\x1b]8;;http://x\x1b\\C\x9bD\rE\vF\xff\n"
    (tmp_path / "noise.bin").write_bytes(noise)
    _built(tmp_path, f'[tasks.fence]\ncommand = "cat {tmp_path / "noise.bin"}"\n')
    args = [sys.executable, "-m", "kflow", "logs", "-C", str(tmp_path), "fence"]
    shown = _through_a_terminal(args)
    for raw in (b"\x1b", b"\x9b", b"\x0b", b"\xff"):
        assert raw not in shown, shown
    assert b"\\x1b[31mB" in shown and b"\\x9b" in shown and b"\\xff" in shown
    piped = subprocess.run(args, capture_output=True, check=True, timeout=60)
    assert piped.stdout == noise


def test_an_unreadable_newest_record_does_not_hide_the_latest_readable_run(
    tmp_path: Path,
) -> None:
    runs, raw = _built(tmp_path)
    (runs / "20991201T235959Z-zzzzzz.json").write_text('{"run_id": "2099')
    result = kflow("report", "-C", tmp_path, "--format", "md")
    assert result.exit_code == 0 and raw["run_id"] in result.stdout, result.output
    result = kflow("runs", "show", "latest", "-C", tmp_path)
    assert result.exit_code == 0 and raw["run_id"] in result.stdout, result.output


def test_the_log_api_refuses_bad_offsets(tmp_path: Path) -> None:
    _, raw = _built(tmp_path)
    with running_ui(tmp_path) as (url, _):
        log = f"{url}api/log/{raw['run_id']}/fence/1"
        for bad in ("-1", "-100", "abc", "1e3", "0x10", "%C2%B2"):
            assert get(f"{log}?offset={bad}")[0] == 400, bad
        assert get(f"{log}?offset=3")[:3:2] == (200, b"ce-log\n")


def _raw_request(url: str, request: bytes) -> bytes:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as conn:
        conn.sendall(request)
        return conn.recv(100)


def test_the_ui_answers_exactly_one_host_header_naming_it(tmp_path: Path) -> None:
    _built(tmp_path)
    with running_ui(tmp_path) as (url, _):
        host = urlsplit(url).netloc.encode()
        none = _raw_request(url, b"GET /api/runs HTTP/1.0\r\n\r\n")
        two = b"GET /api/runs HTTP/1.1\r\nHost: " + host + b"\r\nHost: evil.example\r\n\r\n"
        one = b"GET /api/runs HTTP/1.0\r\nHost: " + host + b"\r\n\r\n"
        assert none.startswith(b"HTTP/1.0 421"), none
        assert _raw_request(url, two).startswith(b"HTTP/1.0 421")
        assert _raw_request(url, one).startswith(b"HTTP/1.0 200")


def test_a_same_host_record_without_a_pid_is_judged_by_its_heartbeat(tmp_path: Path) -> None:
    runs, raw = _built(tmp_path)
    hour_ago = time.time() - 3600
    run_id = "20261201T000009Z-iiiiii"
    _plant(
        runs,
        raw,
        run_id,
        pid=None,
        pid_start=None,
        status="running",
        ended=None,
        exit_code=None,
        started=hour_ago,
        beat=hour_ago,
    )
    result = kflow("runs", "--running", "-C", tmp_path)
    assert result.exit_code == 0 and run_id not in result.stdout, result.output
    (line,) = [s for s in kflow("runs", "-C", tmp_path).stdout.splitlines() if run_id in s]
    assert "died" in line and "running" not in line


def test_runs_show_says_no_exit_code_as_a_dash(tmp_path: Path) -> None:
    runs, raw = _built(tmp_path)
    _plant(runs, raw, "20261201T000010Z-jjjjjj", exit_code=None)
    result = kflow("runs", "show", "20261201T000010Z-jjjjjj", "-C", tmp_path)
    assert result.exit_code == 0 and "(exit —)" in result.stdout, result.output
    assert "None" not in result.stdout


def test_report_against_with_a_trace_is_refused(tmp_path: Path) -> None:
    _, raw = _built(tmp_path)
    result = kflow("report", "-C", tmp_path, "--format", "trace", "--against", raw["run_id"])
    assert result.exit_code == 2 and "--against" in result.stderr, result.output
