"""The tracer mltrace's spans come from, and the fast path for requests that are not sampled."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Link, Span, SpanKind

from .._version import __version__
from . import _deferred


class LazyTracer:
    """Resolves the global provider's tracer on use and caches it until the provider changes.

    No import-time side effects, and no ProxyTracer indirection on the hot path once
    ``configure()`` (or the application) has set a provider.
    """

    __slots__ = ("_provider", "_tracer")

    def __init__(self) -> None:
        self._provider: object = None
        self._tracer: trace.Tracer | None = None

    def get(self) -> trace.Tracer:
        provider = trace.get_tracer_provider()
        if provider is not self._provider or self._tracer is None:
            self._tracer = provider.get_tracer("mltrace", __version__)
            self._provider = provider
        return self._tracer

    def start_span(
        self,
        name: str,
        context: Context | None = None,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: Mapping[str, Any] | None = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
    ) -> Span:
        if _deferred._enabled and context is None:
            # Inside a deferred request: a light span under the current one (see _deferred.py).
            span = _deferred.start_child(name, kind, attributes, links, start_time)
            if span is not None:
                return span
        return self.get().start_span(
            name, context=context, kind=kind, attributes=attributes, links=links, start_time=start_time
        )


TRACER = LazyTracer()


def start_child(
    name: str, attributes: Mapping[str, Any], kind: SpanKind = SpanKind.INTERNAL, parent: Span | None = None
) -> tuple[Span, bool]:
    """Start a stage span under the current span (or ``parent``, the current span already
    looked up); ``(span, started)``.

    When the current span belongs to a trace that was sampled out, the stage would be dropped
    too (parent-based sampling, the OpenTelemetry default): return the parent itself, unstarted,
    and skip the SDK's span machinery entirely. ``started`` tells the caller whether to attach
    the span as current and end it.
    """
    if parent is None:
        parent = trace.get_current_span()
    if sampled_out(parent):
        return parent, False
    return TRACER.start_span(name, kind=kind, attributes=attributes), True


def sampled_out(span: Span | None = None) -> bool:
    """Whether ``span`` (by default the current span) belongs to a trace the sampler dropped: it
    does not record and its context is valid but not sampled. Under parent-based sampling (the
    OpenTelemetry default) every child of it would be dropped too, so a wrapper can skip its work
    and call through; mltrace's stages and integrations make this one check."""
    if span is None:
        span = trace.get_current_span()
    if span.is_recording():
        return False
    ctx = span.get_span_context()
    return ctx.is_valid and not ctx.trace_flags.sampled
