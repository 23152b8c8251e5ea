"""Multi-process servers: uvicorn --workers and gunicorn with uvicorn workers, real processes.

Each test starts the server on a random loopback port, sends requests on fresh connections until
two worker pids have answered, and checks that every answered request's trace reached the store
(the local SQLite store, or the real Jaeger for the e2e ones). Servers are always killed.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from _servers import ServerProcess, free_port, hit_until_two_workers, read_spans, server_env
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from starlette.applications import Starlette
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Receive, Scope, Send

import mltrace
from mltrace.spans._lifespan import flush_providers, run_lifespan

pytestmark = pytest.mark.slow

APP = '''
import asyncio, os

import mltrace
from fastapi import FastAPI

mltrace.configure(
    service_name="workers-test",
    exporter=os.environ["APP_EXPORTER"],
    endpoint=os.environ.get("APP_ENDPOINT") or None,
    local_path=os.environ.get("APP_DB") or None,
    resource_attributes={"process.pid": os.getpid()},
)
app = FastAPI()
app.add_middleware(mltrace.MLTraceMiddleware)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/pid")
async def pid() -> dict[str, int]:
    with mltrace.stage("inference"):
        await asyncio.sleep(0.02)  # keeps a worker busy, so the other one accepts too
    return {"pid": os.getpid()}
'''

SERVERS = {
    "uvicorn": ["uvicorn", "worker_app:app", "--workers", "2", "--host", "127.0.0.1", "--port", "{port}"],
    "gunicorn": [
        "gunicorn", "-k", "uvicorn_worker.UvicornWorker", "-w", "2", "-b", "127.0.0.1:{port}", "worker_app:app",
    ],
    # --preload: the app (and mltrace.configure) is imported in the master, then forked.
    "gunicorn-preload": [
        "gunicorn", "-k", "uvicorn_worker.UvicornWorker", "-w", "2", "--preload", "-b", "127.0.0.1:{port}",
        "worker_app:app",
    ],
}


def _serve(tmp_path: Path, kind: str, env: dict[str, str]) -> ServerProcess:
    (tmp_path / "worker_app.py").write_text(APP)
    port = free_port()
    argv = [a.format(port=port) for a in SERVERS[kind]]
    if kind.startswith("gunicorn"):
        argv += ["--control-socket", str(tmp_path / "gunicorn.ctl")]  # not ~/.gunicorn, shared by tests
    return ServerProcess(
        argv,
        port=port,
        env=server_env({"OTEL_BSP_SCHEDULE_DELAY": "100", **env}, pythonpath=[tmp_path]),
        log=tmp_path / "server.log",
        cwd=tmp_path,
    )


def _check_local_store(
    db: Path, results: list[tuple[int, str]], *, resource_pid: bool, timeout: float = 20.0
) -> None:
    want = {t for _, t in results}
    rows = read_spans(
        db, until=lambda rows: want <= {r["trace_id"] for r in rows} and len(rows) >= 2 * len(want), timeout=timeout
    )
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_trace.setdefault(r["trace_id"], []).append(r)
    missing = want - set(by_trace)
    assert not missing, f"{len(missing)} of {len(want)} traces never arrived"
    for pid, trace_id in results:
        names = sorted(r["name"] for r in by_trace[trace_id])
        assert names == ["GET /pid", "inference"], names
        if resource_pid:
            assert {r["resource"]["process.pid"] for r in by_trace[trace_id]} == {pid}


@pytest.mark.parametrize("kind", list(SERVERS))
def test_spans_from_every_worker_reach_the_local_store(tmp_path: Path, kind: str) -> None:
    """Two workers answer, and every answered request's trace lands in the shared SQLite store."""
    db = tmp_path / "traces.db"
    with _serve(tmp_path, kind, {"APP_EXPORTER": "local", "APP_DB": str(db)}) as server:
        results = hit_until_two_workers(server.url)
        pids = {pid for pid, _ in results}
        assert len(pids) >= 2, f"only {pids} answered {len(results)} requests:\n{server.output()}"
        # With --preload the resource is made once, in the master: it names the master's pid.
        _check_local_store(db, results, resource_pid=kind != "gunicorn-preload")


@pytest.mark.parametrize("kind", ["uvicorn", "gunicorn-preload"])
def test_spans_still_queued_at_sigterm_are_flushed(tmp_path: Path, kind: str) -> None:
    """Spans queued when the server is stopped with SIGTERM are exported during lifespan shutdown."""
    db = tmp_path / "traces.db"
    env = {
        "APP_EXPORTER": "local",
        "APP_DB": str(db),
        # Nothing leaves the queue on its own: no timer, no full batch.
        "OTEL_BSP_SCHEDULE_DELAY": "600000",
        "OTEL_BSP_MAX_QUEUE_SIZE": "100000",
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "100000",
    }
    server = _serve(tmp_path, kind, env)
    with server:
        results = hit_until_two_workers(server.url)
        assert not read_spans(db, until=lambda rows: False, timeout=0), "nothing is exported before the stop"
    server.stop()  # SIGTERM, as Kubernetes and systemd send it
    _check_local_store(db, results, resource_pid=False, timeout=1.0)  # the workers are gone: no more spans


@pytest.fixture
def jaeger() -> tuple[str, str]:
    """The real Jaeger's OTLP gRPC endpoint and query URL (scripts/backends.sh up)."""
    otlp = os.environ.get("MLTRACE_E2E_OTLP_ENDPOINT", "http://127.0.0.1:4317")
    query = os.environ.get("MLTRACE_E2E_JAEGER_QUERY_URL", "http://127.0.0.1:16686")
    try:
        httpx.get(f"{query}/api/services", timeout=2).raise_for_status()
    except httpx.HTTPError as exc:
        if os.environ.get("MLTRACE_E2E") == "1":
            pytest.fail(f"Jaeger is not reachable at {query} ({exc}); run scripts/backends.sh up")
        pytest.skip(f"Jaeger is not reachable at {query}; set MLTRACE_E2E=1 to make this a failure")
    return otlp, query


def _in_jaeger(query: str, trace_ids: set[str], timeout: float = 30.0) -> set[str]:
    """The subset of ``trace_ids`` whose server and inference spans Jaeger has, polled until all are."""
    found: set[str] = set()
    deadline = time.monotonic() + timeout
    while True:
        for t in sorted(trace_ids - found):
            r = httpx.get(f"{query}/api/traces/{t}", timeout=5)
            if r.status_code == 200:
                ops = {s["operationName"] for d in r.json().get("data", []) for s in d["spans"]}
                if {"GET /pid", "inference"} <= ops:
                    found.add(t)
        if found == trace_ids or time.monotonic() >= deadline:
            return found
        time.sleep(0.5)


@pytest.mark.e2e
@pytest.mark.parametrize("kind", ["uvicorn", "gunicorn-preload"])
def test_spans_from_every_worker_reach_jaeger(tmp_path: Path, kind: str, jaeger: tuple[str, str]) -> None:
    """OTLP gRPC from each worker (forked after configure() with --preload) reaches the real Jaeger."""
    otlp, query = jaeger
    with _serve(tmp_path, kind, {"APP_EXPORTER": "jaeger", "APP_ENDPOINT": otlp}) as server:
        results = hit_until_two_workers(server.url)
        assert len({pid for pid, _ in results}) >= 2, server.output()
        want = {t for _, t in results}
        found = _in_jaeger(query, want)
    assert found == want, f"{len(want - found)} of {len(want)} traces missing from Jaeger"


class _FlushRecorder(SpanProcessor):
    def __init__(self) -> None:
        self.flushes = 0

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        return None

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        self.flushes += 1
        return True


class _Lifespan:
    """What MLTraceMiddleware does with lifespan scopes once wired to run_lifespan."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await run_lifespan(self.app, scope, receive, send)
        else:
            await self.app(scope, receive, send)


def test_lifespan_shutdown_flushes_the_provider() -> None:
    """run_lifespan force-flushes the tracer provider when the app shuts down, not before."""
    mltrace.configure(exporter="none")
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    recorder = _FlushRecorder()
    provider.add_span_processor(recorder)
    with TestClient(_Lifespan(Starlette())):
        assert recorder.flushes == 0
    assert recorder.flushes == 1


def test_flush_survives_a_broken_provider(monkeypatch: pytest.MonkeyPatch) -> None:
    """A provider whose force_flush raises makes flush_providers return False, not raise."""

    class Broken:
        def force_flush(self, timeout_millis: int = 0) -> bool:
            raise RuntimeError("exporter wedged")

    monkeypatch.setattr("mltrace.spans._lifespan._providers", lambda: [Broken()])
    assert flush_providers(0.1) is False
