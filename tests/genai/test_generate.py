"""``@mltrace.inference(kind="generate")``: generation figures on the span and as metrics.

In-process tests of the accounting (tokens, TTFT, per-token gaps, queue time, finish reason,
disconnects, the Stage API, GenAI attribute names and their opt-in); the served behaviour (real
uvicorn, SSE, httpx and the openai client) is in tests/genai/test_generate_served.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Generator, Iterator
from typing import Any

import pytest
from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.trace import NonRecordingSpan, SpanContext, StatusCode, TraceFlags

import mltrace
from mltrace.genai import _semconv as sc
from mltrace.testing import CapturedSpans

_READER = InMemoryMetricReader()


@pytest.fixture(scope="module", autouse=True)
def _meter_provider() -> None:
    """The global MeterProvider can be set once per process; mltrace's instruments come from it."""
    if not isinstance(metrics.get_meter_provider(), MeterProvider):
        metrics.set_meter_provider(MeterProvider(metric_readers=[_READER]))


def _points(name: str) -> list[Any]:
    data = _READER.get_metrics_data()
    found: list[Any] = []
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                if m.name == name:
                    found.extend(m.data.data_points)
    return found


def _hist(name: str, model: str) -> tuple[int, float]:
    """(count, sum) of histogram ``name`` for ``gen_ai.request.model == model``."""
    count, total = 0, 0.0
    for p in _points(name):
        if p.attributes.get(sc.GEN_AI_REQUEST_MODEL) == model:
            count += p.count
            total += p.sum
    return count, total


def _disconnects(model: str) -> int:
    points = _points(sc.MLTRACE_GENERATE_DISCONNECTS)
    return sum(p.value for p in points if p.attributes.get(sc.GEN_AI_REQUEST_MODEL) == model)


def _sampled_out() -> Iterator[None]:
    parent = NonRecordingSpan(SpanContext(0xABC, 0xDEF, is_remote=False, trace_flags=TraceFlags(0)))
    return trace.use_span(parent)  # type: ignore[return-value]


async def test_async_generation_records_tokens_ttft_and_gaps(spans: CapturedSpans) -> None:
    @mltrace.inference(model="tiny-gpt", version="1", kind="generate")
    async def generate(prompt_ids: list[int]) -> AsyncGenerator[str, None]:
        await asyncio.sleep(0.03)  # "prefill"
        for i in range(5):
            if i:
                await asyncio.sleep(0.01 if i != 3 else 0.04)
            yield "ab"[i % 2]

    with trace.get_tracer("test").start_as_current_span("request", kind=trace.SpanKind.SERVER):
        out = [t async for t in generate([5, 6, 7, 8])]
    assert out == ["a", "b", "a", "b", "a"]
    span = spans.stage("inference")
    a = span.attributes or {}
    assert a[sc.ML_GENERATE_OUTPUT_TOKENS] == 5 == a[sc.GEN_AI_USAGE_OUTPUT_TOKENS]
    assert a[sc.ML_GENERATE_INPUT_TOKENS] == 4 == a[sc.GEN_AI_USAGE_INPUT_TOKENS]
    assert a[sc.ML_GENERATE_FINISH_REASON] == "stop"
    assert tuple(a[sc.GEN_AI_RESPONSE_FINISH_REASONS]) == ("stop",)  # type: ignore[arg-type]
    assert a[sc.GEN_AI_REQUEST_MODEL] == "tiny-gpt" == a[sc.GEN_AI_RESPONSE_MODEL]
    assert a[sc.GEN_AI_OPERATION_NAME] == "text_completion"
    assert a[sc.GEN_AI_SYSTEM] == "_OTHER" and sc.GEN_AI_PROVIDER_NAME not in a
    assert a[sc.ML_GENERATE_TTFT_FROM] == "request"
    ttft = float(a[sc.ML_GENERATE_TTFT])  # type: ignore[arg-type]
    assert 0.025 <= ttft < 1.0
    tpot = float(a[sc.ML_GENERATE_TPOT])  # type: ignore[arg-type]
    gap = float(a[sc.ML_GENERATE_TPOT_MAX])  # type: ignore[arg-type]
    assert 0.008 <= tpot <= gap and gap >= 0.035
    # mean gap is (last - first) / (n - 1): 0.07 s over 4 gaps, within the machine's noise
    assert tpot == pytest.approx(0.0175, abs=0.015)
    assert a[sc.ML_GENERATE_COMPLETION_LENGTH] == 5
    assert "ml.output.kind" not in a, "a generation's output is its text summary, not its last token"
    assert a["ml.output.stream.items"] == 5
    assert _hist(sc.GEN_AI_SERVER_TTFT, "tiny-gpt")[0] >= 1


@pytest.mark.parametrize("mode", ["sampled", "sampled_out"])
def test_sync_generation_and_the_stage_api(spans: CapturedSpans, mode: str) -> None:
    model = f"sync-{mode}"

    @mltrace.inference(model=model, kind="generate")
    def generate(prompt: str) -> Generator[str, None, str]:
        stage = mltrace.current_stage()
        time.sleep(0.02)  # waiting for a slot
        stage.generation_started()
        stage.set_input_tokens(11)
        for word in prompt.split():
            yield word.upper() + " "
        stage.set_output_tokens(7)
        stage.set_finish_reason("length")
        stage.set_response_model(model + "-v2")
        return "done"

    before = _hist(sc.GEN_AI_SERVER_TTFT, model)[0]
    ctx = trace.get_tracer("test").start_as_current_span("r") if mode == "sampled" else _sampled_out()
    with ctx:
        g = generate("my secret prompt")
        got = [next(g) for _ in range(3)]
        with pytest.raises(StopIteration) as stop:
            next(g)
        assert stop.value.value == "done"
    assert got == ["MY ", "SECRET ", "PROMPT "]
    assert _hist(sc.GEN_AI_SERVER_TTFT, model)[0] == before + 1, "metrics see sampled-out requests too"
    froms = {p.attributes.get(sc.ML_GENERATE_TTFT_FROM) for p in _points(sc.GEN_AI_SERVER_TTFT)
             if p.attributes.get(sc.GEN_AI_REQUEST_MODEL) == model}
    assert froms == ({"parent"} if mode == "sampled" else {"stage"}), "series apart by where TTFT starts"
    queue = _hist(sc.MLTRACE_GENERATE_QUEUE_TIME, model)
    assert queue[0] >= 1 and queue[1] >= 0.015
    if mode == "sampled_out":
        assert len(spans) == 0
        return
    a = spans.stage("inference").attributes or {}
    assert a[sc.ML_GENERATE_INPUT_TOKENS] == 11
    assert a[sc.ML_GENERATE_OUTPUT_TOKENS] == 7
    assert a[sc.ML_GENERATE_FINISH_REASON] == "length"
    assert a[sc.GEN_AI_RESPONSE_MODEL] == model + "-v2"
    assert float(a[sc.ML_GENERATE_QUEUE_TIME]) >= 0.015  # type: ignore[arg-type]
    assert a[sc.ML_GENERATE_PROMPT_LENGTH] == len("my secret prompt")
    assert a[sc.ML_GENERATE_TTFT_FROM] == "parent"
    assert not any("secret" in str(v).lower() for v in a.values()), "no prompt text by default"


async def test_closed_stream_is_a_disconnect_not_an_error(spans: CapturedSpans) -> None:
    @mltrace.inference(model="disc", kind="generate")
    async def generate(n: int) -> AsyncGenerator[str, None]:
        for i in range(n):
            await asyncio.sleep(0.001)
            yield str(i)

    before = _disconnects("disc")
    g = generate(100)
    assert [await g.__anext__() for _ in range(3)] == ["0", "1", "2"]
    await g.aclose()

    async def consume() -> None:
        async for _ in generate(10_000):
            pass

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    closed, cancelled = spans.stages("inference")
    for span in (closed, cancelled):
        a = span.attributes or {}
        assert span.status.status_code is StatusCode.UNSET
        assert a[sc.ML_GENERATE_CLIENT_DISCONNECTED] is True
        assert a[sc.ML_GENERATE_FINISH_REASON] == "cancelled"
    assert (closed.attributes or {})[sc.ML_GENERATE_OUTPUT_TOKENS] == 3
    assert _disconnects("disc") == before + 2


def test_failed_generation_is_an_error(spans: CapturedSpans) -> None:
    @mltrace.inference(model="fail", kind="generate")
    def generate(n: int) -> Generator[str, None, None]:
        yield "x"
        raise RuntimeError("out of memory")

    with pytest.raises(RuntimeError):
        list(generate(1))
    span = spans.stage("inference")
    a = span.attributes or {}
    assert span.status.status_code is StatusCode.ERROR
    assert a[sc.ML_GENERATE_FINISH_REASON] == "error"
    assert a["error.type"] == "RuntimeError"


def test_latest_experimental_opt_in_uses_provider_name(spans: CapturedSpans, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http, gen_ai_latest_experimental")

    attrs = {"gen_ai.system": "acme", "gen_ai.operation.name": "chat"}

    @mltrace.inference(model="m", kind="generate", attributes=attrs)
    def generate(prompt: str) -> Generator[str, None, None]:
        yield "ok"

    list(generate("hi"))
    a = spans.stage("inference").attributes or {}
    assert a[sc.GEN_AI_PROVIDER_NAME] == "acme"
    assert sc.GEN_AI_SYSTEM not in a
    assert a[sc.GEN_AI_OPERATION_NAME] == "chat"


def test_generate_needs_a_generator() -> None:
    with pytest.raises(TypeError, match="generator"):

        @mltrace.inference(kind="generate")
        def not_streaming(prompt: str) -> str:
            return prompt

    with pytest.raises(ValueError, match="kind"):
        mltrace.inference(kind="generation")


def test_prompt_and_completion_text_only_with_capture_on(tmp_path: Any, spans: CapturedSpans) -> None:
    from mltrace._settings import SETTINGS
    from mltrace.privacy import CaptureRules, FileSink, PayloadCapture

    sink = FileSink(tmp_path / "payloads")
    capture = PayloadCapture(CaptureRules(), sink)
    old = SETTINGS.payload_capture
    SETTINGS.payload_capture = capture
    try:

        @mltrace.inference(model="cap", kind="generate")
        def generate(prompt: str) -> Generator[str, None, None]:
            yield "write to "
            yield "alice@example.com"

        with trace.get_tracer("test").start_as_current_span("r"):
            assert "".join(generate("email bob@example.com please")) == "write to alice@example.com"
        assert capture.flush()
    finally:
        SETTINGS.payload_capture = old
    a = spans.stage("inference").attributes or {}
    assert "ml.payload.ref" in a
    stored = "".join(p.read_text() for p in (tmp_path / "payloads").rglob("*") if p.is_file())
    assert "write to" in stored and "please" in stored, "the text is kept on opt-in"
    assert "alice@example.com" not in stored and "bob@example.com" not in stored, "and redacted by the rules"
    assert not any("example.com" in str(v) for v in a.values()), "never on the span"


def test_a_failure_inside_mltrace_never_reaches_the_stream(
    spans: CapturedSpans, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mltrace.genai import _watch

    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("mltrace bug")

    @mltrace.inference(model="robust", kind="generate")
    def generate(prompt: str) -> Generator[str, None, None]:
        yield from prompt

    monkeypatch.setattr(_watch.Watch, "__init__", broken)
    assert "".join(generate("abc")) == "abc"
    monkeypatch.undo()
    monkeypatch.setattr(_watch.Watch, "_end", broken)
    assert "".join(generate("abc")) == "abc"
    events = [e.name for s in spans.stages("inference") for e in s.events]
    assert events.count("mltrace.error") == 2


def test_close_runs_the_functions_cleanup_under_its_span(spans: CapturedSpans) -> None:
    @mltrace.inference(model="cleanup", kind="generate")
    def generate(prompt: str) -> Generator[str, None, None]:
        try:
            yield from prompt
        finally:
            with mltrace.stage("release_slot"):
                pass

    g = generate("abcdef")
    assert next(g) == "a"
    g.close()
    stage, release = spans.stage("inference"), spans.stage("release_slot")
    assert release.parent is not None and release.parent.span_id == stage.context.span_id


def test_a_request_start_given_in_the_context_is_used_sampled_or_not(spans: CapturedSpans) -> None:
    """A middleware that puts the request's arrival under REQUEST_START_KEY makes TTFT start there,
    also for sampled-out requests (no span start to read)."""
    from opentelemetry import context as otel_context

    from mltrace.genai import REQUEST_START_KEY

    @mltrace.inference(model="given-start", kind="generate")
    def generate(prompt: str) -> Generator[str, None, None]:
        yield from prompt

    arrived = time.time_ns() - 50_000_000  # 50 ms ago
    token = otel_context.attach(otel_context.set_value(REQUEST_START_KEY, arrived))
    try:
        with _sampled_out():
            assert "".join(generate("ab")) == "ab"
        with trace.get_tracer("test").start_as_current_span("r"):
            assert "".join(generate("ab")) == "ab"
    finally:
        otel_context.detach(token)
    count, total = _hist(sc.GEN_AI_SERVER_TTFT, "given-start")
    assert count == 2 and total >= 0.1, "both measured from the given arrival"
    a = spans.stage("inference").attributes or {}
    assert a[sc.ML_GENERATE_TTFT_FROM] == "request" and float(a[sc.ML_GENERATE_TTFT]) >= 0.05  # type: ignore[arg-type]
