"""Stage spans from the decorators and the ``stage`` context manager."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

import mltrace
from mltrace import semconv
from mltrace.testing import CapturedSpans


def test_sync_decorator_records_stage_and_summaries(spans: CapturedSpans) -> None:
    """A decorated sync function makes one span with ml.stage and input/output summaries."""

    @mltrace.preprocess
    def double(x: np.ndarray) -> np.ndarray:
        return x * 2

    out = double(np.arange(6, dtype=np.float32).reshape(2, 3))
    assert out.shape == (2, 3)
    span = spans.stage("preprocess")
    attrs = span.attributes or {}
    assert span.name == "preprocess"
    assert attrs[semconv.ML_STAGE] == "preprocess"
    assert list(attrs["ml.input.shape"]) == [2, 3]  # type: ignore[arg-type]
    assert attrs["ml.output.max"] == 10.0
    assert str(attrs["code.function.name"]).endswith("double")


def test_inference_decorator_with_options(spans: CapturedSpans) -> None:
    """@inference(model=, version=) puts the model on the span."""

    @mltrace.inference(model="fraud", version="3", framework="numpy")
    def predict(x: list[float]) -> float:
        return sum(x)

    assert predict([1.0, 2.0]) == 3.0
    attrs = spans.stage("inference").attributes or {}
    assert attrs[semconv.ML_MODEL_NAME] == "fraud"
    assert attrs[semconv.ML_MODEL_VERSION] == "3"
    assert attrs[semconv.ML_MODEL_FRAMEWORK] == "numpy"


async def test_async_decorator_keeps_context_across_await(spans: CapturedSpans) -> None:
    """Spans started after an await inside an async stage are its children."""

    @mltrace.feature_lookup(store="redis")
    async def fetch(user_ids: list[str]) -> dict[str, float]:
        await asyncio.sleep(0.001)
        with mltrace.stage("decode"):
            await asyncio.sleep(0)
        mltrace.record_lookup(hits=1, misses=1)
        return {"a": 1.0}

    assert await fetch(["u1", "u2"]) == {"a": 1.0}
    lookup = spans.stage("feature_lookup")
    inner = spans.stage("decode")
    assert inner.parent is not None
    assert inner.parent.span_id == lookup.context.span_id
    attrs = lookup.attributes or {}
    assert attrs[semconv.ML_FEATURE_STORE_NAME] == "redis"
    assert attrs[semconv.ML_FEATURE_STORE_KEYS] == 2
    assert attrs[semconv.ML_FEATURE_STORE_HITS] == 1
    assert not any("u1" in str(v) for v in attrs.values()), "key values must not be recorded"


async def test_concurrent_tasks_keep_their_own_parents(spans: CapturedSpans) -> None:
    """Concurrent requests each get their stage spans under their own parent."""
    tracer = trace.get_tracer("test")

    @mltrace.inference
    async def predict(x: int) -> int:
        await asyncio.sleep(0.001 * (3 - x))
        return x

    async def request(i: int) -> None:
        with tracer.start_as_current_span(f"request-{i}"):
            await predict(i)

    await asyncio.gather(*(request(i) for i in range(3)))
    parents = {s.name: s.context.span_id for s in spans if s.name.startswith("request-")}
    for span in spans.stages("inference"):
        x = (span.attributes or {})["ml.input.value"]
        assert span.parent is not None and span.parent.span_id == parents[f"request-{x}"]


def test_exception_is_recorded_and_reraised_unchanged(spans: CapturedSpans) -> None:
    """The original exception object propagates; the span has ERROR status and an event."""
    boom = ValueError("bad input")

    @mltrace.preprocess
    def fail(x: int) -> int:
        raise boom

    with pytest.raises(ValueError, match="bad input") as info:
        fail(1)
    assert info.value is boom
    span = spans.stage("preprocess")
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})["error.type"] == "ValueError"
    assert [e.name for e in span.events] == ["exception"]


def test_generator_span_covers_iteration(spans: CapturedSpans) -> None:
    """A generator stage counts streamed items and is current only while producing them."""
    seen_inside: list[bool] = []

    @mltrace.postprocess
    def stream(n: int) -> Iterator[int]:
        for i in range(n):
            seen_inside.append(trace.get_current_span().is_recording())
            yield i

    outside = trace.get_current_span()
    items = []
    for item in stream(3):
        assert trace.get_current_span() is outside  # the consumer's context is untouched
        items.append(item)
    assert items == [0, 1, 2]
    assert all(seen_inside)
    span = spans.stage("postprocess")
    assert (span.attributes or {})[semconv.ML_STREAM_ITEMS] == 3
    assert span.end_time is not None


def test_generator_closed_early_is_not_an_error(spans: CapturedSpans) -> None:
    """Breaking out of a streamed stage ends its span without an error status."""

    @mltrace.postprocess
    def stream() -> Iterator[int]:
        yield from range(100)

    for i in stream():
        if i == 2:
            break
    import gc

    gc.collect()
    span = spans.stage("postprocess")
    assert span.status.status_code is not StatusCode.ERROR
    assert (span.attributes or {})[semconv.ML_STREAM_ITEMS] == 3


async def test_async_generator_stage(spans: CapturedSpans) -> None:
    """An async generator stage streams, counts items and records errors."""

    @mltrace.inference(model="llm")
    async def tokens(n: int) -> AsyncIterator[str]:
        for i in range(n):
            await asyncio.sleep(0)
            yield f"t{i}"
        raise RuntimeError("stream broke")

    got = []
    with pytest.raises(RuntimeError, match="stream broke"):
        async for t in tokens(2):
            got.append(t)
    assert got == ["t0", "t1"]
    span = spans.stage("inference")
    assert span.status.status_code is StatusCode.ERROR
    assert (span.attributes or {})[semconv.ML_STREAM_ITEMS] == 2


def test_stage_context_manager_any_name(spans: CapturedSpans) -> None:
    """``with mltrace.stage(name)`` makes a span of that stage with recorded output."""
    with mltrace.stage("rerank", attributes={"candidates": 10}) as s:
        s.record_input([3.0, 1.0, 2.0])
        s.record_output({"top": 3.0})
        assert len(s.trace_id) == 32
    span = spans.stage("rerank")
    attrs = span.attributes or {}
    assert attrs["candidates"] == 10
    assert attrs["ml.input.size"] == 3
    assert "ml.output.kind" in attrs


async def test_stage_context_manager_async(spans: CapturedSpans) -> None:
    """``async with mltrace.stage(...)`` works and records exceptions."""
    with pytest.raises(KeyError):
        async with mltrace.stage("postprocess"):
            await asyncio.sleep(0)
            raise KeyError("x")
    assert spans.stage("postprocess").status.status_code is StatusCode.ERROR


def test_methods_record_the_argument_not_self(spans: CapturedSpans) -> None:
    """A decorated method summarises its first real argument, not ``self``."""

    class Model:
        @mltrace.inference(model="m")
        def predict(self, x: np.ndarray) -> np.ndarray:
            return x

    Model().predict(np.zeros((4, 2)))
    assert list((spans.stage("inference").attributes or {})["ml.input.shape"]) == [4, 2]  # type: ignore[arg-type]


def test_summary_failure_never_breaks_the_call(spans: CapturedSpans) -> None:
    """An input whose summary blows up is recorded as a failure event; the call succeeds."""

    class Evil:
        def __len__(self) -> int:
            raise RuntimeError("no")

        def __iter__(self) -> Iterator[int]:
            raise RuntimeError("no")

        def __array__(self, *a: object, **k: object) -> np.ndarray:
            raise RuntimeError("no")

    @mltrace.preprocess
    def passthrough(x: object) -> int:
        return 7

    assert passthrough(Evil()) == 7
    assert spans.stage("preprocess").end_time is not None


def test_stage_name_must_be_a_string() -> None:
    """A bad stage name is a clear TypeError at the call site."""
    with pytest.raises(TypeError, match="non-empty string"):
        mltrace.stage("")


def test_decorating_a_non_callable_fails_clearly() -> None:
    """Decorating something that is not a function is a TypeError naming the stage."""
    with pytest.raises(TypeError, match="inference"):
        mltrace.inference(model="m")(42)  # type: ignore[call-overload]


def test_stages_under_a_sampled_out_parent_cost_no_span(spans: CapturedSpans) -> None:
    """Under a sampled-out parent, stages run, record nothing and leave the context alone."""
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    parent = NonRecordingSpan(SpanContext(0xABC, 0xDEF, is_remote=False, trace_flags=TraceFlags(0)))

    @mltrace.inference(model="m")
    def predict(x: int) -> int:
        assert trace.get_current_span() is parent
        return x + 1

    with trace.use_span(parent):
        assert predict(1) == 2
        with mltrace.stage("postprocess") as s:
            s.record_output([1.0])
            assert not s.is_recording()
    assert len(spans) == 0


def test_wide_inputs_never_push_stage_keys_off_the_span(spans: CapturedSpans) -> None:
    """Wide input and output summaries stay within the span's attribute limit; ml.stage survives."""

    @mltrace.inference(model="wide", version="1")
    def predict(x: np.ndarray) -> np.ndarray:
        return x[:, :8]

    predict(np.ones((64, 64)))
    attrs = spans.stage("inference").attributes or {}
    assert attrs[semconv.ML_MODEL_NAME] == "wide"
    assert len(attrs) < 128
    assert attrs["ml.input.features_truncated"] is True


def test_drift_parameters_are_drift_scorers_and_resolve_at_run_time() -> None:
    """``drift=`` is typed with the protocol (issue 12 item 5), importable at run time so that
    ``typing.get_type_hints`` (pydantic, FastAPI, docs tools) resolves the public signatures."""
    import typing

    from mltrace.drift import DriftScorer

    for func in (mltrace.inference, mltrace.stage, mltrace.Stage.__init__):
        assert typing.get_type_hints(func)["drift"] == DriftScorer | None, func
