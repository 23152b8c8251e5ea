"""Batched inference: every request keeps its own trace, the batch span links to all of them."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from unittest.mock import ANY

import httpx
import numpy as np
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, StatusCode, TraceFlags

import mltrace
from mltrace import semconv
from mltrace.batching import (
    ML_BATCH_INDEX,
    ML_BATCH_TRIGGER,
    STAGE_BATCH_WAIT,
    BatchMember,
    BatchSizeError,
    MicroBatcher,
    batch_member,
    record_batch,
    traced_batch,
)
from mltrace.testing import CapturedSpans


def double(xs: list[int]) -> list[int]:
    return [x * 2 for x in xs]


def _tid(span: ReadableSpan) -> int:
    return span.context.trace_id


def _batch_spans(spans: CapturedSpans) -> list[ReadableSpan]:
    """Batch spans: stage spans with ml.batch.size but no ml.batch.index."""
    return [
        s for s in spans.stages("inference")
        if semconv.ML_BATCH_SIZE in (s.attributes or {}) and ML_BATCH_INDEX not in (s.attributes or {})
    ]


def _member_spans(spans: CapturedSpans) -> list[ReadableSpan]:
    return [s for s in spans.stages("inference") if ML_BATCH_INDEX in (s.attributes or {})]


async def _request(batcher: MicroBatcher[int, int], x: int) -> tuple[int, ReadableSpan | None]:
    """One 'request': a handler span of its own trace that submits ``x``."""
    with mltrace.stage("handler") as s:
        out = await batcher.submit(x)
    return out, s.span  # type: ignore[return-value]


def _assert_batched_traces(spans: CapturedSpans, n: int) -> tuple[list[ReadableSpan], list[ReadableSpan]]:
    """Each of ``n`` handler traces has batch_wait and inference; batch spans link to them all."""
    handlers = spans.stages("handler")
    assert len(handlers) == n
    assert len({_tid(h) for h in handlers}) == n, "every request has its own trace"
    batches = _batch_spans(spans)
    members = _member_spans(spans)
    batch_by_span = {b.context.span_id: b for b in batches}
    for h in handlers:
        in_trace = [s for s in spans if _tid(s) == _tid(h) and s is not h]
        assert sorted(s.name for s in in_trace) == [STAGE_BATCH_WAIT, "inference"]
        for s in in_trace:
            assert s.parent is not None and s.parent.span_id == h.context.span_id
        member = next(s for s in in_trace if s.name == "inference")
        assert len(member.links) == 1, "the member's inference links to its batch"
        batch = batch_by_span[member.links[0].context.span_id]
        assert h.context.span_id in {link.context.span_id for link in batch.links}, "and the batch links back"
    for b in batches:
        assert b.parent is None, "the batch span is a root of its own trace"
        assert _tid(b) not in {_tid(h) for h in handlers}, "the batch is in no request's trace"
        assert (b.attributes or {})[semconv.ML_BATCH_SIZE] == len(b.links)
    assert sum(int((b.attributes or {})[semconv.ML_BATCH_SIZE]) for b in batches) == n  # type: ignore[call-overload]
    return batches, members


async def test_each_request_keeps_its_own_trace(spans: CapturedSpans) -> None:
    """Concurrent requests are batched; each trace shows its wait and inference, the batch links all."""
    async with MicroBatcher(double, max_batch_size=4, max_wait_ms=20, model="m", version="2") as batcher:
        results = await asyncio.gather(*(_request(batcher, i) for i in range(10)))
    assert [r[0] for r in results] == [2 * i for i in range(10)]
    batches, members = _assert_batched_traces(spans, 10)
    assert [(b.attributes or {})[semconv.ML_BATCH_SIZE] for b in batches] == [4, 4, 2]
    for span in (*batches, *members):
        attrs = span.attributes or {}
        assert attrs[semconv.ML_MODEL_NAME] == "m" and attrs[semconv.ML_MODEL_VERSION] == "2"
    assert sorted((m.attributes or {})[ML_BATCH_INDEX] for m in members) == [0, 0, 0, 1, 1, 1, 2, 2, 3, 3]


async def test_member_spans_carry_their_own_input_and_output(spans: CapturedSpans) -> None:
    """A member's inference span summarises its own input and output, not the batch's."""
    async with MicroBatcher(double, max_batch_size=2, max_wait_ms=50) as batcher:
        await asyncio.gather(_request(batcher, 3), _request(batcher, 5))
    values = sorted(
        ((m.attributes or {})["ml.input.value"], (m.attributes or {})["ml.output.value"]) for m in _member_spans(spans)
    )
    assert values == [(3, 6), (5, 10)]
    assert not any(k.startswith("ml.input.") for k in _batch_spans(spans)[0].attributes or {})


async def test_wait_span_ends_when_the_batch_starts(spans: CapturedSpans) -> None:
    """batch_wait covers the time until the batch starts: max_wait_ms for a lone request."""
    async with MicroBatcher(double, max_batch_size=8, max_wait_ms=30) as batcher:
        await _request(batcher, 1)
    wait = spans.stage(STAGE_BATCH_WAIT)
    (batch,) = _batch_spans(spans)
    assert wait.end_time == batch.start_time == _member_spans(spans)[0].start_time
    assert wait.end_time is not None and wait.start_time is not None
    assert (wait.end_time - wait.start_time) / 1e6 >= 25
    assert (batch.attributes or {})[ML_BATCH_TRIGGER] == "timeout"


async def test_full_batch_starts_without_waiting(spans: CapturedSpans) -> None:
    """A full batch runs at once, long before max_wait_ms."""
    t0 = time.perf_counter()
    async with MicroBatcher(double, max_batch_size=3, max_wait_ms=10_000) as batcher:
        await asyncio.gather(*(_request(batcher, i) for i in range(3)))
    assert time.perf_counter() - t0 < 5
    (batch,) = _batch_spans(spans)
    assert (batch.attributes or {})[ML_BATCH_TRIGGER] == "full"


async def test_async_batch_function(spans: CapturedSpans) -> None:
    """An async batch function is awaited on the loop; its own spans are the batch span's children."""

    async def predict(xs: list[int]) -> list[int]:
        with mltrace.stage("model_call"):
            await asyncio.sleep(0.001)
        return [x + 1 for x in xs]

    async with MicroBatcher(predict, max_batch_size=2, max_wait_ms=50) as batcher:
        results = await asyncio.gather(_request(batcher, 1), _request(batcher, 2))
    assert [r[0] for r in results] == [2, 3]
    (batch,) = _batch_spans(spans)
    call = spans.stage("model_call")
    assert _tid(call) == _tid(batch) and call.parent is not None and call.parent.span_id == batch.context.span_id


async def test_sync_batch_function_runs_in_a_thread_under_the_batch_span(spans: CapturedSpans) -> None:
    """A sync batch function runs off the event loop thread, and its spans stay in the batch trace."""
    seen: list[int] = []

    def predict(xs: list[int]) -> list[int]:
        seen.append(threading.get_ident())
        with mltrace.stage("forward"):
            return xs

    async with MicroBatcher(predict, max_batch_size=2, max_wait_ms=50) as batcher:
        await asyncio.gather(_request(batcher, 1), _request(batcher, 2))
    assert seen and seen[0] != threading.get_ident()
    (batch,) = _batch_spans(spans)
    forward = spans.stage("forward")
    assert forward.parent is not None and forward.parent.span_id == batch.context.span_id


async def test_unthreaded_sync_function_runs_on_the_loop(spans: CapturedSpans) -> None:
    """threaded=False calls a sync batch function on the event loop thread."""
    seen: list[int] = []

    def predict(xs: list[int]) -> list[int]:
        seen.append(threading.get_ident())
        return xs

    async with MicroBatcher(predict, threaded=False, max_wait_ms=0) as batcher:
        assert await batcher.submit(7) == 7
    assert seen == [threading.get_ident()]


async def test_failure_reaches_every_member_and_every_span(spans: CapturedSpans) -> None:
    """An exception in the batch function is raised in each request and recorded on each span."""

    def broken(xs: list[int]) -> list[int]:
        raise RuntimeError("CUDA out of memory")

    async with MicroBatcher(broken, max_batch_size=3, max_wait_ms=50) as batcher:
        results = await asyncio.gather(*(_request(batcher, i) for i in range(3)), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) and "out of memory" in str(r) for r in results)
    for span in (*_batch_spans(spans), *_member_spans(spans)):
        assert span.status.status_code is StatusCode.ERROR
        assert (span.attributes or {})["error.type"] == "RuntimeError"


async def test_wrong_number_of_outputs_is_an_error(spans: CapturedSpans) -> None:
    """A batch function that returns fewer outputs than inputs fails every member clearly."""
    async with MicroBatcher(lambda xs: xs[:1], max_batch_size=2, max_wait_ms=50) as batcher:
        results = await asyncio.gather(batcher.submit(1), batcher.submit(2), return_exceptions=True)
    assert all(isinstance(r, BatchSizeError) for r in results)
    assert isinstance(results[0], ValueError) and isinstance(results[0], mltrace.MLTraceError)


async def test_cancelled_request_leaves_the_queue(spans: CapturedSpans) -> None:
    """A request cancelled while queued is not computed, and its batch_wait span ends."""
    batches: list[list[int]] = []

    def record(xs: list[int]) -> list[int]:
        batches.append(list(xs))
        return xs

    async with MicroBatcher(record, max_batch_size=8, max_wait_ms=50) as batcher:
        doomed = asyncio.create_task(_request(batcher, 1))
        kept = asyncio.create_task(_request(batcher, 2))
        await asyncio.sleep(0.005)
        doomed.cancel()
        assert (await kept)[0] == 2
        with pytest.raises(asyncio.CancelledError):
            await doomed
    assert batches == [[2]]
    waits = spans.stages(STAGE_BATCH_WAIT)
    assert len(waits) == 2
    assert any(e.name == "batch_wait.ended" and (e.attributes or {})["reason"] == "cancelled"
               for w in waits for e in w.events)


async def test_close_runs_what_is_queued_then_refuses(spans: CapturedSpans) -> None:
    """aclose() runs queued inputs at once (trigger "close"); later submits raise."""
    batcher = MicroBatcher(double, max_batch_size=8, max_wait_ms=60_000)
    pending = asyncio.gather(batcher.submit(1), batcher.submit(2))
    await asyncio.sleep(0)
    assert batcher.queued == 2
    await batcher.aclose()
    assert await pending == [2, 4]
    assert (_batch_spans(spans)[0].attributes or {})[ML_BATCH_TRIGGER] == "close"
    with pytest.raises(RuntimeError, match="closed"):
        await batcher.submit(3)


@pytest.mark.parametrize("limit", [1, 3])
async def test_concurrent_batches_are_bounded(limit: int) -> None:
    """At most max_concurrent_batches batches run at once; inputs queue meanwhile."""
    running = peak = 0

    async def slow(xs: list[int]) -> list[int]:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.01)
        running -= 1
        return xs

    async with MicroBatcher(slow, max_batch_size=2, max_wait_ms=0, max_concurrent_batches=limit) as batcher:
        assert await asyncio.gather(*(batcher.submit(i) for i in range(12))) == list(range(12))
    assert peak == limit


async def test_outside_a_trace_only_the_batch_span_is_made(spans: CapturedSpans) -> None:
    """Inputs submitted outside any trace add no wait/member spans and no links."""
    async with MicroBatcher(double, max_batch_size=2, max_wait_ms=50) as batcher:
        assert await asyncio.gather(batcher.submit(1), batcher.submit(2)) == [2, 4]
    assert [s.name for s in spans] == ["inference"]
    assert spans[0].links == () or list(spans[0].links) == []


async def test_sampled_out_requests_get_no_spans_and_no_links(spans: CapturedSpans) -> None:
    """A request whose trace was sampled out gets no member spans, and the batch does not link to it."""
    unsampled = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(0))

    async def request(x: int) -> int:
        with trace.use_span(NonRecordingSpan(unsampled)):
            return await batcher.submit(x)

    async with MicroBatcher(double, max_batch_size=2, max_wait_ms=50) as batcher:
        assert await asyncio.gather(request(1), _request(batcher, 2)) == [2, (4, ANY)]
    (batch,) = _batch_spans(spans)
    assert len(batch.links) == 1 and batch.links[0].context.trace_id != 0x1234
    assert len(_member_spans(spans)) == 1 and len(spans.stages(STAGE_BATCH_WAIT)) == 1


def test_idle_batcher_moves_to_a_new_event_loop() -> None:
    """A module-level batcher serves one event loop after another (as test clients make)."""
    batcher = MicroBatcher(double, max_wait_ms=0)
    assert asyncio.run(batcher.submit(1)) == 2
    assert asyncio.run(batcher.submit(2)) == 4


@pytest.mark.parametrize(
    "options",
    [
        {"max_batch_size": 0},
        {"max_batch_size": 2.5},
        {"max_wait_ms": -1},
        {"max_wait_ms": float("nan")},
        {"max_concurrent_batches": 0},
        {"stage": ""},
    ],
)
def test_bad_options_are_rejected(options: dict[str, object]) -> None:
    """Invalid sizes, waits and stage names fail at construction with a clear error."""
    with pytest.raises((ValueError, TypeError)):
        MicroBatcher(double, **options)  # type: ignore[arg-type]


def test_non_callable_is_rejected() -> None:
    """MicroBatcher needs a callable batch function."""
    with pytest.raises(TypeError, match="callable"):
        MicroBatcher(42)  # type: ignore[arg-type]


async def test_record_batch_traces_a_hand_written_batcher(spans: CapturedSpans) -> None:
    """batch_member + record_batch give a user's own queue-and-worker batcher the same traces."""
    queue: asyncio.Queue[tuple[BatchMember[int], asyncio.Future[int]]] = asyncio.Queue()

    async def worker() -> None:
        while True:
            items = [await queue.get()]
            while not queue.empty() and len(items) < 4:
                items.append(queue.get_nowait())
            members = [m for m, _ in items]
            with record_batch(members, model="own") as batch:
                outputs = double(batch.inputs)
                batch.record_outputs(outputs)
            for (_, fut), out in zip(items, outputs, strict=True):
                fut.set_result(out)

    async def handle(x: int) -> int:
        with mltrace.stage("handler"):
            fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
            await queue.put((batch_member(x), fut))
            return await fut

    task = asyncio.create_task(worker())
    try:
        assert await asyncio.gather(*(handle(i) for i in range(6))) == [2 * i for i in range(6)]
    finally:
        task.cancel()
    _assert_batched_traces(spans, 6)


def test_traced_batch_decorator_on_a_sync_function(spans: CapturedSpans) -> None:
    """@traced_batch turns fn(inputs) into fn(members), traced, outputs unchanged."""

    @traced_batch(model="t")
    def predict(xs: list[np.ndarray]) -> list[float]:
        return np.stack(xs).sum(axis=1).tolist()  # type: ignore[no-any-return]

    members = []
    for i in range(3):
        with mltrace.stage("handler"):
            members.append(batch_member(np.full(4, float(i))))
    assert predict(members) == [0.0, 4.0, 8.0]
    _assert_batched_traces(spans, 3)
    assert sorted((m.attributes or {})["ml.output.value"] for m in _member_spans(spans)) == [0.0, 4.0, 8.0]


async def test_traced_batch_decorator_on_an_async_function(spans: CapturedSpans) -> None:
    """@traced_batch (bare) works on async batch functions too."""

    @traced_batch
    async def predict(xs: list[int]) -> list[int]:
        return [x * 10 for x in xs]

    with mltrace.stage("handler"):
        member = batch_member(4)
    assert await predict([member]) == [40]
    _assert_batched_traces(spans, 1)


def test_record_batch_records_failure_and_reraises(spans: CapturedSpans) -> None:
    """An exception in a record_batch block is recorded on batch and member spans, then re-raised."""
    with mltrace.stage("handler"):
        member = batch_member(1)
    with pytest.raises(KeyError), record_batch([member]):
        raise KeyError("feature")
    for span in (*_batch_spans(spans), *_member_spans(spans)):
        assert span.status.status_code is StatusCode.ERROR


def test_abandoned_member_can_be_closed(spans: CapturedSpans) -> None:
    """A member dropped by the user's batcher ends its batch_wait span on close()."""
    with mltrace.stage("handler"):
        member = batch_member(1)
    member.close("shed")
    member.close()  # idempotent
    wait = spans.stage(STAGE_BATCH_WAIT)
    assert [(e.name, dict(e.attributes or {})) for e in wait.events] == [("batch_wait.ended", {"reason": "shed"})]


def test_outputs_that_do_not_match_are_noted_not_raised(spans: CapturedSpans) -> None:
    """record_outputs with the wrong length records an mltrace.error event instead of raising."""
    with mltrace.stage("handler"):
        member = batch_member(1)
    with record_batch([member]) as batch:
        batch.record_outputs([1, 2])
    (span,) = _batch_spans(spans)
    assert [e.name for e in span.events] == [semconv.ML_TRACE_ERROR]


def _fastapi_app(batcher: MicroBatcher[list[float], float]) -> FastAPI:
    app = FastAPI()
    app.add_middleware(mltrace.MLTraceMiddleware)

    @app.post("/predict")
    async def predict(body: dict[str, list[float]]) -> dict[str, float]:
        return {"y": await batcher.submit(body["x"])}

    return app


def _model(xs: Sequence[list[float]]) -> list[float]:
    return np.asarray(xs, dtype=np.float64).sum(axis=1).tolist()  # type: ignore[no-any-return]


async def test_fastapi_requests_share_a_batch_but_keep_their_traces(spans: CapturedSpans) -> None:
    """Concurrent HTTP requests to a FastAPI app: one batch, N server traces each with its inference."""
    batcher: MicroBatcher[list[float], float] = MicroBatcher(_model, max_batch_size=5, max_wait_ms=200)
    transport = httpx.ASGITransport(app=_fastapi_app(batcher))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        responses = await asyncio.gather(*(client.post("/predict", json={"x": [i, 1.0]}) for i in range(5)))
    await batcher.aclose()
    assert [r.json()["y"] for r in responses] == [i + 1.0 for i in range(5)]
    servers = [s for s in spans if s.kind is SpanKind.SERVER]
    assert len(servers) == 5
    (batch,) = _batch_spans(spans)
    assert {link.context.span_id for link in batch.links} == {s.context.span_id for s in servers}
    by_trace = {format(s.context.trace_id, "032x"): s for s in servers}
    for r in responses:
        server = by_trace[r.headers["x-trace-id"]]
        in_trace = [s for s in spans if s.context.trace_id == server.context.trace_id]
        assert sorted(s.name for s in in_trace) == sorted([server.name, STAGE_BATCH_WAIT, "inference"])
