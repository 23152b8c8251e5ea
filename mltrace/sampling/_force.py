"""Force-trace: one request's header keeps its trace, through head and tail sampling.

The configured header (``MLTRACE_FORCE_TRACE_HEADER``, off unless set) is read twice:

- by :class:`ForceTracePropagator`, during context extraction, which marks the extracted context;
  whoever starts the server span (mltrace's middleware, FastAPI's own telemetry, the contrib ASGI
  instrumentation) starts it in that context, so :class:`ForceTraceSampler` records and samples
  it whatever the inner head sampler says;
- by the middleware, which puts ``mltrace.force = true`` on the server span, so that
  :class:`~mltrace.sampling.TailSampler` (and a Collector's ``boolean_attribute`` policy) keeps the
  trace.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from opentelemetry import context as otel_context
from opentelemetry.context import Context
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, get_current_span
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from .._settings import SETTINGS
from ..semconv import ML_FORCE

FORCE_ATTRIBUTE = ML_FORCE
_TRUE = frozenset({"1", "true", "yes", "on"})
_FORCE_KEY = otel_context.create_key("mltrace-force-trace")


def force_requested(value: str | None, token: str = "") -> bool:
    """Whether a force-trace header value asks for the trace to be kept.

    With a ``token`` configured the value must equal it (compared in constant time), so that only
    callers who know it can force traces; without one any of ``1``/``true``/``yes``/``on`` does.
    """
    if value is None:
        return False
    value = value.strip()
    if token:
        return hmac.compare_digest(value.encode("utf-8", "replace"), token.encode("utf-8"))
    return value.lower() in _TRUE


def forced_in(context: Context | None) -> bool:
    """Whether :class:`ForceTracePropagator` marked ``context`` (the request asked to be kept)."""
    return otel_context.get_value(_FORCE_KEY, context) is True


class ForceTracePropagator(TextMapPropagator):
    """Marks the extracted context when the force-trace header asks for it; injects nothing.

    ``header``/``token`` default to ``MLTRACE_FORCE_TRACE_HEADER``/``_TOKEN`` (read at each
    extraction, so ``configure(force_trace_header=...)`` applies at once).
    """

    def __init__(self, header: str | None = None, token: str | None = None) -> None:
        self.header = header
        self.token = token

    def _name(self) -> str:
        return (self.header if self.header is not None else SETTINGS.force_trace_header).lower()

    def extract(
        self, carrier: CarrierT, context: Context | None = None, getter: Getter[CarrierT] = default_getter
    ) -> Context:
        ctx = context if context is not None else otel_context.get_current()
        name = self._name()
        if not name:
            return ctx
        try:
            values = getter.get(carrier, name)
        except Exception:  # a foreign carrier; never break extraction
            return ctx
        token = self.token if self.token is not None else SETTINGS.force_trace_token
        if values and force_requested(values[0], token):
            return otel_context.set_value(_FORCE_KEY, True, ctx)
        return ctx

    def inject(
        self, carrier: CarrierT, context: Context | None = None, setter: Setter[CarrierT] = default_setter
    ) -> None:
        return None  # downstream services follow the sampled flag in traceparent

    @property
    def fields(self) -> set[str]:
        name = self._name()
        return {name} if name else set()


class ForceTraceSampler(Sampler):
    """Records and samples spans of a forced request; else asks ``inner``.

    Forced: started in a context :class:`ForceTracePropagator` marked, or with the start attribute
    ``mltrace.force = true``. The span gets ``mltrace.force = true`` either way.

    Wrap the head sampler with it when a ratio head sampler is in use and the force header must
    work: otherwise a request the head sampler dropped has no spans left to keep.
    """

    def __init__(self, inner: Sampler) -> None:
        self.inner = inner

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if (attributes and attributes.get(FORCE_ATTRIBUTE) is True) or forced_in(parent_context):
            parent = get_current_span(parent_context).get_span_context()
            state = parent.trace_state if parent.is_valid else trace_state
            return SamplingResult(Decision.RECORD_AND_SAMPLE, {**(attributes or {}), FORCE_ATTRIBUTE: True}, state)
        return self.inner.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"ForceTraceSampler{{{self.inner.get_description()}}}"
