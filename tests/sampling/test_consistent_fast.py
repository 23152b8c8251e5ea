"""The consistent sampler's precomputed answers (issue 13: it is asked on every request) are the
rule's answers: the same decision, tracestate and adjusted count as computed from scratch."""

from __future__ import annotations

import random

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace.sampling import Decision
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.span import TraceState

from mltrace.sampling import ConsistentProbabilitySampler
from mltrace.sampling._consistent import (
    ADJUSTED_COUNT,
    adjusted_count,
    keeps,
    threshold_for,
    threshold_of,
    with_threshold,
)


@pytest.mark.parametrize("ratio", [0.0, 0.001, 0.25, 0.5, 1.0])
def test_roots_answer_as_the_rule(ratio: float) -> None:
    sampler = ConsistentProbabilitySampler(ratio)
    th = threshold_for(ratio)
    rng = random.Random(ratio)
    states = [None, TraceState([("vendor", "x")]), TraceState([("ot", "rv:ffffffffffffff")])]
    for _ in range(400):
        trace_id = rng.getrandbits(128) or 1
        state = rng.choice(states)
        result = sampler.should_sample(None, trace_id, "r", SpanKind.SERVER, {"a": 1}, None, state)
        kept = th < (1 << 56) and keeps(trace_id, th, state)
        assert (result.decision is Decision.RECORD_AND_SAMPLE) is kept
        if kept:
            assert dict(result.attributes) == {"a": 1, ADJUSTED_COUNT: adjusted_count(th)}
            assert result.trace_state.to_header() == with_threshold(state, th).to_header()
        else:
            assert not result.attributes and result.trace_state == state


def test_children_carry_their_parents_count() -> None:
    sampler = ConsistentProbabilitySampler(0.5)
    for state in (with_threshold(None, threshold_for(0.1)), with_threshold(None, threshold_for(0.5)), None,
                  with_threshold(None, threshold_for(0.1))):  # the cached parent state changes each time
        ctx = trace.set_span_in_context(NonRecordingSpan(SpanContext(7, 8, False, TraceFlags(1), state)))
        result = sampler.should_sample(ctx, 7, "child", SpanKind.INTERNAL, {"a": 1})
        th = threshold_of(state)
        expected = {"a": 1} if th is None else {"a": 1, ADJUSTED_COUNT: adjusted_count(th)}
        assert result.decision is Decision.RECORD_AND_SAMPLE and dict(result.attributes) == expected
        assert sampler.child_attributes(state, {"a": 1}) == expected
