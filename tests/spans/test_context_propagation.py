"""Trace context across threads: asyncio.to_thread, run_in_executor and thread pools."""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanKind
from starlette.testclient import TestClient

import mltrace
from mltrace.spans._concurrency import ContextThreadPoolExecutor, run_in_executor, wrap_executor
from mltrace.testing import CapturedSpans


def work(x: int) -> int:
    """Model code on a worker thread: one stage span."""
    with mltrace.stage("worker"):
        return x + 1


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    """A one-thread pool whose thread already exists, started outside any trace."""
    with ThreadPoolExecutor(max_workers=1) as executor:
        executor.submit(lambda: None).result()
        yield executor


def _parent_of_worker(spans: CapturedSpans) -> tuple[ReadableSpan, ReadableSpan]:
    return spans.stage("request"), spans.stage("worker")


def _is_child(child: ReadableSpan, parent: ReadableSpan) -> bool:
    return child.parent is not None and child.parent.span_id == parent.context.span_id


async def test_asyncio_to_thread_already_keeps_the_trace(spans: CapturedSpans) -> None:
    """asyncio.to_thread copies the context itself: the worker's span is the request's child."""
    with mltrace.stage("request"):
        assert await asyncio.to_thread(work, 1) == 2
    assert _is_child(*reversed(_parent_of_worker(spans)))


async def test_bare_run_in_executor_loses_the_trace(spans: CapturedSpans, pool: ThreadPoolExecutor) -> None:
    """Without help, loop.run_in_executor starts an orphan trace (why the helpers exist)."""
    with mltrace.stage("request"):
        await asyncio.get_running_loop().run_in_executor(pool, work, 1)
    request, worker = _parent_of_worker(spans)
    assert worker.parent is None and worker.context.trace_id != request.context.trace_id


async def test_bare_executor_submit_loses_the_trace(spans: CapturedSpans, pool: ThreadPoolExecutor) -> None:
    """Without help, ThreadPoolExecutor.submit starts an orphan trace too."""
    with mltrace.stage("request"):
        pool.submit(work, 1).result()
    _, worker = _parent_of_worker(spans)
    assert worker.parent is None


@pytest.mark.parametrize("use_default", [False, True], ids=["explicit-pool", "default-executor"])
async def test_run_in_executor_keeps_the_trace(
    spans: CapturedSpans, pool: ThreadPoolExecutor, use_default: bool
) -> None:
    """mltrace's run_in_executor runs the call in the caller's context, with kwargs passed on."""

    def work_kw(x: int, *, plus: int) -> int:
        with mltrace.stage("worker"):
            return x + plus

    with mltrace.stage("request"):
        out = await run_in_executor(None if use_default else pool, work_kw, 1, plus=5)
    assert out == 6
    assert _is_child(*reversed(_parent_of_worker(spans)))


async def test_concurrent_requests_on_one_thread_keep_apart(spans: CapturedSpans, pool: ThreadPoolExecutor) -> None:
    """Many requests sharing one worker thread each get their worker span in their own trace."""

    async def request(i: int) -> None:
        with mltrace.stage("request", attributes={"i": i}):
            await run_in_executor(pool, work, i)

    await asyncio.gather(*(request(i) for i in range(8)))
    requests = {r.context.span_id: r for r in spans.stages("request")}
    workers = spans.stages("worker")
    assert len(workers) == 8
    for w in workers:
        assert w.parent is not None and w.parent.span_id in requests
    assert len({w.parent.span_id for w in workers if w.parent is not None}) == 8


def test_wrapped_executor_submit_and_map_keep_the_trace(spans: CapturedSpans, pool: ThreadPoolExecutor) -> None:
    """wrap_executor(pool).submit and .map run each call in the submitter's context."""
    traced = wrap_executor(pool)
    assert wrap_executor(traced) is traced
    with mltrace.stage("request") as request:
        assert traced.submit(work, 1).result() == 2
        assert list(traced.map(work, [1, 2, 3])) == [2, 3, 4]
    workers = spans.stages("worker")
    assert len(workers) == 4
    assert all(w.parent is not None and w.parent.span_id == request.span.get_span_context().span_id for w in workers)


def test_wrapped_executor_shuts_down_the_pool() -> None:
    """Leaving a wrapped executor's with-block shuts the wrapped pool down."""
    inner = ThreadPoolExecutor(max_workers=1)
    with wrap_executor(inner) as traced:
        traced.submit(int).result()
    with pytest.raises(RuntimeError):
        inner.submit(int)


async def test_context_pool_as_default_executor_fixes_plain_run_in_executor(spans: CapturedSpans) -> None:
    """ContextThreadPoolExecutor as the loop default makes loop.run_in_executor(None, ...) keep the trace."""
    loop = asyncio.get_running_loop()
    executor = ContextThreadPoolExecutor(max_workers=1)
    loop.set_default_executor(executor)
    executor.submit(int).result()  # the worker thread now exists, outside any trace
    with mltrace.stage("request"):
        assert await loop.run_in_executor(None, work, 1) == 2
    assert _is_child(*reversed(_parent_of_worker(spans)))


def test_calls_never_share_a_context(pool: ThreadPoolExecutor) -> None:
    """A context variable set by one call is not seen by the next call on the same thread."""
    var: contextvars.ContextVar[str] = contextvars.ContextVar("var", default="unset")
    traced = wrap_executor(pool)

    def set_and_read() -> str:
        before = var.get()
        var.set("leaked")
        return before

    assert traced.submit(set_and_read).result() == "unset"
    assert traced.submit(set_and_read).result() == "unset"


@pytest.mark.parametrize("bad", [ProcessPoolExecutor, object])
async def test_executors_that_cannot_carry_context_are_refused(bad: type) -> None:
    """A process pool (contexts do not cross processes) or a non-executor is a TypeError."""
    candidate = bad(max_workers=1) if bad is ProcessPoolExecutor else bad()
    try:
        with pytest.raises(TypeError):
            wrap_executor(candidate)
        with pytest.raises(TypeError):
            await run_in_executor(candidate, int)
    finally:
        if isinstance(candidate, ProcessPoolExecutor):
            candidate.shutdown()


def _app(pool: ThreadPoolExecutor) -> FastAPI:
    app = FastAPI()
    app.add_middleware(mltrace.MLTraceMiddleware)

    @app.get("/sync")
    def sync_endpoint() -> dict[str, int]:  # FastAPI runs it in anyio's thread pool
        return {"y": work(1)}

    @app.get("/executor/{x}")
    async def executor_endpoint(x: int) -> dict[str, int]:
        return {"y": await run_in_executor(pool, work, x)}

    return app


def test_fastapi_sync_endpoint_keeps_the_trace(spans: CapturedSpans, pool: ThreadPoolExecutor) -> None:
    """A sync FastAPI endpoint runs on a worker thread and its stages are the server span's children."""
    assert TestClient(_app(pool)).get("/sync").json() == {"y": 2}
    assert _is_child(spans.stage("worker"), spans.server())


async def test_fastapi_concurrent_requests_through_an_executor(spans: CapturedSpans, pool: ThreadPoolExecutor) -> None:
    """Concurrent HTTP requests whose model runs in a shared pool: each worker span is in its request's trace."""
    transport = httpx.ASGITransport(app=_app(pool))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        responses = await asyncio.gather(*(client.get(f"/executor/{i}") for i in range(6)))
    servers = {s.context.trace_id: s for s in spans if s.kind is SpanKind.SERVER}
    assert len(servers) == 6
    for r in responses:
        server = servers[int(r.headers["x-trace-id"], 16)]
        (worker,) = [w for w in spans.stages("worker") if w.context.trace_id == server.context.trace_id]
        assert _is_child(worker, server)
