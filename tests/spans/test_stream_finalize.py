"""A decorated generator closed by its finalizer (the GC, another thread) must not write to the
Context it happens to be closed in.

Why: Starlette leaves the sync iterator of a disconnected client's StreamingResponse to the GC; the
cyclic GC runs it in the middle of whatever allocates, including a ContextVar.set on the event-loop
thread. Re-entering ContextVar.set on that same Context frees the HAMT the interrupted set is still
walking (CPython gh-148891, Python < 3.12): uvicorn died with SIGSEGV (see
tests/serving/repro_sync_stream_crash.py and tests/serving/test_stream_disconnect_storm.py). The
wrapper now closes the function and ends the span in a copy of the current context, so a variable
set there (by OpenTelemetry's attach/detach, the span processor, or the function's own ``finally``)
never lands in the Context that was interrupted. These tests check that from outside: a
ContextVar set by the function's ``finally`` must not appear in the Context the close ran in.
"""

from __future__ import annotations

import contextvars
import gc
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

from opentelemetry import trace

from mltrace import inference, semconv
from mltrace.testing import CapturedSpans

MARK: contextvars.ContextVar[str | None] = contextvars.ContextVar("test_stream_finalize.mark", default=None)


@inference
def tokens(n: int, seen: list[Any]) -> Iterator[int]:
    try:
        yield from range(n)
    finally:
        seen.append(trace.get_current_span())  # the function's finally still runs under its span
        MARK.set("set while closing")


def _check_span(spans: CapturedSpans, seen: list[Any]) -> None:
    span = spans.stage("inference")
    assert span.end_time is not None
    assert span.attributes is not None and span.attributes[semconv.ML_STREAM_CLOSED_EARLY] is True
    assert len(seen) == 1 and seen[0].get_span_context().span_id == span.context.span_id


def test_close_does_not_write_to_the_callers_context(spans: CapturedSpans) -> None:
    seen: list[Any] = []
    gen = tokens(10, seen)
    assert next(gen) == 0
    ctx = contextvars.copy_context()
    ctx.run(gen.close)
    assert ctx.get(MARK) is None  # before the fix: "set while closing"
    assert trace.get_current_span() is trace.INVALID_SPAN
    _check_span(spans, seen)


def test_gc_finalizer_in_another_thread_does_not_write_to_its_context(spans: CapturedSpans) -> None:
    """Advanced in a worker thread (Starlette's thread pool), dropped in a reference cycle, collected
    on this thread inside a Context of its own: that Context is left as it was."""
    seen: list[Any] = []
    holder: list[Any] = []

    def advance() -> None:
        gen = tokens(100_000, seen)
        next(gen)
        holder.append(gen)

    worker = threading.Thread(target=advance)
    worker.start()
    worker.join()

    def drop_and_collect() -> None:
        cycle: list[Any] = [holder.pop()]
        cycle.append(cycle)  # only the cyclic GC frees it
        del cycle
        gc.collect()

    ctx = contextvars.copy_context()
    ctx.run(drop_and_collect)
    assert ctx.get(MARK) is None
    _check_span(spans, seen)


def test_gc_finalizers_inside_contextvar_set_survive(spans: CapturedSpans) -> None:
    """The shape of the crash: abandoned decorated generators collected by GC passes that allocations
    inside ContextVar.set trigger (threshold 1), on a deep context. Must simply not crash (with the old
    wrapper this is a use-after-free; whether it faults depends on the allocator)."""
    pads = [contextvars.ContextVar(f"test_stream_finalize.pad{i}") for i in range(40)]
    seen: list[Any] = []

    def churn() -> None:
        for v in pads:
            v.set(object())
        for _ in range(300):
            gen = tokens(10, seen)
            next(gen)
            cycle: list[Any] = [gen]
            cycle.append(cycle)
            del gen, cycle
            for v in pads[:8]:
                v.set(object())

    old = gc.get_threshold()
    gc.set_threshold(1, 1, 1)
    try:
        ctx = contextvars.copy_context()
        ctx.run(churn)
    finally:
        gc.set_threshold(*old)
        gc.collect()
    assert len(seen) == 300 and ctx.get(MARK) is None
    assert len(spans.stages("inference")) == 300


@inference
async def atokens(n: int, seen: list[Any]) -> AsyncIterator[int]:
    try:
        for i in range(n):
            yield i
    finally:
        seen.append(trace.get_current_span())
        MARK.set("set while closing")


async def test_async_generator_aclose_ends_span_without_touching_the_callers_context(spans: CapturedSpans) -> None:
    seen: list[Any] = []
    agen = atokens(10, seen)
    assert await agen.__anext__() == 0
    await agen.aclose()
    # aclose() runs in this task's context: the function's own finally may set a variable here, as
    # any async generator's may; the span is ended and the function ran under it
    _check_span(spans, seen)
    assert trace.get_current_span() is trace.INVALID_SPAN
