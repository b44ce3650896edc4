"""The HTTP/1.1 front end: keep-alive, chunked streams, auth, API-level faults, request log."""

from __future__ import annotations

import contextlib
import json
import select
import socket
import ssl
import struct
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from .errors import ApiError, status_body
from .faultrules import Throttle
from .resources import Request, Response, Stream, StreamWriter
from .router import route

if TYPE_CHECKING:
    from .cluster import Cluster

MAX_BODY = 3 * 1024 * 1024  # the API server's request body limit
DEFAULT_MESSAGES = {
    401: "Unauthorized",
    403: "forbidden: injected by the emulator",
    409: 'Operation cannot be fulfilled on resourcequotas "quota": the object has been '
         "modified; please apply your changes to the latest version and try again",
    429: "Too many requests, please try again later.",
    500: "Internal error occurred: injected by the emulator",
    502: "Bad Gateway",
    503: "the server is currently unable to handle the request",
    504: "Timeout: request did not complete within requested timeout - context deadline exceeded",
}


@dataclass
class RequestRecord:
    t: float
    method: str
    path: str
    query: dict[str, str]
    verb: str
    status: int  # -1 when the response was deliberately lost
    bytes: int
    user: str
    user_agent: str
    duration: float
    headers: dict[str, str] = field(default_factory=dict)


class _ClientGone(Exception):
    pass


class _ChunkWriter(StreamWriter):
    def __init__(self, handler: Handler, rec: RequestRecord) -> None:
        self.h = handler
        self.rec = rec

    def write(self, data: bytes) -> None:
        if not data:
            return
        try:
            self.h.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.h.wfile.flush()
        except OSError as exc:
            raise _ClientGone() from exc
        self.rec.bytes += len(data)

    def closed(self) -> bool:
        sock = self.h.connection
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable and isinstance(sock, ssl.SSLSocket):  # no peeking under TLS (tls.py);
                return True  # a client sends nothing while it reads a stream: it went away
            return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: EmulatorServer
    _warnings: list[str]

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def do_PUT(self) -> None:
        self._serve()

    def do_PATCH(self) -> None:
        self._serve()

    def do_DELETE(self) -> None:
        self._serve()

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()

    # --- request -------------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _serve(self) -> None:
        cluster = self.server.cluster
        started = time.monotonic()
        raw = self._read_body()
        split = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(split.query, keep_blank_values=True).items()}
        headers = {k.lower(): v for k, v in self.headers.items()}
        req = Request(self.command, split.path, query, headers, raw)
        self._warnings = req.warnings
        rec = RequestRecord(time.time(), req.method, req.path, dict(query), "", 0, 0, "",
                            headers.get("user-agent", ""), 0.0, headers)
        cluster.record(rec)  # visible before the response reaches the client
        try:
            delay = cluster.faults.latency_for(req.method, req.path)
            if delay:
                time.sleep(delay)
            cluster.rbac.authenticate(req)
            rec.user = req.user
            if len(raw) > MAX_BODY:
                raise ApiError(413, f"Request entity too large: limit is {MAX_BODY}",
                               "RequestEntityTooLarge")
            handler = route(req)
            rec.verb = req.verb
            self._injected_failure(cluster, req)
            if raw:
                try:
                    req.body = json.loads(raw)
                except ValueError:
                    raise ApiError(400, "couldn't get version/kind; json parse error: invalid "
                                   "character looking for beginning of value", "BadRequest") \
                        from None
            cluster.rbac.authorize(req)
            result = handler(cluster, req)
            if isinstance(result, Response) and cluster.faults.take_lose_response(
                    req.method, req.path):
                rec.status = -1
                self._reset()
                return
            rec.status = result.status
            if isinstance(result, Stream):
                self._stream(result, rec)
            else:
                self._send(result, rec)
        except ApiError as exc:
            rec.status = exc.code
            self._send(Response(exc.code, exc.body(), headers=exc.headers), rec)
        except _ClientGone:
            self.close_connection = True
        except Exception:
            cluster.errors.append(traceback.format_exc())
            err = ApiError(500, "Internal error occurred: emulator bug (see emulator.errors)")
            rec.status = 500
            self._send(Response(500, err.body()), rec)
        finally:
            rec.duration = time.monotonic() - started

    def _injected_failure(self, cluster: Cluster, req: Request) -> None:
        rule = cluster.faults.request_failure(req.method, req.path)
        if rule is None:
            return
        extra: dict[str, str] = {}
        details: dict[str, Any] = {}
        reason: str | None
        if isinstance(rule, Throttle):
            code, message, reason, body = 429, DEFAULT_MESSAGES[429], "TooManyRequests", None
            retry_after: float | None = rule.retry_after
        else:
            code, reason, body = rule.status, rule.reason, rule.body
            message = rule.message or DEFAULT_MESSAGES.get(code, f"injected error {code}")
            retry_after = rule.retry_after
            details = dict(rule.details or {})
        if retry_after is not None:
            extra["Retry-After"] = str(int(retry_after)) if float(retry_after).is_integer() \
                else str(retry_after)
            details.setdefault("retryAfterSeconds", int(retry_after))
        if body is not None:
            raise _Canned(code, body, extra)
        raise ApiError(code, message, reason, details or None, extra)

    # --- responses -----------------------------------------------------------------------------

    def _send(self, resp: Response, rec: RequestRecord) -> None:
        if isinstance(resp.body, (bytes, str)):
            data = resp.body.encode() if isinstance(resp.body, str) else resp.body
        else:
            data = json.dumps(resp.body, separators=(",", ":")).encode()
        rec.bytes = len(data)
        try:
            self.send_response(resp.status)
            self.send_header("Content-Type", resp.content_type)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("Audit-Id", "00000000-0000-0000-0000-000000000000")
            self.send_header("Cache-Control", "no-cache, private")
            for k, v in resp.headers.items():
                self.send_header(k, v)
            for warning in self._warnings:
                self.send_header("Warning", warning)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except OSError:
            self.close_connection = True

    def _stream(self, stream: Stream, rec: RequestRecord) -> None:
        self.send_response(stream.status)
        self.send_header("Content-Type", stream.content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        for k, v in stream.headers.items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.flush()
        writer = _ChunkWriter(self, rec)
        mode = stream.produce(writer)
        if mode is None:
            try:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            except OSError:
                self.close_connection = True
        elif mode == "truncate":
            part = b'{"type":"MODIFIED","object":{"kind":"Pod","apiVersion":"v1","metadata":{"na' \
                if stream.kind == "watch" else b"a log line cut in the midd"
            writer.write(part)
            self._close_now()
        else:
            self._reset()

    def _close_now(self) -> None:
        self.close_connection = True
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _reset(self) -> None:
        """Abort the connection with a TCP RST."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass


class _Canned(ApiError):
    def __init__(self, code: int, body: Any, headers: dict[str, str]) -> None:
        super().__init__(code, "canned", headers=headers)
        self.canned = body

    def body(self) -> dict[str, Any]:
        return self.canned if isinstance(self.canned, dict) else status_body(self.code, "")


class EmulatorServer(ThreadingHTTPServer):
    """One daemon thread per connection, tracked: ``close_all`` shuts every connection down and
    waits (with a time limit) for their threads, so that ``KubeEmulator.stop`` returns with no
    stream still serving (``ThreadingMixIn`` does not track daemon threads at all)."""

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False  # close_all joins the connection threads, with a time limit

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._conns: set[socket.socket] = set()
        self._conn_threads: set[threading.Thread] = set()
        self._conn_lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(target=self.process_request_thread,
                                  args=(request, client_address), daemon=True,
                                  name=f"kube-emulator-conn-{client_address[1]}")
        with self._conn_lock:
            self._conns.add(request)
            self._conn_threads.add(thread)
        thread.start()

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._conn_lock:
                self._conn_threads.discard(threading.current_thread())

    def shutdown_request(self, request: Any) -> None:
        with self._conn_lock:
            self._conns.discard(request)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that resets its connection (kflow exiting, a dropped stream) is no news:
        socketserver would print a ConnectionResetError traceback. Anything else is a bug."""
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError)):
            return
        self.cluster.errors.append(traceback.format_exc())

    def close_all(self, timeout: float = 5.0) -> list[str]:
        """Shut every connection down and wait for their threads; the names of any still
        running after ``timeout`` seconds (an emulator bug: a stream that ignores stop)."""
        with self._conn_lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
        deadline = time.monotonic() + timeout
        while True:
            with self._conn_lock:
                threads = list(self._conn_threads)
            alive = [t for t in threads if t.is_alive()]
            if not alive or time.monotonic() >= deadline:
                return [t.name for t in alive]
            alive[0].join(max(0.0, min(0.1, deadline - time.monotonic())))
