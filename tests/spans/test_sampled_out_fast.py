"""The sampled-out stage's short path (``_lifetime.QUICK``): a stage wrapper or ``mltrace.stage``
under a valid, unsampled ``NonRecordingSpan`` (a dropped request's server span) and with no drift
scorer calls the function straight away. Only the cost may change, never what is seen:

- drift still sees every input and output of a dropped request when a scorer is configured;
- a sampled remote parent with no SDK span, or no parent at all, still gets a stage span;
- the current span inside the stage is the request's, exceptions leave unchanged;
- recursion keeps its depth and the recursion limit comes back to where it was, whatever the
  shape of the recursion (frames between the calls, where the stack runs out).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import nullcontext, suppress
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import mltrace
from mltrace.spans import _lifetime
from mltrace.testing import CapturedSpans

TRACE_ID, SPAN_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7


def _dropped() -> NonRecordingSpan:
    return NonRecordingSpan(SpanContext(TRACE_ID, SPAN_ID, is_remote=False, trace_flags=TraceFlags(0)))


class Scorer:
    """A drift scorer that remembers what it was shown (inputs and outputs)."""

    def __init__(self) -> None:
        self.inputs: list[object] = []
        self.outputs: list[object] = []

    def score(self, x: object) -> Mapping[str, Any]:
        self.inputs.append(x)
        return {"score": 0.0}

    def span_attributes(self, result: Mapping[str, Any]) -> Mapping[str, Any]:
        return {"ml.drift.score": result["score"]}

    def observe_output(self, y: object) -> Mapping[str, Any] | None:
        self.outputs.append(y)
        return None


def test_the_short_path_is_taken_here() -> None:
    """The reading it relies on holds with the installed OpenTelemetry (else every test below
    would pass through the general path and prove nothing about the short one)."""
    assert _lifetime.QUICK


async def test_drift_sees_a_dropped_requests_inputs_and_outputs(spans: CapturedSpans) -> None:
    sync_scorer, async_scorer, gen_scorer, stage_scorer = Scorer(), Scorer(), Scorer(), Scorer()

    @mltrace.inference(model="m", drift=sync_scorer)
    def predict(x: list[float]) -> float:
        return sum(x)

    @mltrace.inference(model="m", drift=async_scorer)
    async def apredict(x: list[float]) -> float:
        await asyncio.sleep(0)
        return max(x)

    @mltrace.inference(model="m", drift=gen_scorer)
    def stream(x: list[float]) -> Iterator[float]:
        yield from x

    with trace.use_span(_dropped()):
        assert predict([1.0, 2.0]) == 3.0
        assert await apredict([1.0, 5.0]) == 5.0
        assert list(stream([7.0, 8.0])) == [7.0, 8.0]
        with mltrace.stage("postprocess", drift=stage_scorer) as s:
            s.record_input([4.0])
            s.record_output({"y": 1})
    assert (sync_scorer.inputs, sync_scorer.outputs) == ([[1.0, 2.0]], [3.0])
    assert (async_scorer.inputs, async_scorer.outputs) == ([[1.0, 5.0]], [5.0])
    assert (gen_scorer.inputs, gen_scorer.outputs) == ([[7.0, 8.0]], [8.0])
    assert (stage_scorer.inputs, stage_scorer.outputs) == ([[4.0]], [{"y": 1}])
    assert len(spans) == 0


@pytest.mark.parametrize("parent", ["sampled_remote", "none"])
async def test_a_stage_span_is_made_where_the_parent_is_not_a_dropped_one(
    spans: CapturedSpans, parent: str
) -> None:
    """A sampled remote parent with no SDK span (a NonRecordingSpan with the sampled flag), and
    no parent at all (INVALID_SPAN, a NonRecordingSpan too), each stage starts its own span."""

    @mltrace.preprocess
    def prep(x: int) -> int:
        return x + 1

    @mltrace.feature_lookup(store="memory")
    async def lookup(key: str) -> dict[str, float]:
        return {"a": 1.0}

    @mltrace.postprocess
    def post(x: int) -> Iterator[int]:
        yield x

    @mltrace.inference
    async def agen(x: int) -> AsyncIterator[int]:
        yield x

    remote = NonRecordingSpan(SpanContext(TRACE_ID, SPAN_ID, is_remote=True, trace_flags=TraceFlags(1)))
    with trace.use_span(remote) if parent == "sampled_remote" else nullcontext():
        assert prep(1) == 2
        assert await lookup("u1") == {"a": 1.0}
        assert list(post(3)) == [3]
        assert [x async for x in agen(4)] == [4]
        with mltrace.stage("decode") as s:
            assert s.is_recording()
    names = sorted(s.name for s in spans)
    assert names == ["decode", "feature_lookup", "inference", "postprocess", "preprocess"]
    for span in spans:
        if parent == "sampled_remote":
            assert span.context.trace_id == TRACE_ID
            assert span.parent is not None and span.parent.span_id == SPAN_ID
        else:
            assert span.parent is None


async def test_inside_a_dropped_stage_the_current_span_is_the_requests(spans: CapturedSpans) -> None:
    parent = _dropped()
    seen: list[object] = []

    @mltrace.preprocess
    def prep(x: int) -> int:
        seen.extend([trace.get_current_span(), mltrace.current_trace_id(), mltrace.current_stage().span])
        return x

    @mltrace.feature_lookup
    async def lookup(x: int) -> int:
        seen.extend([trace.get_current_span(), mltrace.current_trace_id(), mltrace.current_stage().span])
        return x

    with trace.use_span(parent):
        prep(1)
        await lookup(1)
        with mltrace.stage("postprocess") as s:
            seen.extend([trace.get_current_span(), mltrace.current_trace_id(), s.span])
            assert s.trace_id == format(TRACE_ID, "032x") and s.span_id == format(SPAN_ID, "016x")
            assert not s.is_recording()
        assert trace.get_current_span() is parent
    assert seen == [parent, format(TRACE_ID, "032x"), parent] * 3
    assert len(spans) == 0


async def test_exceptions_leave_a_dropped_stage_unchanged(spans: CapturedSpans) -> None:
    boom = ValueError("bad row")

    @mltrace.inference
    def predict(x: int) -> int:
        raise boom

    @mltrace.inference
    async def apredict(x: int) -> int:
        raise boom

    limit = sys.getrecursionlimit()
    with trace.use_span(_dropped()):
        with pytest.raises(ValueError, match="bad row") as info:
            predict(1)
        assert info.value is boom and info.value.__context__ is None
        assert info.traceback[-1].name == "predict"
        with pytest.raises(ValueError, match="bad row") as ainfo:
            await apredict(1)
        assert ainfo.value is boom and ainfo.value.__context__ is None
        with pytest.raises(ValueError, match="bad row") as sinfo, mltrace.stage("postprocess"):
            raise boom
        assert sinfo.value is boom
    assert sys.getrecursionlimit() == limit
    assert len(spans) == 0


def test_a_dropped_request_through_the_middleware(spans: CapturedSpans) -> None:
    """The middleware's own sampled-out context (an incoming unsampled traceparent): the stages
    run, record nothing, see the request's trace id, and drift still sees them."""
    scorer = Scorer()
    seen: list[str | None] = []

    @mltrace.preprocess
    def prep(x: list[float]) -> list[float]:
        seen.append(mltrace.current_trace_id())
        return x

    @mltrace.inference(model="m", drift=scorer)
    def predict(x: list[float]) -> float:
        seen.append(mltrace.current_trace_id())
        return sum(x)

    @mltrace.feature_lookup(store="memory")
    async def lookup(user: str) -> dict[str, float]:
        seen.append(mltrace.current_trace_id())
        return {"a": 1.0}

    async def endpoint(request: Request) -> JSONResponse:
        body = await request.json()
        x = prep(body["x"])
        await lookup("u1")
        y = predict(x)
        with mltrace.stage("postprocess") as s:
            seen.append(s.trace_id)
            s.record_output(y)
        return JSONResponse({"y": y})

    app = Starlette(routes=[Route("/predict", endpoint, methods=["POST"])])
    app.add_middleware(mltrace.MLTraceMiddleware)
    client = TestClient(app)
    trace_id = format(TRACE_ID, "032x")
    r = client.post("/predict", json={"x": [1.0, 2.0]},
                    headers={"traceparent": f"00-{trace_id}-{SPAN_ID:016x}-00"})
    assert r.status_code == 200 and r.json() == {"y": 3.0}
    assert r.headers["x-trace-id"] == trace_id
    assert seen == [trace_id] * 4
    assert (scorer.inputs, scorer.outputs) == ([[1.0, 2.0]], [3.0])
    assert len(spans) == 0

    r = client.post("/predict", json={"x": [1.0, 2.0]},
                    headers={"traceparent": f"00-{trace_id}-{SPAN_ID:016x}-01"})
    assert r.status_code == 200
    assert sorted(s.name for s in spans if s.name != "POST /predict") == [
        "feature_lookup", "inference", "postprocess", "preprocess",
    ]


# -- recursion ----------------------------------------------------------------------------------
# The short path has no span start below the wrapper, so a recursion runs out of stack right in
# the wrapper or the function: every distance between the calls (helper frames) and every
# alignment with the limit (padding frames above) is tried.


def _recursive(extra: int, decorated: bool) -> Callable[[int, list[int]], int]:
    def helper(n: int, seen: list[int], k: int) -> int:
        return helper(n, seen, k - 1) if k else func(n + 1, seen)

    def func(n: int, seen: list[int]) -> int:
        if n < 0:  # a probe, not a recursion: the limit as a top-level call sees it
            return sys.getrecursionlimit()
        seen[0] = n
        return helper(n, seen, extra) if extra else func(n + 1, seen)

    if decorated:
        func = mltrace.postprocess(record_input=False, record_output=False)(func)
    return func


def _deepest(f: Callable[[int, list[int]], int], pad: int) -> int:
    if pad:
        return _deepest(f, pad - 1)
    seen = [0]
    with suppress(RecursionError):
        f(0, seen)
    return seen[0]


def test_dropped_recursion_keeps_its_depth_and_the_limit_comes_back(spans: CapturedSpans) -> None:
    limit = sys.getrecursionlimit()
    with trace.use_span(_dropped()):
        for extra in range(4):
            for pad in range(6):
                undecorated = _deepest(_recursive(extra, False), pad)
                traced = _recursive(extra, True)
                decorated = _deepest(traced, pad)
                assert sys.getrecursionlimit() == limit, (extra, pad)
                assert decorated >= undecorated - 40, (extra, pad, undecorated, decorated)
                # its nesting count came back to zero too: a call now is not nested
                assert traced(-1, [0]) == limit, (extra, pad)
    assert len(spans) == 0


def test_a_nested_dropped_call_raises_the_limit_for_its_duration_only() -> None:
    limit = sys.getrecursionlimit()
    seen: list[int] = []

    @mltrace.preprocess
    def count(n: int) -> int:
        seen.append(sys.getrecursionlimit())
        return count(n - 1) if n else 0

    with trace.use_span(_dropped()):
        count(3)
        count(0)
    assert seen == [limit, limit + 1, limit + 2, limit + 3, limit]
    assert sys.getrecursionlimit() == limit


def _arecursive(extra: int, decorated: bool) -> Callable[[int, list[int]], Any]:
    async def helper(n: int, seen: list[int], k: int) -> int:
        return await (helper(n, seen, k - 1) if k else func(n + 1, seen))

    async def func(n: int, seen: list[int]) -> int:
        seen[0] = n
        return await (helper(n, seen, extra) if extra else func(n + 1, seen))

    if decorated:
        func = mltrace.postprocess(record_input=False, record_output=False)(func)
    return func


async def _adeepest(f: Callable[[int, list[int]], Any], pad: int) -> int:
    if pad:
        return await _adeepest(f, pad - 1)
    seen = [0]
    with suppress(RecursionError):
        await f(0, seen)
    return seen[0]


async def test_dropped_async_recursion_keeps_its_depth_and_the_limit_comes_back(spans: CapturedSpans) -> None:
    limit = sys.getrecursionlimit()
    with trace.use_span(_dropped()):
        for extra in range(3):
            for pad in range(4):
                undecorated = await _adeepest(_arecursive(extra, False), pad)
                decorated = await _adeepest(_arecursive(extra, True), pad)
                assert sys.getrecursionlimit() == limit, (extra, pad)
                assert decorated >= undecorated - 40, (extra, pad, undecorated, decorated)
    assert len(spans) == 0


def test_sampled_out_tells_a_dropped_trace_from_a_kept_one_or_none(spans: CapturedSpans) -> None:
    """``mltrace.spans.sampled_out``, the check the integrations make before calling through."""
    from mltrace.spans import sampled_out

    sampled = NonRecordingSpan(SpanContext(TRACE_ID, SPAN_ID, is_remote=True, trace_flags=TraceFlags(1)))
    assert sampled_out(_dropped())
    assert not sampled_out(sampled)  # a sampled remote parent: its children are made
    assert not sampled_out(trace.INVALID_SPAN)  # no trace at all: a stage starts its own
    assert not sampled_out()  # nothing current
    with trace.use_span(_dropped()):
        assert sampled_out()
    with mltrace.stage("recorded") as stage:
        assert not sampled_out(stage.span)
        assert not sampled_out()
