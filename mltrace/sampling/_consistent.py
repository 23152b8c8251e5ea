"""OpenTelemetry consistent probability sampling: thresholds in ``tracestate`` ``ot=th:...``.

Every sampler in a pipeline (this process's head sampler, its in-process tail decision, a
Collector's ``tail_sampling`` OTTL policy, another SDK) compares the same 56-bit *randomness* (the
trace id's rightmost 56 bits, or ``ot=rv:``) with a *rejection threshold* ``T``: a trace is kept
when ``R >= T``, so it is kept with probability ``(2**56 - T) / 2**56`` and samplers at different
probabilities nest (a trace kept at 10% is kept at 50% too). The threshold travels in
``tracestate`` as ``ot=th:<hex>`` (14 hex digits, trailing zeros dropped; ``th:0`` keeps all), and
each kept span stands for ``2**56 / (2**56 - T)`` requests: its *adjusted count*, also written as
the attribute ``mltrace.sampling.adjusted_count`` so that backends which drop ``tracestate``
(Zipkin, Jaeger's v1 API) still tell the analysis what each trace is worth.
"""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind, get_current_span
from opentelemetry.trace.span import TraceState
from opentelemetry.util.types import Attributes

from .. import semconv
from .._errors import InvalidArgumentError

MAX_THRESHOLD = 1 << 56  #: ``T`` that rejects everything (not encodable: such traces are not sampled)
RANDOMNESS_MASK = MAX_THRESHOLD - 1
_DIGITS = 14
ADJUSTED_COUNT = semconv.MLTRACE_SAMPLING_ADJUSTED_COUNT


def threshold_for(probability: float) -> int:
    """The rejection threshold that keeps ``probability`` of traces (``MAX_THRESHOLD`` for 0)."""
    if not 0.0 <= probability <= 1.0:
        raise InvalidArgumentError(f"sampling probability must be within [0, 1]; got {probability}")
    # as OpenTelemetry's reference code: 2^56 - round(p * 2^56) (p * 2^56 is exact in floating point)
    return MAX_THRESHOLD - round(probability * MAX_THRESHOLD)


def encode_threshold(threshold: int) -> str:
    """``th`` as OpenTelemetry writes it: 14 hex digits without trailing zeros (``0`` keeps all)."""
    if not 0 <= threshold < MAX_THRESHOLD:
        raise InvalidArgumentError(f"threshold must be within [0, 2**56); got {threshold}")
    return f"{threshold:0{_DIGITS}x}".rstrip("0") or "0"


def parse_threshold(text: str) -> int | None:
    """The threshold of a ``th`` value, ``None`` when it is not 1-14 hex digits."""
    if not 1 <= len(text) <= _DIGITS:
        return None
    try:
        return int(text.ljust(_DIGITS, "0"), 16)
    except ValueError:
        return None


def adjusted_count(threshold: int) -> float:
    """How many traces one kept at ``threshold`` stands for: ``2**56 / (2**56 - T)``."""
    return MAX_THRESHOLD / (MAX_THRESHOLD - threshold)


def _ot_fields(trace_state: TraceState | None) -> dict[str, str]:
    raw = trace_state.get("ot") if trace_state is not None else None
    if not raw:
        return {}
    out: dict[str, str] = {}
    for part in raw.split(";"):
        key, sep, value = part.partition(":")
        if sep:
            out[key] = value
    return out


def threshold_of(trace_state: TraceState | None) -> int | None:
    """The ``ot=th`` threshold in ``trace_state``, ``None`` when absent or malformed."""
    th = _ot_fields(trace_state).get("th")
    return parse_threshold(th) if th is not None else None


def randomness(trace_id: int, trace_state: TraceState | None = None) -> int:
    """The 56-bit randomness: ``ot=rv`` when present, else the trace id's rightmost 56 bits."""
    rv = _ot_fields(trace_state).get("rv")
    if rv is not None and len(rv) == _DIGITS:
        try:
            return int(rv, 16)
        except ValueError:
            pass
    return trace_id & RANDOMNESS_MASK


def with_threshold(trace_state: TraceState | None, threshold: int) -> TraceState:
    """``trace_state`` with ``ot=th`` set to ``threshold`` (other ``ot`` sub-keys such as ``rv`` kept)."""
    fields = _ot_fields(trace_state)
    fields["th"] = encode_threshold(threshold)
    value = ";".join(f"{k}:{v}" for k, v in [("th", fields.pop("th")), *fields.items()])
    state = trace_state if trace_state is not None else TraceState()
    return state.update("ot", value) if "ot" in state else state.add("ot", value)


def keeps(trace_id: int, threshold: int, trace_state: TraceState | None = None) -> bool:
    """The consistent decision: keep when the randomness is at or above the threshold."""
    return randomness(trace_id, trace_state) >= threshold


class ConsistentProbabilitySampler(Sampler):
    """A head sampler that keeps ``ratio`` of new traces by OpenTelemetry's consistent rule.

    Roots are kept when their randomness reaches the threshold, and get ``ot=th`` in their
    ``tracestate`` and ``mltrace.sampling.adjusted_count``. Children (local or remote parent)
    follow the parent's sampled flag, like ``ParentBased``, and carry the parent's adjusted count
    when its ``tracestate`` has one. A Collector's ``ottl_condition`` policy on the same threshold
    (``deploy/gateway.yaml``) keeps exactly the same traces.
    """

    def __init__(self, ratio: float) -> None:
        self.ratio = ratio
        self.threshold = threshold_for(ratio)
        # Asked for every request (and every span under a remote parent): what does not depend on
        # the request is computed once. A kept root without incoming tracestate: 4.3 -> ~1 µs.
        self._never = self.threshold >= MAX_THRESHOLD
        self._count = None if self._never else adjusted_count(self.threshold)
        self._fresh_state = None if self._never else with_threshold(None, self.threshold)
        self._drop_fresh = SamplingResult(Decision.DROP, None, None)
        # The last parent tracestate seen and the adjusted count it carries (children of one
        # request share their parent's TraceState object).
        self._last_parent: tuple[TraceState | None, float | None] = (None, None)

    def child_attributes(self, parent_state: TraceState | None, attributes: Attributes) -> Attributes:
        """The start attributes of a span under a sampled parent: ``attributes`` plus the
        parent's adjusted count when its tracestate has a threshold (what ``should_sample``
        answers for it; the decision is to sample and the tracestate is the parent's)."""
        last_state, count = self._last_parent
        if parent_state is None:
            return attributes
        if parent_state is not last_state:
            th = threshold_of(parent_state)
            count = adjusted_count(th) if th is not None else None
            self._last_parent = (parent_state, count)
        if count is None:
            return attributes
        return {**(attributes or {}), ADJUSTED_COUNT: count}

    def root_result(self, trace_id: int, attributes: Attributes = None) -> SamplingResult:
        """``should_sample``'s answer for a span without a valid parent or incoming tracestate
        (almost every request's root): mltrace's middleware asks it directly for such a root."""
        if self._never or (trace_id & RANDOMNESS_MASK) < self.threshold:
            return self._drop_fresh  # never changed by its users: one object serves all
        return SamplingResult(
            Decision.RECORD_AND_SAMPLE, {**(attributes or {}), ADJUSTED_COUNT: self._count}, self._fresh_state
        )

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
        parent = get_current_span(parent_context).get_span_context()
        if parent.is_valid:
            if not parent.trace_flags.sampled:
                return SamplingResult(Decision.DROP, None, parent.trace_state)
            attrs = self.child_attributes(parent.trace_state, attributes)
            if attrs is attributes:
                attrs = dict(attributes or {})
            return SamplingResult(Decision.RECORD_AND_SAMPLE, attrs, parent.trace_state)
        if trace_state is None:  # a new trace without incoming tracestate (almost every root)
            return self.root_result(trace_id, attributes)
        if self._never or not keeps(trace_id, self.threshold, trace_state):
            return SamplingResult(Decision.DROP, None, trace_state)
        attrs = {**(attributes or {}), ADJUSTED_COUNT: self._count}
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attrs, with_threshold(trace_state, self.threshold))

    def get_description(self) -> str:
        th = "none" if self.threshold >= MAX_THRESHOLD else encode_threshold(self.threshold)
        return f"ConsistentProbabilitySampler{{ratio={self.ratio}; th:{th}}}"
