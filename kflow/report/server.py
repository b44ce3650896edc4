"""``kflow ui``: the runs list and live run pages, served from the project's storage.

Read-only, stdlib ``http.server``. A run page polls ``/api/run/ID`` every ~2 s with the
ETag it has (a hash of the stored record, rewritten by a running build every few
seconds): 304 when nothing changed. Logs are served by byte offset, in chunks.
No authentication: it binds to localhost unless told otherwise.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import socket
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from kflow.errors import KflowError
from kflow.report.html import render_page
from kflow.report.model import page_model
from kflow.report.runs import recent_records, runs_model
from kflow.report.salvage import read_record
from kflow.report.source import output_stamps, read_tails
from kflow.run.records import (
    RunRecord,
    list_run_ids,
    local_log,
    log_location,
    mark_died,
    record_location,
)
from kflow.storage import Storage

LOG_CHUNK = 1 << 20  # bytes per log request (storage reads whole objects: few, large)
UI_TAILS = 200  # log tails read per poll (failed instances first); whole logs on demand
POLL_MS = 2000


class Pages:
    """What the server answers, from storage; no HTTP in here."""

    def __init__(self, storage: Storage, root: str):
        self.storage = storage
        self.root = root

    def record(self, run_id: str) -> tuple[RunRecord, str] | None:
        if run_id not in list_run_ids(self.storage, self.root):
            return None
        location = record_location(self.root, run_id)
        data = self.storage.read_many([location]).get(location)
        if data is None:
            return None
        try:
            record = read_record(data)
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
            return None  # not a run record (see salvage): no page, as for a missing one
        if record.run_id != run_id:
            return None  # the file name is the run id: a record naming another is no record
        mark_died(record)  # as `kflow runs` shows it: the run and what ran in it "died"
        return record, '"' + hashlib.sha256(data).hexdigest()[:20] + record.status + '"'

    def run_model(self, record: RunRecord) -> dict[str, Any]:
        tails = read_tails(self.storage, self.root, record, UI_TAILS)
        return page_model(record, tails, output_stamps(self.storage, record, UI_TAILS))

    def runs(self) -> dict[str, Any]:
        return runs_model(recent_records(self.storage, self.root))

    def log(self, run_id: str, instance: str, attempt: int, offset: int) -> bytes | None:
        """A chunk of one attempt's log from ``offset``: read from where kflow stores it (run
        id, instance, attempt number; never a path from the record), or while it runs (or
        once its kflow died) where a local attempt writes it (``local_log``)."""
        found = self.record(run_id)
        if found is None or instance not in found[0].instances:
            return None
        record = found[0]
        chosen = next((a for a in record.instances[instance].attempts if a.number == attempt), None)
        if chosen is None:
            return None
        if chosen.log:
            log = log_location(self.root, run_id, instance, attempt)
            data = self.storage.read_many([log]).get(log)
        else:
            data = local_log(record, chosen)
        return None if data is None else data[offset : offset + LOG_CHUNK]


class Handler(BaseHTTPRequestHandler):
    pages: Pages
    hosts: Hosts  # the Host headers it answers (see ``allowed_hosts``)
    server_version = "kflow-ui"
    head = False  # answering HEAD: the same status and headers as GET, no body

    def log_message(self, format: str, *args: Any) -> None:  # quiet: the terminal shows the URL
        return

    def do_HEAD(self) -> None:
        self.head = True
        self.do_GET()

    def do_GET(self) -> None:
        if not self.hosts.allow(self.headers.get_all("Host") or []):
            # DNS rebinding: a page from another site, its name pointed at this address,
            # would send its own name; only the names this server is reached by are answered.
            body = b"misdirected request: this is kflow ui, reach it by its own address\n"
            return self._send(HTTPStatus.MISDIRECTED_REQUEST, body, "text/plain; charset=utf-8")
        url = urlsplit(self.path)
        parts = [unquote(p) for p in url.path.strip("/").split("/") if p]
        try:
            self._route(parts, parse_qs(url.query))
        except KflowError as exc:
            self._send(HTTPStatus.BAD_GATEWAY, str(exc).encode(), "text/plain; charset=utf-8")

    def _route(self, parts: list[str], query: dict[str, list[str]]) -> None:
        if not parts:
            data = self.pages.runs()
            page = render_page("runs", data, {"mode": "runs", "live": None})
            return self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8")
        if len(parts) == 2 and parts[0] == "run":
            return self._run_page(parts[1])
        if parts == ["api"] or parts == ["api", "runs"]:
            return self._json(self.pages.runs())
        if len(parts) == 3 and parts[:2] == ["api", "run"]:
            return self._run_json(parts[2])
        if len(parts) == 5 and parts[:2] == ["api", "log"] and _is_number(parts[4]):
            given = query.get("offset", ["0"])
            if len(given) != 1 or not (given[0].isascii() and given[0].isdigit()):
                body = b"bad offset: a byte offset is a number 0, 1, 2, ...\n"
                return self._send(HTTPStatus.BAD_REQUEST, body, "text/plain; charset=utf-8")
            offset = int(given[0])
            chunk = self.pages.log(parts[2], parts[3], int(parts[4]), offset)
            if chunk is not None:
                return self._send(HTTPStatus.OK, chunk, "text/plain; charset=utf-8")
        self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain; charset=utf-8")

    def _run_page(self, run_id: str) -> None:
        found = self.pages.record(run_id)
        if found is None:
            return self._send(HTTPStatus.NOT_FOUND, b"no such run\n", "text/plain; charset=utf-8")
        record, etag = found
        config = {
            "mode": "run",
            "live": f"/api/run/{run_id}",
            "etag": etag,
            "log_url": f"/api/log/{run_id}",
            "poll_ms": POLL_MS,
        }
        page = render_page(f"run {run_id}", self.pages.run_model(record), config)
        self._send(HTTPStatus.OK, page.encode(), "text/html; charset=utf-8")

    def _run_json(self, run_id: str) -> None:
        found = self.pages.record(run_id)
        if found is None:
            return self._send(HTTPStatus.NOT_FOUND, b"{}", "application/json")
        record, etag = found
        if self.headers.get("If-None-Match") == etag:
            return self._send(HTTPStatus.NOT_MODIFIED, b"", None, etag)
        self._json(self.pages.run_model(record), etag)

    def _json(self, data: Any, etag: str | None = None) -> None:
        self._send(HTTPStatus.OK, json.dumps(data).encode(), "application/json", etag)

    def _send(self, status: int, body: bytes, kind: str | None, etag: str | None = None) -> None:
        self.send_response(status)
        if kind:
            self.send_header("Content-Type", kind)
        if etag:
            self.send_header("ETag", etag)
        self.send_header("Cache-Control", "no-store")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if status != HTTPStatus.NOT_MODIFIED and not self.head:
            self.wfile.write(body)


LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")


def is_loopback(address: str) -> bool:
    """Whether a bound address is reachable from this machine only."""
    try:
        return ipaddress.ip_address(address.strip("[]")).is_loopback
    except ValueError:
        return address == "localhost"


@dataclass(frozen=True)
class Hosts:
    """The ``Host`` headers the server answers: ``name:port`` in ``names``, or any IP
    address with the port when ``any_ip`` (an IP literal cannot be rebound; a name can)."""

    names: frozenset[str]
    port: str
    any_ip: bool = False

    def allow(self, headers: list[str]) -> bool:
        """Exactly one Host header naming this server: none (HTTP/1.0) or two (which one
        would a proxy have checked?) are refused."""
        if len(headers) != 1:
            return False
        name, port = _split_host(headers[0].strip().lower())
        if port != self.port:
            return False
        return name in self.names or (self.any_ip and _is_ip(name))


def allowed_hosts(host: str, bound: str, port: int) -> Hosts:
    """The loopback names, the ``--host`` given and the address bound, with the port.
    Bound to every address (``0.0.0.0``, ``::``): any IP address and this machine's names."""
    names = {*LOOPBACK_NAMES, host, bound}
    wildcard = bound in ("0.0.0.0", "::")
    if wildcard:
        names |= {socket.gethostname(), socket.getfqdn()}
    return Hosts(frozenset(_bracketed(n).lower() for n in names), str(port), wildcard)


def _bracketed(name: str) -> str:
    return f"[{name}]" if ":" in name and not name.startswith("[") else name


def _is_number(text: str) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 9


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name.strip("[]"))
    except ValueError:
        return False
    return True


def _split_host(header: str) -> tuple[str, str]:
    """``name:port`` → both; port 80 when absent; ``[::1]:8765`` keeps its brackets."""
    if header.startswith("["):
        name, _, rest = header.partition("]")
        return name + "]", rest.removeprefix(":") or "80"
    name, _, port = header.partition(":")
    return name, port or "80"


def make_server(storage: Storage, root: str, host: str, port: int) -> ThreadingHTTPServer:
    """A server bound to ``host:port`` (port 0: any free one); ``serve_forever`` runs it."""
    handler: type[Handler] = type("KflowUiHandler", (Handler,), {"pages": Pages(storage, root)})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    bound, bound_port = str(server.server_address[0]), int(server.server_address[1])
    handler.hosts = allowed_hosts(host, bound, bound_port)
    return server
