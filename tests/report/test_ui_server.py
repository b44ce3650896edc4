"""`kflow ui` over HTTP: runs list, run JSON with an ETag, logs by offset, local and S3
storage, localhost by default, a clean exit on SIGINT."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from urllib.parse import quote

from tests.helpers import kflow, write_project
from tests.report.project import built_project
from tests.report.ui import get, running_ui
from tests.storage.s3server import S3Server


def test_ui_serves_runs_json_with_etags_and_logs_by_offset(tmp_path: Path) -> None:
    built_project(tmp_path)
    with running_ui(tmp_path) as (url, proc):
        assert url.startswith("http://127.0.0.1:")
        status, _, body = get(url + "api/runs")
        (run,) = json.loads(body)["runs"]
        assert status == 200 and run["status"] == "failed"
        assert set(json.loads(body)["trend"]) == {"fetch", "flaky"}
        status, headers, body = get(f"{url}api/run/{run['run_id']}")
        assert status == 200 and json.loads(body)["first_failure"]["id"] == "flaky[region=us]"
        status, _, _ = get(f"{url}api/run/{run['run_id']}", {"If-None-Match": headers["ETag"]})
        assert status == 304
        log = f"{url}api/log/{run['run_id']}/{quote('flaky[region=us]')}/2"
        assert get(log + "?offset=0")[2] == b"boom-us-tail\n"
        assert get(log + "?offset=5")[2] == b"us-tail\n"
        assert get(f"{url}api/log/{run['run_id']}/{quote('nope')}/1")[0] == 404
        status, _, page = get(f"{url}run/{run['run_id']}")
        assert status == 200 and b"kflow-data" in page
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0 and "stopped" in out and "Traceback" not in err


S3_PROJECT = """
[project]
name = "on-s3"
storage = "s3://BUCKET/proj"
storage_options = { endpoint_url = "ENDPOINT" }

[tasks.hello]
command = "echo hello from s3"
"""


def test_ui_reads_runs_from_s3(tmp_path: Path, s3_server: S3Server, s3_bucket: str) -> None:
    toml = s3_server.fill(S3_PROJECT, s3_bucket)
    write_project(tmp_path, toml)
    result = kflow("build", "-C", tmp_path, "hello", "-B")
    assert result.exit_code == 0, result.output
    with running_ui(tmp_path, s3_server.env()) as (url, _):
        (run,) = json.loads(get(url + "api/runs")[2])["runs"]
        assert run["status"] == "succeeded"
        model = json.loads(get(f"{url}api/run/{run['run_id']}")[2])
        assert model["instances"][0]["log_tail"] == "hello from s3"


def test_ui_on_a_port_in_use_is_exit_2(tmp_path: Path) -> None:
    built_project(tmp_path)
    with running_ui(tmp_path) as (url, _):
        port = url.rsplit(":", 1)[1].strip("/")
        result = kflow("ui", "-C", tmp_path, "--port", port)
        assert result.exit_code == 2 and f"--port {port}" in result.output


def test_head_answers_like_get_without_a_body(tmp_path: Path) -> None:
    built_project(tmp_path)
    with running_ui(tmp_path) as (url, _):
        (run,) = json.loads(get(url + "api/runs")[2])["runs"]
        log = f"{url}api/log/{run['run_id']}/{quote('flaky[region=us]')}/2?offset=0"
        for address in (log, url, f"{url}run/{run['run_id']}", f"{url}api/run/{run['run_id']}"):
            status, headers, body = get(address, method="HEAD")
            _, got_headers, whole = get(address)
            assert (status, body) == (200, b""), address  # not 501
            assert headers["Content-Type"] == got_headers["Content-Type"]
            assert int(headers["Content-Length"]) == len(whole) > 0
        assert get(f"{url}api/run/nope", method="HEAD")[0] == 404


def test_ui_answers_only_its_own_host_names_against_dns_rebinding(tmp_path: Path) -> None:
    built_project(tmp_path)
    with running_ui(tmp_path) as (url, _):
        port = url.rsplit(":", 1)[1].strip("/")
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", f"LOCALHOST:{port}"):
            assert get(url + "api/runs", {"Host": host})[0] == 200, host
        for host in (f"attacker.example:{port}", f"localhost:{int(port) + 1}", "localhost"):
            status, _, body = get(url + "api/runs", {"Host": host})
            assert status == 421 and b"runs" not in body, host
            assert get(url, {"Host": host}, method="HEAD")[0] == 421


def test_ui_on_every_address_warns_that_it_has_no_authentication(tmp_path: Path) -> None:
    built_project(tmp_path)
    with running_ui(tmp_path, args=("--host", "0.0.0.0")) as (url, proc):
        port = url.rsplit(":", 1)[1].strip("/")
        assert get(f"http://127.0.0.1:{port}/api/runs")[0] == 200
        # reached by an IP address (cannot be rebound) it answers; by another name, not
        assert get(f"http://127.0.0.1:{port}/api/runs", {"Host": f"10.1.2.3:{port}"})[0] == 200
        status = get(f"http://127.0.0.1:{port}/api/runs", {"Host": f"evil.example:{port}"})[0]
        assert status == 421
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert "warning: --host 0.0.0.0 is reachable from the network" in err
    assert "no authentication" in err


def test_ui_on_localhost_gives_no_warning(tmp_path: Path) -> None:
    built_project(tmp_path)
    with running_ui(tmp_path) as (url, proc):
        assert get(url + "api/runs")[0] == 200
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    assert err == ""


def test_ui_stops_on_sigint_even_when_started_with_sigint_ignored(tmp_path: Path) -> None:
    """A shell starts a script's background jobs with SIGINT ignored; `kill -INT` (or the
    Ctrl-C the first line promises) must still stop the ui."""
    import subprocess
    import sys

    built_project(tmp_path)
    proc = subprocess.Popen(
        [sys.executable, "-m", "kflow", "ui", "--port", "0", "-C", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith("kflow ui: http://")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0 and "stopped" in out, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
