"""Real socket servers on 127.0.0.1 that play a tracing backend, well or badly.

- :func:`closed_port`: a port nothing listens on (connection refused).
- :class:`HangServer`: accepts connections, reads, never answers.
- :class:`HttpBackend`: answers every request with ``status`` after ``delay`` seconds and keeps
  the raw request bodies (to check what an exporter really sent).

Used by tests/export/test_faults.py, tests/privacy/test_privacy.py and benchmarks/bench_faults.py.
"""

from __future__ import annotations

import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any


def closed_port() -> int:
    """A loopback port that was just free and now has no listener: connecting is refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class _Server:
    port: int

    def __enter__(self) -> Any:
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class HangServer(_Server):
    """Accepts and reads forever, never writes a byte (a wedged collector or a black-holed LB)."""

    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(128)
        self._sock.settimeout(0.05)
        self.port = int(self._sock.getsockname()[1])
        self.connections = 0
        self._conns: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hang-server", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
                conn.settimeout(0.01)
                self._conns.append(conn)
                self.connections += 1
            except OSError:
                pass
            for c in list(self._conns):  # drain what clients send, so their writes never block
                try:
                    if not c.recv(65536):  # the client gave up
                        self._conns.remove(c)
                        c.close()
                except OSError:
                    pass

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for c in self._conns:
            c.close()
        self._sock.close()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        return None  # an exporter that gives up resets its connection: expected here, not news


class HttpBackend(_Server):
    """Answers each POST with ``status`` after ``delay`` seconds; keeps what it received."""

    def __init__(self, status: int = 200, delay: float = 0.0, body: bytes = b"") -> None:
        self.status = status
        self.delay = delay
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                data = self.rfile.read(length)
                with outer._lock:
                    outer.requests.append((self.path, dict(self.headers.items()), data))
                if outer.delay:
                    time.sleep(outer.delay)
                try:
                    self.send_response(outer.status)
                    self.send_header("content-length", str(len(body)))
                    if outer.status in (429, 503):
                        self.send_header("retry-after", "0")
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the exporter gave up waiting
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                return None

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def received(self) -> bytes:
        """Every request body so far, concatenated."""
        with self._lock:
            return b"".join(r[2] for r in self.requests)

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(2)


class GrpcBackend(_Server):
    """An OTLP/gRPC trace service that answers after ``delay`` seconds, or fails with ``code``."""

    def __init__(self, code: str | None = None, delay: float = 0.0) -> None:
        from concurrent import futures

        import grpc

        self.requests: list[bytes] = []
        status = getattr(grpc.StatusCode, code) if code else None

        def export(request: bytes, context: Any) -> bytes:
            self.requests.append(request)
            if delay:
                time.sleep(delay)
            if status is not None:
                context.abort(status, "backend says no")
            return b""  # an empty ExportTraceServiceResponse

        handler = grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.trace.v1.TraceService",
            {"Export": grpc.unary_unary_rpc_method_handler(export)},
        )
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        self._server.add_generic_rpc_handlers((handler,))
        self.port = int(self._server.add_insecure_port("127.0.0.1:0"))
        self._server.start()

    def received(self) -> bytes:
        return b"".join(self.requests)

    def close(self) -> None:
        self._server.stop(grace=None)
