"""The sampled-out fast path's head decision (``_deferred.decide_root``), made before a request's
attributes exist: only for samplers known to ignore attributes, and giving what the SDK's own
path (``_deferred._start``) gives: the same kind of span, flags, trace state and, for a kept
root, the same start attributes in the same order."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, NonRecordingSpan, SpanContext, SpanKind, TraceFlags, set_span_in_context
from opentelemetry.util.types import Attributes

from mltrace.sampling import ConsistentProbabilitySampler
from mltrace.spans import _deferred

ATTRS = {"http.request.method": "POST", "url.path": "/predict"}


class ByPath(Sampler):
    """Reads an attribute: its answer cannot be known before the attributes are built."""

    def should_sample(
        self, parent_context: Context | None, trace_id: int, name: str, kind: SpanKind | None = None,
        attributes: Attributes = None, links: Sequence[Link] | None = None, trace_state: object = None,
    ) -> SamplingResult:
        keep = (attributes or {}).get("url.path") == "/predict"
        return SamplingResult(Decision.RECORD_AND_SAMPLE if keep else Decision.DROP, attributes)

    def get_description(self) -> str:
        return "ByPath"


class Ratio(TraceIdRatioBased):
    """A subclass may read more than its base: not trusted."""


def _tracer(sampler: Sampler):  # type: ignore[no-untyped-def]
    return TracerProvider(sampler=sampler).get_tracer("t")


@pytest.mark.parametrize("sampler", [ALWAYS_ON, ALWAYS_OFF, TraceIdRatioBased(0.5), ParentBased(ALWAYS_OFF),
                                     ParentBased(TraceIdRatioBased(0.1)), ConsistentProbabilitySampler(0.3)])
def test_known_blind_samplers_are_asked_early(sampler: Sampler) -> None:
    assert _deferred.blind_sampler(_tracer(sampler)) is not None


@pytest.mark.parametrize("sampler", [ByPath(), ParentBased(ByPath()), Ratio(0.5),
                                     ParentBased(ALWAYS_ON, remote_parent_sampled=ByPath())])
def test_other_samplers_are_asked_with_the_attributes(sampler: Sampler) -> None:
    assert _deferred.blind_sampler(_tracer(sampler)) is None


@pytest.mark.parametrize("incoming", [None, TraceFlags(0), TraceFlags(1)])
def test_a_dropped_root_is_what_the_sdk_path_makes(incoming: TraceFlags | None) -> None:
    tracer = _tracer(ConsistentProbabilitySampler(0.0))
    context = Context()
    if incoming is not None:
        parent = SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, is_remote=True,
                             trace_flags=incoming)
        context = set_span_in_context(NonRecordingSpan(parent), context)
    blind = _deferred.blind_sampler(tracer)
    assert blind is not None
    for _ in range(50):
        early = _deferred.decide_root(tracer, blind, context, "POST", SpanKind.SERVER)
        late = _deferred._start(None, "POST", context, SpanKind.SERVER, ATTRS, None, None, tracer)
        if incoming is not None and incoming.sampled:  # a sampled remote parent: kept, by both
            assert isinstance(early, _deferred.Decided) and late.is_recording()
            continue
        assert type(early) is type(late) is NonRecordingSpan
        a, b = early.get_span_context(), late.get_span_context()
        assert (a.trace_flags, a.trace_state, a.is_remote, a.is_valid) == (b.trace_flags, b.trace_state, False, True)
        assert a == SpanContext(a.trace_id, a.span_id, is_remote=False, trace_flags=a.trace_flags,
                                trace_state=a.trace_state)
        assert 0 < a.span_id < 1 << 64 and 0 < a.trace_id < 1 << 128
        if incoming is not None:
            assert a.trace_id == b.trace_id == parent.trace_id


@pytest.mark.parametrize("sampler", [ALWAYS_ON, ParentBased(ALWAYS_ON), ConsistentProbabilitySampler(1.0)])
def test_a_kept_root_gets_the_attributes_the_sampler_would_give(sampler: Sampler) -> None:
    tracer = _tracer(sampler)
    blind = _deferred.blind_sampler(tracer)
    assert blind is not None
    decided = _deferred.decide_root(tracer, blind, Context(), "POST", SpanKind.SERVER)
    assert isinstance(decided, _deferred.Decided)
    early = _deferred._start(None, "POST", Context(), SpanKind.SERVER, dict(ATTRS), None, None, tracer, None, decided)
    late = _deferred._start(None, "POST", Context(), SpanKind.SERVER, dict(ATTRS), None, None, tracer)
    assert list(early.attributes.items()) == list(late.attributes.items())  # type: ignore[attr-defined]
    assert early.get_span_context().trace_id == decided.trace_id
    a, b = early.get_span_context(), late.get_span_context()
    assert (a.trace_flags, a.trace_state) == (b.trace_flags, b.trace_state)


def test_the_consistent_samplers_root_answer_is_its_should_sample() -> None:
    sampler = ConsistentProbabilitySampler(0.5)
    for trace_id in [1, 2**55, 2**56 - 1, 2**127 + 5, *(i * 0x9E3779B97F4A7C15 % 2**128 for i in range(200))]:
        short, full = sampler.root_result(trace_id, ATTRS), sampler.should_sample(Context(), trace_id, "n", None, ATTRS)
        assert (short.decision, dict(short.attributes), short.trace_state) == (
            full.decision, dict(full.attributes), full.trace_state)
