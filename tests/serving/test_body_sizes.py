"""Issue 11 item 13: ``http.request.body.size`` and ``http.response.body.size`` on the server span
(OpenTelemetry HTTP conventions), counted as the bytes pass, under real uvicorn; and ``mltrace
slow`` names a slow large upload by them instead of "no attribute stands out".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _servers import ServerProcess
from _serving import serve, spans_of
from _wire import Wire, request

SIZES = [0, 1, 65_535, 65_536, 200_000, 1 << 20]


@pytest.mark.parametrize("app", ["starlette", "fastapi", "mounted"])
def test_body_sizes_on_the_server_span(traced: ServerProcess, app: str) -> None:
    """Request sizes from Content-Length and chunked uploads, response sizes of plain and
    streamed (chunked) responses: each equals the bytes that crossed the wire."""
    prefix = "/v1" if app == "mounted" else ""
    headers = [(b"x-app", app.encode())]
    expected: dict[str, tuple[int | None, int]] = {}
    with Wire(traced.port) as wire:
        for size in SIZES:
            wire.send(request("POST", f"{prefix}/echo", headers, os.urandom(size)))
            r = wire.response()
            expected[r.header(b"x-trace-id").decode()] = (size, len(r.body))  # type: ignore[union-attr]
        # a chunked upload: no Content-Length, three chunks
        parts = [b"a" * 10, b"b" * 70_000, b"c" * 5]
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
        head = request("POST", f"{prefix}/echo", [*headers, (b"transfer-encoding", b"chunked")])
        wire.send(head.replace(b"content-length: 0\r\n", b"") + chunked)
        r = wire.response()
        assert json.loads(r.body)["size"] == 70_015
        expected[r.header(b"x-trace-id").decode()] = (70_015, len(r.body))  # type: ignore[union-attr]
        wire.send(request("GET", f"{prefix}/stream?n=40", headers))
        r = wire.response()
        assert r.body.count(b"token") == 40
        expected[r.header(b"x-trace-id").decode()] = (0, len(r.body))  # type: ignore[union-attr]
    by_trace = spans_of(traced.db, list(expected))  # type: ignore[attr-defined]
    for trace_id, (sent, received) in expected.items():
        (server,) = [s for s in by_trace[trace_id] if s["kind"] == "SERVER"]
        attrs = server["attributes"]
        assert attrs.get("http.request.body.size") == sent, (app, sent, attrs)
        assert attrs["http.response.body.size"] == received


def test_slow_names_a_slow_large_upload(tmp_path: Path) -> None:
    """Large uploads trickled in slowly among quick small requests, on a server of their own:
    ``mltrace slow --json`` names ``http.request.body.size`` among the causes instead of leaving
    the time unexplained."""

    def trickle() -> Iterator[bytes]:
        for _ in range(8):
            time.sleep(0.03)
            yield b"u" * 64_000

    trace_ids = []
    with serve("h11", tmp_path) as server, httpx.Client(
        base_url=server.url, headers={"x-app": "starlette"}, timeout=30
    ) as client:
        for i in range(60):
            # 6 slow large uploads among 54 small quick requests
            r = client.post("/echo", content=trickle() if i % 10 == 3 else b"s" * (100 + i))
            trace_ids.append(r.headers["x-trace-id"])
        spans_of(server.db, trace_ids)  # type: ignore[attr-defined]
        out = subprocess.run(
            [sys.executable, "-m", "mltrace.cli", "slow", "--json", "--source", f"local://{server.db}",  # type: ignore[attr-defined]
             "--service", "serving-test", "--since", "1h"],
            capture_output=True, text=True, timeout=120, check=False,
        )
    assert out.returncode == 0, out.stderr
    causes = json.loads(out.stdout)["causes"]
    assert any(c["attribute"] == "http.request.body.size" for c in causes), json.dumps(causes)[:3000]
