"""Deferred spans build their SpanContext as the tuple SpanContext.__new__ makes (issue 13: ~1 µs a
span on the request's path); the result must be indistinguishable from the constructor's."""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.span import DEFAULT_TRACE_STATE, TraceState

from mltrace.spans import _deferred


def _remade(ctx: SpanContext) -> SpanContext:
    return SpanContext(ctx.trace_id, ctx.span_id, is_remote=ctx.is_remote, trace_flags=ctx.trace_flags,
                       trace_state=ctx.trace_state)


def test_layout_check_holds_on_this_sdk() -> None:
    assert _deferred._tuple_layout_holds() and _deferred._TUPLE_CONTEXT


def test_child_contexts_equal_the_constructors() -> None:
    tracer = TracerProvider().get_tracer("t")
    request = _deferred._Request(tracer)  # type: ignore[arg-type]
    for state in (None, TraceState([("ot", "th:8")])):
        parent = SpanContext(0xABC, 0xDEF, is_remote=False, trace_flags=TraceFlags(3), trace_state=state)
        ctx = trace.set_span_in_context(trace.NonRecordingSpan(parent), otel_context.Context())
        span = _deferred._start(request, "child", ctx, SpanKind.INTERNAL, {"a": 1}, None, None, None, parent)
        made = span.get_span_context()
        assert type(made) is SpanContext and made == _remade(made) and tuple(made) == tuple(_remade(made))
        assert made.is_valid and not made.is_remote and made.trace_id == 0xABC and made.span_id != 0xDEF
        assert made.trace_state is (DEFAULT_TRACE_STATE if state is None else state)
        assert made.trace_flags == TraceFlags(3)
