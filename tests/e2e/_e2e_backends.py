"""The real backends as the e2e tests see them: endpoints, health, and traces read back.

- :func:`endpoint`: an ``MLTRACE_E2E_*`` URL from the environment (scripts/test.sh exports them,
  for the backends it started on free ports), else its value in scripts/backends.env.
- :class:`Jaeger`, :class:`Zipkin`: health checks and ``trace(id)`` through their query APIs,
  as :class:`SpanView` rows (one shape for both, so tests compare like with like).
- :func:`traced_call`: send a request, then poll (bounded) until its trace is complete; send
  again if it never completes, since another test may restart a backend (memory storage) between
  the export and the read.
- :class:`App`: a server for the ``serve`` fixture (conftest.py) to start.
- :func:`backends_sh`: run scripts/backends.sh (stop and start Jaeger in the backend-down test).
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import httpx
from _servers import free_port

ROOT = Path(__file__).resolve().parent.parent.parent


@dataclass
class App:
    """One server to start: a script (relative to the repository root), its environment, its port."""

    script: str
    env: Mapping[str, str] = field(default_factory=dict)
    port: int = field(default_factory=free_port)
    ready_path: str = "/healthz"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


# Spans leave within 0.1 s instead of the SDK's 5 s; output is unbuffered so tests can read logs.
BASE_ENV = {"OTEL_BSP_SCHEDULE_DELAY": "100", "PYTHONUNBUFFERED": "1", "PYTHONDONTWRITEBYTECODE": "1"}


@cache
def backends_env() -> dict[str, str]:
    values: dict[str, str] = {}
    for line in (ROOT / "scripts/backends.env").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key] = value
    return values


def endpoint(key: str) -> str:
    """``MLTRACE_E2E_<key>`` from the environment, else (outside scripts/test.sh) from scripts/backends.env.

    Under ``MLTRACE_E2E=1`` the variable must be set: scripts/test.sh runs its backends on free ports,
    so the default port in backends.env may be someone else's Jaeger or Redis.
    """
    name = f"MLTRACE_E2E_{key}"
    value = os.environ.get(name)
    if not value and os.environ.get("MLTRACE_E2E") == "1":
        raise RuntimeError(f"{name} is not set: under MLTRACE_E2E=1 endpoints come only from the environment")
    return (value or backends_env()[name]).rstrip("/")


@dataclass(frozen=True)
class SpanView:
    """One span read back from a backend: ids, name, kind (lower case), service and tags."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    kind: str
    service: str
    tags: dict[str, Any]
    start_us: int
    duration_us: int

    @property
    def end_us(self) -> int:
        return self.start_us + self.duration_us


Check = Callable[[list[SpanView]], bool]


def _get_json(client: httpx.Client, url: str) -> Any:
    """The JSON body, or ``None`` on 404 or while the backend is unreachable (it may be restarting)."""
    try:
        r = client.get(url)
    except httpx.HTTPError:
        return None
    if r.status_code == 404:
        return None
    r.raise_for_status()
    return r.json()


def _http_ok(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


class _Backend:
    name = "?"

    def healthy(self) -> bool:
        raise NotImplementedError

    def fetch(self, client: httpx.Client, trace_id: str) -> list[SpanView]:
        raise NotImplementedError

    def trace(self, trace_id: str) -> list[SpanView]:
        """The spans of ``trace_id`` held now (empty when the backend has none or is unreachable)."""
        with httpx.Client(timeout=5.0) as client:
            return self.fetch(client, trace_id)

    def wait_for_trace(self, trace_id: str, until: Check, timeout: float = 20.0) -> list[SpanView]:
        """Poll until ``until(spans)`` holds; the last spans read if it never does within ``timeout``."""
        spans: list[SpanView] = []
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=5.0) as client:
            while True:
                spans = self.fetch(client, trace_id)
                if until(spans) or time.monotonic() >= deadline:
                    return spans
                time.sleep(0.25)


class Jaeger(_Backend):
    """Jaeger v2: OTLP in (gRPC and HTTP), ``/api/traces/{id}`` out."""

    name = "Jaeger"

    def __init__(self) -> None:
        self.query_url = endpoint("JAEGER_QUERY_URL")
        self.otlp_grpc = endpoint("OTLP_ENDPOINT")
        self.otlp_http = endpoint("OTLP_HTTP_ENDPOINT")

    def healthy(self) -> bool:
        return _http_ok(f"{self.query_url}/api/services")

    def raw(self, trace_id: str) -> Any:
        """Jaeger's reply for ``trace_id`` as it came (``None`` when not found)."""
        with httpx.Client(timeout=5.0) as client:
            return _get_json(client, f"{self.query_url}/api/traces/{trace_id}")

    def fetch(self, client: httpx.Client, trace_id: str) -> list[SpanView]:
        body = _get_json(client, f"{self.query_url}/api/traces/{trace_id}")
        return jaeger_spans(body["data"][0]) if body and body.get("data") else []


class Zipkin(_Backend):
    """Zipkin server: v2 JSON in at ``/api/v2/spans``, ``/api/v2/trace/{id}`` out."""

    name = "Zipkin"

    def __init__(self) -> None:
        self.url = endpoint("ZIPKIN_URL")
        self.spans_endpoint = f"{self.url}/api/v2/spans"

    def healthy(self) -> bool:
        return _http_ok(f"{self.url}/health")

    def fetch(self, client: httpx.Client, trace_id: str) -> list[SpanView]:
        return zipkin_spans(_get_json(client, f"{self.url}/api/v2/trace/{trace_id}") or [])


class Redis:
    """Redis, checked with a raw PING (the tests need no Redis client of their own)."""

    name = "Redis"

    def __init__(self) -> None:
        self.url = endpoint("REDIS_URL")

    def healthy(self) -> bool:
        host_port = self.url.split("://", 1)[1].split("/", 1)[0]
        host, _, port = host_port.rpartition(":")
        try:
            with socket.create_connection((host, int(port)), timeout=2.0) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False


def jaeger_spans(trace: dict[str, Any]) -> list[SpanView]:
    """Jaeger's ``data[0]`` (spans with ``references``, ``processes`` by id) as :class:`SpanView` rows."""
    services = {pid: p["serviceName"] for pid, p in trace["processes"].items()}
    views = []
    for s in trace["spans"]:
        tags = {t["key"]: t["value"] for t in s["tags"]}
        parents = [r["spanID"] for r in s["references"] if r["refType"] == "CHILD_OF"]
        views.append(
            SpanView(
                trace_id=s["traceID"],
                span_id=s["spanID"],
                parent_id=parents[0] if parents else None,
                name=s["operationName"],
                kind=str(tags.get("span.kind", "internal")).lower(),
                service=services[s["processID"]],
                tags=tags,
                start_us=s["startTime"],
                duration_us=s["duration"],
            )
        )
    return views


def zipkin_spans(spans: list[dict[str, Any]]) -> list[SpanView]:
    """Zipkin v2 spans (``parentId``, upper-case ``kind``, string tags) as :class:`SpanView` rows."""
    return [
        SpanView(
            trace_id=s["traceId"],
            span_id=s["id"],
            parent_id=s.get("parentId"),
            name=s.get("name", ""),
            kind=str(s.get("kind", "internal")).lower(),
            service=s.get("localEndpoint", {}).get("serviceName", ""),
            tags=dict(s.get("tags", {})),
            start_us=s.get("timestamp", 0),
            duration_us=s.get("duration", 0),
        )
        for s in spans
    ]


def traced_call(
    send: Callable[[], httpx.Response],
    backend: _Backend,
    until: Check,
    *,
    attempts: int = 3,
    timeout: float = 20.0,
) -> tuple[httpx.Response, list[SpanView]]:
    """``send()`` a request and wait for its trace (by ``X-Trace-Id``) until ``until(spans)``.

    Sends again, up to ``attempts`` times, when the trace never completes: a backend restarted by
    another test between our export and our read has lost it (memory storage). The last
    response and spans are returned either way; the caller asserts on them.
    """
    response: httpx.Response | None = None
    spans: list[SpanView] = []
    for _ in range(attempts):
        response = send()
        trace_id = response.headers.get("x-trace-id")
        if not trace_id:
            break
        spans = backend.wait_for_trace(trace_id, until, timeout)
        if until(spans):
            break
    assert response is not None
    return response, spans


def backends_sh(*args: str, timeout: float = 150.0) -> subprocess.CompletedProcess[str]:
    """``scripts/backends.sh ARGS...``; its output is in the result (``check`` is the caller's)."""
    return subprocess.run(
        ["bash", str(ROOT / "scripts/backends.sh"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
