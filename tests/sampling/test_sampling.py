"""Sampling that keeps what matters: the tail sampler, the running p99, the force-trace header."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision, TraceIdRatioBased
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import mltrace
from mltrace import semconv
from mltrace._configure import _tail_config
from mltrace._errors import ConfigurationError
from mltrace._settings import SETTINGS
from mltrace.export import COUNTERS
from mltrace.sampling import (
    FORCE_ATTRIBUTE,
    ForceTracePropagator,
    ForceTraceSampler,
    RunningQuantile,
    TailSampler,
    TailSamplingConfig,
    force_requested,
    forced_in,
    trace_fraction,
)
from mltrace.testing import CapturedSpans

MS = 1_000_000


class Rig:
    """A private provider whose spans pass a TailSampler before an in-memory exporter."""

    def __init__(self, config: TailSamplingConfig) -> None:
        self.exporter = InMemorySpanExporter()
        self.sampler = TailSampler(SimpleSpanProcessor(self.exporter), config)
        self.provider = TracerProvider(sampler=ALWAYS_ON)
        self.provider.add_span_processor(self.sampler)
        self.tracer = self.provider.get_tracer("test")

    def request(
        self,
        ms: float = 1.0,
        *,
        children: int = 2,
        error: bool = False,
        attrs: dict[str, object] | None = None,
        name: str = "GET /x",
    ) -> int:
        """One local trace: a root lasting ``ms`` with ``children`` child spans; returns its trace id."""
        start = time.time_ns()
        root = self.tracer.start_span(name, start_time=start)
        ctx = trace.set_span_in_context(root)
        for i in range(children):
            child = self.tracer.start_span(f"child{i}", context=ctx, start_time=start)
            if attrs and i == children - 1:
                child.set_attributes(attrs)  # type: ignore[arg-type]
            if error and i == 0:
                child.set_status(Status(StatusCode.ERROR))
            child.end(end_time=start + MS // 10)
        root.end(end_time=start + int(ms * MS))
        return root.get_span_context().trace_id

    def kept_traces(self) -> set[int]:
        return {s.context.trace_id for s in self.exporter.get_finished_spans()}


@pytest.fixture
def rig() -> Iterator[Rig]:
    """A tail-sampled provider that keeps errors, slow traces and nothing else by chance."""
    r = Rig(TailSamplingConfig(ratio=0.0, slow_ms=500, p99_min_samples=100, p99_window=256))
    yield r
    r.provider.shutdown()


def test_unremarkable_traces_are_dropped_and_counted(rig: Rig) -> None:
    """At ratio 0 a fast, clean trace is dropped as a whole and counted as sampled out."""
    before = COUNTERS.snapshot()
    rig.request(children=3)
    after = COUNTERS.snapshot()
    assert rig.exporter.get_finished_spans() == ()
    assert after["spans_sampled_out"] - before["spans_sampled_out"] == 4
    assert after["traces_sampled_out"] - before["traces_sampled_out"] == 1


def test_errored_trace_is_kept_whole(rig: Rig) -> None:
    """An error on any span keeps the whole local trace, root and children together."""
    tid = rig.request(children=3, error=True)
    spans = rig.exporter.get_finished_spans()
    assert len(spans) == 4 and {s.context.trace_id for s in spans} == {tid}


def test_slow_trace_is_kept(rig: Rig) -> None:
    """A root slower than ``slow_ms`` keeps its trace."""
    fast, slow = rig.request(ms=10), rig.request(ms=600)
    assert rig.kept_traces() == {slow} and fast != slow


def test_drift_alert_and_forced_traces_are_kept(rig: Rig) -> None:
    """``ml.drift.alert = true`` or ``mltrace.force = true`` on any span keeps the trace."""
    drift = rig.request(attrs={semconv.ML_DRIFT_ALERT: True})
    forced = rig.request(attrs={FORCE_ATTRIBUTE: True})
    rig.request(attrs={semconv.ML_DRIFT_ALERT: False})
    assert rig.kept_traces() == {drift, forced}


def test_running_p99_keeps_outliers(rig: Rig) -> None:
    """After warm-up, a root slower than its route's running p99 is kept; a typical one is not."""
    rng = np.random.default_rng(7)
    for ms in rng.uniform(5, 10, size=300):
        rig.request(ms=float(ms), children=0)
    assert rig.kept_traces() and len(rig.kept_traces()) <= 6  # ~1% of 200 after warm-up
    p99 = rig.sampler.p99_ms("GET /x")
    assert p99 is not None and 9.5 < p99 <= 10
    rig.exporter.clear()
    outlier = rig.request(ms=30, children=0)
    rig.request(ms=6, children=0)
    assert rig.kept_traces() == {outlier}


def test_p99_is_per_route(rig: Rig) -> None:
    """A slow route does not hide behind a fast one: each root name has its own p99."""
    for _ in range(200):
        rig.request(ms=2, children=0, name="GET /fast")
        rig.request(ms=200, children=0, name="GET /slow")
    p_fast, p_slow = rig.sampler.p99_ms("GET /fast"), rig.sampler.p99_ms("GET /slow")
    assert p_fast is not None and p_slow is not None and p_fast < 3 < 199 < p_slow


def test_ratio_keeps_about_that_share() -> None:
    """``ratio`` keeps that share of unremarkable traces (4,000 random trace ids, ±5σ)."""
    r = Rig(TailSamplingConfig(ratio=0.25, keep_p99=False))
    ids = [r.request(children=0) for _ in range(4000)]
    share = len(r.kept_traces()) / len(ids)
    assert abs(share - 0.25) < 0.035


def test_ratio_decision_is_the_same_in_every_process() -> None:
    """The ratio decision is a pure function of the trace id: every process keeps the same traces.
    (``trace_fraction``, no longer the decision, stays a hash independent of the id's low bits.)"""
    r1 = Rig(TailSamplingConfig(ratio=0.5, keep_p99=False))
    r2 = Rig(TailSamplingConfig(ratio=0.5, keep_p99=False))
    gen = r1.provider.id_generator
    for _ in range(200):
        tid = gen.generate_trace_id()
        for r in (r1, r2):
            parent = NonRecordingSpan(SpanContext(tid, gen.generate_span_id(), True, TraceFlags(1)))
            r.tracer.start_span("root", context=trace.set_span_in_context(parent)).end()
    assert r1.kept_traces() == r2.kept_traces()
    head = [gen.generate_trace_id() for _ in range(20_000)]
    low_half = [t for t in head if (t & ((1 << 64) - 1)) < (1 << 63)]  # what a 0.5 ratio head sampler keeps
    kept = sum(trace_fraction(t) < 0.5 for t in low_half) / len(low_half)
    assert abs(kept - 0.5) < 0.03  # independent: head 0.5 x tail 0.5 keeps a quarter, not a half


def test_remote_parent_makes_a_local_root(rig: Rig) -> None:
    """A span whose parent came over the wire is this process's local root: its end decides."""
    parent = NonRecordingSpan(SpanContext(0xABC, 0xDEF, True, TraceFlags(1)))
    root = rig.tracer.start_span("server", context=trace.set_span_in_context(parent))
    child = rig.tracer.start_span("child", context=trace.set_span_in_context(root))
    child.set_status(Status(StatusCode.ERROR))
    child.end()
    assert rig.exporter.get_finished_spans() == ()  # waits for the local root
    root.end()
    assert rig.kept_traces() == {0xABC}


def test_late_span_follows_its_trace_decision(rig: Rig) -> None:
    """A span ending after its local root goes where the trace went (kept or dropped)."""
    root = rig.tracer.start_span("root")
    ctx = trace.set_span_in_context(root)
    late = rig.tracer.start_span("background", context=ctx)
    bad = rig.tracer.start_span("bad", context=ctx)
    bad.set_status(Status(StatusCode.ERROR))
    bad.end()
    root.end()
    late.end()
    assert {s.name for s in rig.exporter.get_finished_spans()} == {"root", "bad", "background"}


def test_buffer_is_bounded_and_evictions_are_counted() -> None:
    """Traces whose root never ends cannot grow the buffer: the oldest are decided early, counted."""
    r = Rig(TailSamplingConfig(ratio=0.0, max_traces=10))
    before = COUNTERS.snapshot()["tail_traces_evicted"]
    roots = []
    for _ in range(50):
        root = r.tracer.start_span("never-ends")
        child = r.tracer.start_span("c", context=trace.set_span_in_context(root))
        child.set_status(Status(StatusCode.ERROR))
        child.end()
        roots.append(root)
    assert len(r.sampler._pending) <= 10
    assert COUNTERS.snapshot()["tail_traces_evicted"] - before == 40
    assert len(r.kept_traces()) == 40  # evicted early, but an error still keeps them


def test_spans_per_trace_are_bounded() -> None:
    """Spans beyond ``max_spans_per_trace`` are dropped and counted; the trace is still decided."""
    r = Rig(TailSamplingConfig(ratio=1.0, max_spans_per_trace=5))
    before = COUNTERS.snapshot()
    r.request(children=20)
    after = COUNTERS.snapshot()
    assert len(r.exporter.get_finished_spans()) == 5
    assert after["spans_dropped_tail_overflow"] - before["spans_dropped_tail_overflow"] == 16
    assert after["spans_dropped_total"] - before["spans_dropped_total"] == 16


def test_stale_trace_is_decided_after_max_wait() -> None:
    """A trace whose root has not ended within ``max_wait_s`` is decided when the next trace starts."""
    r = Rig(TailSamplingConfig(ratio=0.0, max_wait_s=0.05))
    root = r.tracer.start_span("hung")
    child = r.tracer.start_span("c", context=trace.set_span_in_context(root))
    child.set_attribute(FORCE_ATTRIBUTE, True)
    child.end()
    time.sleep(0.1)
    r.request(children=0)
    assert [s.name for s in r.exporter.get_finished_spans()] == ["c"]


def test_shutdown_decides_what_is_buffered() -> None:
    """Shutdown flushes buffered traces through the decision instead of losing them."""
    r = Rig(TailSamplingConfig(ratio=0.0))
    root = r.tracer.start_span("open")
    child = r.tracer.start_span("c", context=trace.set_span_in_context(root))
    child.set_status(Status(StatusCode.ERROR))
    child.end()
    r.sampler.shutdown()
    assert [s.name for s in r.exporter.get_finished_spans()] == ["c"]


def test_unsampled_spans_pass_through_untouched() -> None:
    """Spans the head sampler did not sample are not buffered (the exporter ignores them)."""
    exporter = InMemorySpanExporter()
    sampler = TailSampler(SimpleSpanProcessor(exporter), TailSamplingConfig(ratio=1.0))
    provider = TracerProvider(sampler=TraceIdRatioBased(0.0))
    provider.add_span_processor(sampler)
    provider.get_tracer("t").start_span("x").end()
    assert sampler._pending == {} and exporter.get_finished_spans() == ()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 6), st.booleans(), st.floats(0.1, 50), st.booleans()),
        min_size=1,
        max_size=40,
    ),
    st.floats(0, 1),
)
def test_every_span_is_kept_or_counted(traces: list[tuple[int, bool, float, bool]], ratio: float) -> None:
    """Property: for any mix of traces, kept + sampled out + overflow = every span that ended."""
    r = Rig(TailSamplingConfig(ratio=ratio, slow_ms=25, max_spans_per_trace=4, p99_min_samples=16, p99_window=16))
    before = COUNTERS.snapshot()
    total = 0
    for children, error, ms, drift in traces:
        r.request(ms=ms, children=children, error=error and children > 0, attrs={semconv.ML_DRIFT_ALERT: drift})
        total += children + 1
    after = COUNTERS.snapshot()
    delta = {k: after[k] - before[k] for k in ("spans_sampled_out", "spans_dropped_tail_overflow")}
    assert len(r.exporter.get_finished_spans()) + sum(delta.values()) == total


def test_running_quantile_matches_numpy() -> None:
    """The ring's p99 is numpy's nearest-rank p99 of the last ``window`` values."""
    rng = np.random.default_rng(1)
    values = rng.lognormal(size=5000)
    q = RunningQuantile(0.99, window=1024, min_samples=10)
    assert q.value is None
    for v in values:
        q.observe(float(v))
    q._recompute()
    assert q.value == pytest.approx(np.quantile(values[-1024:], 0.99, method="inverted_cdf"))
    q.observe(float("nan"))
    assert q.count == 5000


def test_config_validation_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Bad values are ConfigurationErrors; ``MLTRACE_TAIL_*`` builds the config (off when unset)."""
    with pytest.raises(ConfigurationError):
        TailSamplingConfig(ratio=1.5)
    with pytest.raises(ConfigurationError):
        TailSamplingConfig(max_traces=0)
    assert _tail_config(None) is None
    monkeypatch.setenv("MLTRACE_TAIL_SAMPLE_RATIO", "0.05")
    monkeypatch.setenv("MLTRACE_TAIL_SLOW_MS", "250")
    monkeypatch.setenv("MLTRACE_TAIL_MAX_TRACES", "99")
    assert _tail_config(None) == TailSamplingConfig(ratio=0.05, slow_ms=250, max_traces=99)
    monkeypatch.setenv("MLTRACE_TAIL_SAMPLING", "false")
    assert _tail_config(None) is None
    monkeypatch.setenv("MLTRACE_TAIL_SAMPLING", "true")
    monkeypatch.setenv("MLTRACE_TAIL_SLOW_MS", "soon")
    with pytest.raises(ConfigurationError):
        _tail_config(None)


def test_force_trace_sampler_overrides_the_head_ratio() -> None:
    """With a 0 % head ratio, a span started with ``mltrace.force`` is still recorded and sampled."""
    sampler = ForceTraceSampler(TraceIdRatioBased(0.0))
    forced = sampler.should_sample(None, 123, "x", attributes={FORCE_ATTRIBUTE: True})
    assert forced.decision is Decision.RECORD_AND_SAMPLE
    assert sampler.should_sample(None, 123, "x", attributes={"other": 1}).decision is Decision.DROP
    assert "TraceIdRatioBased" in sampler.get_description()


def test_force_propagator_marks_the_extracted_context() -> None:
    """The propagator reads the header at extraction; the sampler then keeps a span started in that context."""
    propagator = ForceTracePropagator(header="X-MLTrace-Force", token="")
    assert propagator.fields == {"x-mltrace-force"}
    marked = propagator.extract({"x-mltrace-force": "true"})
    assert forced_in(marked) and not forced_in(propagator.extract({"x-other": "1"}))
    sampler = ForceTraceSampler(TraceIdRatioBased(0.0))
    result = sampler.should_sample(marked, 123, "server")
    assert result.decision is Decision.RECORD_AND_SAMPLE and result.attributes[FORCE_ATTRIBUTE] is True
    assert ForceTracePropagator(header="").extract({"x-mltrace-force": "1"}) == propagator.extract({})


def test_force_header_value_and_token() -> None:
    """Truthy values force when no token is set; with a token only the exact token does."""
    assert force_requested("1") and force_requested(" TRUE ") and not force_requested("0")
    assert not force_requested(None)
    assert force_requested("s3cret", "s3cret") and not force_requested("1", "s3cret")


def _app() -> Starlette:
    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/ok", ok)])
    app.add_middleware(mltrace.MLTraceMiddleware)
    return app


def test_middleware_marks_forced_requests(spans: CapturedSpans, monkeypatch: pytest.MonkeyPatch) -> None:
    """The configured header sets ``mltrace.force`` on the server span; other requests are unmarked."""
    monkeypatch.setattr(SETTINGS, "force_trace_header", "x-mltrace-force")
    client = TestClient(_app())
    client.get("/ok", headers={"x-mltrace-force": "1"})
    assert (spans.server().attributes or {})[FORCE_ATTRIBUTE] is True
    spans.clear()
    client.get("/ok")
    assert FORCE_ATTRIBUTE not in (spans.server().attributes or {})


def test_force_header_is_off_unless_configured(spans: CapturedSpans) -> None:
    """Without ``MLTRACE_FORCE_TRACE_HEADER`` a force header means nothing."""
    assert SETTINGS.force_trace_header == ""
    TestClient(_app()).get("/ok", headers={"x-mltrace-force": "1"})
    assert FORCE_ATTRIBUTE not in (spans.server().attributes or {})


CONFIGURED = """
import json, mltrace
from fastapi import FastAPI
from mltrace.export._local_store import LocalStore
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

def ok(request):
    return PlainTextResponse("ok")

def boom(request):
    return PlainTextResponse("no", status_code=503)

app = Starlette(routes=[Route("/ok", ok), Route("/boom", boom)])
app.add_middleware(mltrace.MLTraceMiddleware)
h = mltrace.configure(exporter="local", local_path="t.db", batch=False)
fast = FastAPI()  # FastAPI starts the server span itself; the middleware only enriches it
fast.add_middleware(mltrace.MLTraceMiddleware)

@fast.get("/fast")
def fast_route() -> str:
    return "ok"

client, fast_client = TestClient(app), TestClient(fast)
for _ in range(50):
    client.get("/ok")
    fast_client.get("/fast")
client.get("/boom")
client.get("/ok", headers={"x-force": "yes"})
fast_client.get("/fast", headers={"X-Force": "1"})
h.shutdown()
store = LocalStore("t.db")
rows = [store.trace(t) for t in store.trace_ids()]
roots = [r[0]["attributes"] for r in rows]
kept = sorted(a.get("http.route", "") + str(a.get("mltrace.force", "")) for a in roots)
print(json.dumps({"sampler": h.provider.sampler.get_description(), "kept": kept}))
"""


@pytest.mark.parametrize(
    ("head", "kept"),
    [
        ({}, ["/boom", "/fastTrue", "/okTrue"]),  # head keeps all: the tail keeps the 5xx and the forced ones
        # a 0 % head ratio drops the 5xx before the tail can see it; the force header survives both,
        # also where FastAPI (not mltrace) started the server span
        ({"OTEL_TRACES_SAMPLER": "parentbased_traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}, ["/fastTrue", "/okTrue"]),
    ],
)
def test_configure_wires_head_and_tail_sampling_from_env(tmp_path: Path, head: dict[str, str], kept: list[str]) -> None:
    """Env only: with a 0 % tail ratio just the 5xx (if head-sampled) and the forced requests remain."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MLTRACE_"))}
    env.update(head, MLTRACE_FORCE_TRACE_HEADER="x-force", MLTRACE_TAIL_SAMPLE_RATIO="0")
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(CONFIGURED)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["sampler"].startswith("ForceTraceSampler{ParentBased")
    assert out["kept"] == kept
