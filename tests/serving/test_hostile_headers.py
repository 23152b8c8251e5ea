"""Issue 11 item 2: nothing a client puts in ``Host`` changes a response or reaches a span as an
invalid attribute, under real uvicorn over raw sockets (client libraries refuse these headers).

``Host: localhost:\\xb2`` made the app answer 500 (a superscript digit passes ``str.isdigit()``,
``int()`` raised in the middleware); ``Host: x:99999999999999999999999`` became an int attribute
the OTLP encoder rejected with a traceback per span.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from _loopback import HttpBackend
from _servers import ServerProcess
from _serving import HTTP_IMPLS, serve, spans_of
from _wire import Wire, request
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

HOSTILE_HOSTS = [
    b"localhost:\xb2",  # superscript two: str.isdigit() is True, int() raises
    b"localhost:\xef\xbc\x98\xef\xbc\x90",  # fullwidth "80" (UTF-8 bytes, read as latin-1)
    b"x:99999999999999999999999",  # beyond int64
    b"x:65536",
    b"x:0",
    b"x:-1",
    b"x:",
    b":8080",
    b"a:b:c",
    b"[::1]:8000",
    b"[::1",
    b"[::1]:99999",
    b"h" * 3000 + b":80",
]
APPS = ["starlette", "fastapi-off", "fastapi", "mounted"]


@pytest.fixture(scope="module", params=HTTP_IMPLS)
def exported(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
    tuple[ServerProcess, HttpBackend]
]:
    """A traced uvicorn that also exports every span through the real OTLP/HTTP exporter."""
    with HttpBackend() as backend:
        tmp: Path = tmp_path_factory.mktemp(f"hostile-{request.param}")
        with serve(request.param, tmp, otlp=f"{backend.url}/v1/traces") as server:
            yield server, backend


def _path(app: str) -> str:
    return "/v1/url" if app == "mounted" else "/url"


def test_hostile_host_changes_no_response_and_no_attribute(exported: tuple[ServerProcess, HttpBackend]) -> None:
    """Each hostile Host, on each app: 200 with the app's own answer, one SERVER span, and
    ``server.port`` either absent or a real port, in the store and in what OTLP was sent."""
    server, backend = exported
    trace_ids: list[str] = []
    apps: dict[str, str] = {}
    with Wire(server.port) as wire:  # one keep-alive connection for all of them
        for app in APPS:
            for host in HOSTILE_HOSTS:
                wire.send(request("GET", _path(app), [(b"host", host), (b"x-app", app.encode())]))
                r = wire.response()
                assert r.status == 200, (app, host, r.body[:300])
                assert r.body == f"{_path(app)} {host.decode('latin-1')!r}".encode()
                trace_id = r.header(b"x-trace-id")
                assert trace_id is not None
                trace_ids.append(trace_id.decode())
                apps[trace_id.decode()] = app
    assert len(set(trace_ids)) == len(trace_ids)
    by_trace = spans_of(server.db, trace_ids)  # type: ignore[attr-defined]
    for trace_id in trace_ids:
        (span,) = [s for s in by_trace[trace_id] if s["kind"] == "SERVER"]
        port = span["attributes"].get("server.port")
        assert port is None or (isinstance(port, int) and 0 <= port <= 65535), port  # FastAPI records :0
        if apps[trace_id] != "fastapi":  # FastAPI's own span records the Host it was given, in full
            assert len(span["attributes"].get("server.address", "")) <= 256

    ports = _otlp_ports(backend, len(trace_ids))
    assert all(0 <= p <= 65535 for p in ports)
    log = server.output()
    assert "Traceback" not in log and "Failed to" not in log and "Exception while exporting" not in log, log


def _otlp_ports(backend: HttpBackend, servers: int) -> list[int]:
    """``server.port`` values of the SERVER spans the OTLP exporter delivered (waits for them)."""
    import time

    deadline = time.monotonic() + 20
    while True:
        ports, seen = [], 0
        for _, _, body in list(backend.requests):
            req = ExportTraceServiceRequest.FromString(body)
            for rs in req.resource_spans:
                for ss in rs.scope_spans:
                    for span in ss.spans:
                        if span.kind != span.SPAN_KIND_SERVER:
                            continue
                        seen += 1
                        ports += [a.value.int_value for a in span.attributes if a.key == "server.port"]
        if seen >= servers or time.monotonic() > deadline:
            assert seen >= servers, f"OTLP received {seen} server spans of {servers}"
            return ports
        time.sleep(0.2)
