"""Force-trace: one request's header keeps its trace, through head and tail sampling.

The middleware puts ``mltrace.force = true`` in the server span's start attributes when the
configured header (``MLTRACE_FORCE_TRACE_HEADER``, off unless set) is present. Head samplers see
start attributes, so :class:`ForceTraceSampler` can record and sample that span whatever the
inner sampler says; :class:`~mltrace.sampling.TailSampler` keeps every trace carrying it.
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, get_current_span
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

FORCE_ATTRIBUTE = "mltrace.force"
_TRUE = frozenset({"1", "true", "yes", "on"})


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


class ForceTraceSampler(Sampler):
    """Records and samples spans started with ``mltrace.force = true``; else asks ``inner``.

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
        if attributes and attributes.get(FORCE_ATTRIBUTE) is True:
            parent = get_current_span(parent_context).get_span_context()
            state = parent.trace_state if parent.is_valid else trace_state
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes, state)
        return self.inner.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return f"ForceTraceSampler{{{self.inner.get_description()}}}"
