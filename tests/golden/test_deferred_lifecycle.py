"""Deferred spans that end after their request is handed over: a stage in a task that outlives
the response, and stages ending in other threads while the request is flushed. Each is exported
exactly once, under the right parent."""

from __future__ import annotations

import asyncio
import sys
import threading
from typing import Any

import httpx
from fastapi import FastAPI
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind

import mltrace
from mltrace.spans import _deferred
from mltrace.testing import capture_spans


def test_stage_outliving_the_request_is_exported_when_it_ends() -> None:
    """A stage started in a task the endpoint leaves running ends after the response: it is
    handed over then, as a child of the request's server span."""
    release: asyncio.Event | None = None  # made inside the event loop below
    tasks: list[asyncio.Task[Any]] = []

    @mltrace.postprocess(name="audit")
    async def audit(x: int) -> int:
        assert release is not None
        await release.wait()
        return x

    app = FastAPI(telemetry={"tracing": False})
    app.add_middleware(mltrace.MLTraceMiddleware)

    @app.get("/fire")
    async def fire() -> dict[str, bool]:
        tasks.append(asyncio.create_task(audit(1)))
        await asyncio.sleep(0)  # the stage starts inside the request
        return {"ok": True}

    async def drive() -> None:
        nonlocal release
        release = asyncio.Event()
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/fire")).status_code == 200
        assert [s.name for s in spans] == ["GET /fire"], "the open stage waits for its end"
        release.set()
        await asyncio.gather(*tasks)

    _deferred.set_deferred(True)
    try:
        with capture_spans() as spans:
            asyncio.run(drive())
    finally:
        _deferred.set_deferred(None)
    server, stage = spans[0], spans[1]
    assert stage.name == "audit" and stage.parent is not None
    assert stage.parent.span_id == server.context.span_id
    assert stage.end_time is not None and server.end_time is not None and stage.end_time > server.end_time


def test_spans_ending_in_threads_during_the_flush_are_exported_once() -> None:
    """Many stages ending in threads while the request is flushed: none lost, none twice."""
    _deferred.set_deferred(True)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: make the race likely
    try:
        with capture_spans() as spans:
            for _ in range(50):
                root, request = _deferred.start_request_span("GET", otel_context.Context(), SpanKind.SERVER, {})
                assert request is not None
                token = otel_context.attach(trace.set_span_in_context(root))
                var = _deferred.enter(request)
                children = [root.child(f"c{i}") for i in range(40)]  # type: ignore[attr-defined]
                start = threading.Barrier(5)

                def end_some(part: list[trace.Span], barrier: threading.Barrier = start) -> None:
                    barrier.wait()
                    for span in part:
                        span.end()

                threads = [threading.Thread(target=end_some, args=(children[k::4],)) for k in range(4)]
                for t in threads:
                    t.start()
                start.wait()
                root.end()
                otel_context.detach(token)
                _deferred.leave(request, var)
                for t in threads:
                    t.join()
    finally:
        sys.setswitchinterval(interval)
        _deferred.set_deferred(None)
    ids = [s.context.span_id for s in spans]
    assert len(ids) == len(set(ids)) == 50 * 41


def test_new_root_inside_a_request_keeps_its_own_trace() -> None:
    """A new trace started inside a deferred request (a background job's root span): the stage
    under it belongs to that trace and is exported with it, not with the request."""

    @mltrace.inference(name="job-step")
    def step(x: int) -> int:
        return x

    app = FastAPI(telemetry={"tracing": False})
    app.add_middleware(mltrace.MLTraceMiddleware)

    @app.get("/job")
    async def job() -> dict[str, bool]:
        with trace.get_tracer("jobs").start_as_current_span("job", context=otel_context.Context()):
            step(1)
        return {"ok": True}

    async def drive() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            assert (await client.get("/job")).status_code == 200

    _deferred.set_deferred(True)
    try:
        with capture_spans() as spans:
            asyncio.run(drive())
    finally:
        _deferred.set_deferred(None)
    by_name = {s.name: s for s in spans}
    assert set(by_name) == {"GET /job", "job", "job-step"}
    job_span, stage = by_name["job"], by_name["job-step"]
    assert stage.parent is not None and stage.parent.span_id == job_span.context.span_id
    assert stage.context.trace_id == job_span.context.trace_id != by_name["GET /job"].context.trace_id
    assert [s.name for s in spans] == ["job-step", "job", "GET /job"], "ended in order, none deferred past its root"
