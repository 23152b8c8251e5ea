"""Consistent probability sampling (ot=th): the rule, the head sampler, the tail ratio, adjusted counts,
and statistics from a sampled store that reproduce the full store's."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, Decision
from opentelemetry.trace import NonRecordingSpan, SpanContext, Status, StatusCode, TraceFlags
from opentelemetry.trace.span import TraceState

from mltrace import semconv
from mltrace.analysis import trace_stats
from mltrace.export import LocalStoreExporter
from mltrace.query import open_source
from mltrace.sampling import (
    ConsistentProbabilitySampler,
    TailSampler,
    TailSamplingConfig,
    adjusted_count,
    encode_threshold,
    parse_threshold,
    threshold_for,
    threshold_of,
)

MASK56 = (1 << 56) - 1
ADJ = semconv.MLTRACE_SAMPLING_ADJUSTED_COUNT


@pytest.mark.parametrize(
    ("p", "th"),
    [
        (1.0, "0"), (0.5, "8"), (0.25, "c"), (0.1, "e6666666666666"), (0.01, "fd70a3d70a3d71"),
        (2**-56, "ffffffffffffff"),
    ],
)
def test_thresholds_are_encoded_as_opentelemetry_writes_them(p: float, th: str) -> None:
    """``th`` is 14 hex digits of (1 - p) * 2^56 with trailing zeros dropped; it parses back."""
    assert encode_threshold(threshold_for(p)) == th
    assert parse_threshold(th) == threshold_for(p)
    assert adjusted_count(threshold_for(p)) == pytest.approx(1 / p)


def test_malformed_thresholds_are_ignored() -> None:
    """A foreign or broken ``ot`` value never raises: no threshold."""
    for value in ("th:", "th:xyz", "th:123456789012345", "rv:abc", ""):
        state = TraceState([("ot", value)]) if value else TraceState()
        assert threshold_of(state) is None


def test_head_sampler_keeps_exactly_the_ids_at_or_above_the_threshold() -> None:
    """Roots are kept iff their rightmost 56 bits reach th; kept roots say th and their adjusted count;
    children follow the parent."""
    sampler = ConsistentProbabilitySampler(0.25)
    gen = RandomIdGenerator()
    kept = 0
    for _ in range(4000):
        tid = gen.generate_trace_id()
        result = sampler.should_sample(None, tid, "root")
        expected = (tid & MASK56) >= 3 << 54
        assert (result.decision is Decision.RECORD_AND_SAMPLE) is expected
        if expected:
            kept += 1
            assert result.trace_state.get("ot") == "th:c"
            assert result.attributes[ADJ] == 4.0
    assert abs(kept / 4000 - 0.25) < 0.035
    parent = NonRecordingSpan(SpanContext(1, 2, True, TraceFlags(1), TraceState([("ot", "th:c")])))
    child = sampler.should_sample(trace.set_span_in_context(parent), 1, "child")
    assert child.decision is Decision.RECORD_AND_SAMPLE and child.attributes[ADJ] == 4.0
    dropped = NonRecordingSpan(SpanContext(1, 2, True, TraceFlags(0)))
    assert sampler.should_sample(trace.set_span_in_context(dropped), 1, "c").decision is Decision.DROP


def test_explicit_randomness_wins_over_the_trace_id() -> None:
    """``ot=rv`` (14 hex digits) is the randomness when present."""
    sampler = ConsistentProbabilitySampler(0.5)
    state = TraceState([("ot", "rv:ffffffffffffff")])
    assert sampler.should_sample(None, 0, "r", trace_state=state).decision is Decision.RECORD_AND_SAMPLE
    state = TraceState([("ot", "rv:00000000000000")])
    assert sampler.should_sample(None, MASK56, "r", trace_state=state).decision is Decision.DROP


class Rig:
    def __init__(self, config: TailSamplingConfig, head: ConsistentProbabilitySampler | None = None) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider(sampler=head or ALWAYS_ON)
        self.provider.add_span_processor(TailSampler(SimpleSpanProcessor(self.exporter), config))
        self.tracer = self.provider.get_tracer("t")

    def request(self, tid: int, error: bool = False) -> None:
        parent = NonRecordingSpan(SpanContext(tid, 0xABC, True, TraceFlags(1)))
        root = self.tracer.start_span("server", context=trace.set_span_in_context(parent))
        child = self.tracer.start_span("inference", context=trace.set_span_in_context(root))
        if error:
            child.set_status(Status(StatusCode.ERROR))
        child.end()
        root.end()


def test_tail_ratio_is_the_consistent_rule_and_stamps_what_it_kept() -> None:
    """The tail keeps an unremarkable trace iff R >= th(ratio) (what the gateway's OTTL policy
    computes); its spans get ot=th and adjusted count 10; an error trace keeps count 1."""
    rig = Rig(TailSamplingConfig(ratio=0.1, keep_p99=False))
    rng = random.Random(1)
    ids = [rng.getrandbits(128) for _ in range(3000)]
    for tid in ids:
        rig.request(tid)
    rig.request(5, error=True)
    spans = rig.exporter.get_finished_spans()
    kept = {s.context.trace_id for s in spans}
    assert kept - {5} == {t for t in ids if (t & MASK56) >= threshold_for(0.1)}
    for s in spans:
        if s.context.trace_id == 5:
            assert ADJ not in (s.attributes or {}) and threshold_of(s.context.trace_state) is None
        else:
            assert s.attributes[ADJ] == pytest.approx(10.0)  # type: ignore[index]
            assert s.context.trace_state.get("ot") == "th:e6666666666666"
    # the OTTL condition in deploy/gateway.yaml: last 14 hex digits >= th, as strings
    for tid in ids[:500]:
        assert (format(tid, "032x")[18:] >= "e6666666666666") == ((tid & MASK56) >= threshold_for(0.1))
    assert "e6666666666666" in (Path(__file__).parents[2] / "deploy" / "gateway.yaml").read_text()


def test_head_and_tail_nest_to_the_smaller_probability() -> None:
    """Head 50% then tail 10% keep 10% of traces (not 5%): consistent samplers nest, and the kept
    spans stand for 10 requests each."""
    rig = Rig(TailSamplingConfig(ratio=0.1, keep_p99=False), ConsistentProbabilitySampler(0.5))
    rng = random.Random(2)
    ids = [rng.getrandbits(128) for _ in range(4000)]
    for tid in ids:
        root = rig.tracer.start_span("server", context=trace.set_span_in_context(NonRecordingSpan(
            SpanContext(tid, 1, True, TraceFlags(1) if (tid & MASK56) >= threshold_for(0.5) else TraceFlags(0),
                        TraceState([("ot", "th:8")]))
        )))
        root.end()
    spans = rig.exporter.get_finished_spans()
    assert {s.context.trace_id for s in spans} == {t for t in ids if (t & MASK56) >= threshold_for(0.1)}
    assert all(s.attributes[ADJ] == pytest.approx(10.0) for s in spans)  # type: ignore[index]


# -- acceptance: a 10%-sampled store reproduces the full store's figures -------------------------


def _workload(tracers: list[trace.Tracer], n: int, seed: int) -> None:
    """Seeded requests: lognormal latency, 2% slow tail (x8), 3% errors, 2% drift alerts."""
    rng = random.Random(seed)
    gen = RandomIdGenerator()
    t = 1_700_000_000_000_000_000
    for _ in range(n):
        tid = gen.generate_trace_id()
        ms = rng.lognormvariate(3.0, 0.35) * (8 if rng.random() < 0.02 else 1)
        error, alert = rng.random() < 0.03, rng.random() < 0.02
        t += 2_000_000
        for tracer in tracers:
            ctx = trace.set_span_in_context(NonRecordingSpan(SpanContext(tid, 7, True, TraceFlags(1))))
            root = tracer.start_span("POST /predict", context=ctx, start_time=t, kind=trace.SpanKind.SERVER)
            stage = tracer.start_span("inference", context=trace.set_span_in_context(root), start_time=t + 1000,
                                      attributes={"ml.stage": "inference", "ml.drift.alert": alert})
            if error:
                stage.set_status(Status(StatusCode.ERROR))
            stage.end(end_time=t + int(ms * 1e6) - 1000)
            root.end(end_time=t + int(ms * 1e6))


def test_sampled_store_reproduces_count_and_latency_percentiles(tmp_path: Path) -> None:
    """Seeded run, 20,000 requests: a 10% store (errors, drift alerts and the slowest kept at 100%)
    gives the full store's request count within 5% and p50/p99 within 10% once traces are weighted
    by their adjusted count; unweighted, the same store is far off (the figures are printed)."""
    full_exp = LocalStoreExporter(tmp_path / "full.db")
    sampled_exp = LocalStoreExporter(tmp_path / "sampled.db")
    full = TracerProvider(resource=None)  # type: ignore[arg-type]
    full.add_span_processor(SimpleSpanProcessor(full_exp))
    sampled = TracerProvider()
    cfg = TailSamplingConfig(ratio=0.1, keep_p99=True, p99_window=1024, p99_min_samples=200, slow_ms=None)
    sampled.add_span_processor(TailSampler(SimpleSpanProcessor(sampled_exp), cfg))
    _workload([full.get_tracer("f"), sampled.get_tracer("s")], 20_000, seed=15)
    full.shutdown()
    sampled.shutdown()
    a = trace_stats(open_source(f"local://{tmp_path / 'full.db'}"), since=None, scan=50_000)
    b = trace_stats(open_source(f"local://{tmp_path / 'sampled.db'}"), since=None, scan=50_000)
    raw_p50 = _unweighted(tmp_path / "sampled.db", 50)
    raw_p99 = _unweighted(tmp_path / "sampled.db", 99)
    print(
        f"\nfull: {a['count']} requests, p50 {a['duration_ms']['p50']:.2f} p99 {a['duration_ms']['p99']:.2f} ms; "
        f"sampled, unweighted: {b['count']} traces, p50 {raw_p50:.2f} p99 {raw_p99:.2f}; "
        f"weighted: {b['requests']:.0f} requests, p50 {b['duration_ms']['p50']:.2f} p99 {b['duration_ms']['p99']:.2f}"
    )
    assert a["requests"] == a["count"] == 20_000
    assert b["count"] < 0.25 * a["count"]  # it is a sampled store
    assert abs(b["requests"] - a["count"]) <= 0.05 * a["count"]
    for p in ("p50", "p99"):
        assert abs(b["duration_ms"][p] - a["duration_ms"][p]) <= 0.10 * a["duration_ms"][p], p
    assert abs(b["error_rate"] - a["error_rate"]) <= 0.3 * a["error_rate"]
    assert raw_p99 > 1.15 * a["duration_ms"]["p99"]  # "before": unweighted, the kept slow tail inflates p99


def _unweighted(db: Path, q: int) -> float:
    import numpy as np

    source = open_source(f"local://{db}")
    try:
        return float(np.percentile([t.duration_ms for t in source.find_traces(None, None, 50_000)], q))
    finally:
        source.close()
