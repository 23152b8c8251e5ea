"""Deferred spans: record a request's spans in light objects, hand them to the SDK after the response.

With ``MLTRACE_DEFERRED_SPANS=1`` (or :func:`set_deferred`), the spans mltrace makes for a request
(its server span and every stage under it) are :class:`DeferredSpan` objects: the sampler is asked
and ids are allocated up front with the provider's own sampler and id generator, so the span
context is real and current (another library's span, an httpx or redis client span, parents
under it exactly as before), but attributes, events and status go into plain dicts and lists.
No SDK span object, lock or attribute validation exists while the request runs.

When the request's root ends (the middleware's ``finally``, after the response's last body
message was sent), every span that has ended is built into the SDK's own objects and handed to
the provider's span processors, in the order the spans ended, with their true timestamps:

- fast path, when no processor does anything in ``on_start`` (the SDK's batch/simple processors,
  mltrace's counting processor, tail sampler and test capture): a ``ReadableSpan`` is built
  directly, attributes still pass through the SDK's ``BoundedAttributes`` (same limits, same
  cleaning), and ``on_end`` is called;
- otherwise a real SDK span is built, started (``on_start``: late, with the span already holding
  all of its attributes) and ended (``_on_ending``, ``on_end``), so such processors see every
  span, in order, just after the request instead of during it.

A span still open when the root ends (a stage in a task that outlives the request) is handed
over when it ends. What is exported is the same as without deferral; tests/golden/ checks that.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from random import getrandbits as _getrandbits
from time import time_ns
from typing import Any, NamedTuple

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.attributes import BoundedAttributes
from opentelemetry.context import Context
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, SamplingResult, StaticSampler, TraceIdRatioBased
from opentelemetry.sdk.util import BoundedList
from opentelemetry.trace import (
    Link,
    NonRecordingSpan,
    SpanContext,
    SpanKind,
    Status,
    StatusCode,
    TraceFlags,
    TraceState,
)
from opentelemetry.trace.span import DEFAULT_TRACE_STATE
from opentelemetry.util import types

_log = logging.getLogger("mltrace")

_UNSET = Status(StatusCode.UNSET)
_NO_EVENTS: tuple[sdk_trace.Event, ...] = ()
_NO_LINKS: tuple[Link, ...] = ()


def _env_on() -> bool:
    """``MLTRACE_DEFERRED_SPANS`` (on unless it says off), read through the settings table."""
    from .._settings import ENV

    return ENV.DEFERRED_SPANS.lenient()


_enabled = _env_on()


def set_deferred(on: bool | None) -> None:
    """Switch deferred spans on or off for the process (``None``: back to ``MLTRACE_DEFERRED_SPANS``)."""
    global _enabled
    _enabled = _env_on() if on is None else bool(on)


def deferred_enabled() -> bool:
    return _enabled


def _span_key() -> str | None:
    """The context key ``trace.set_span_in_context`` writes, found through that public function
    (not OpenTelemetry's private name): the middleware builds a request's context as one dict,
    the stage wrappers read the current span straight from it."""
    probe = NonRecordingSpan(trace.INVALID_SPAN.get_span_context())
    keys = list(trace.set_span_in_context(probe, Context()))
    if len(keys) == 1 and trace.get_current_span(Context({keys[0]: probe})) is probe:
        return keys[0]
    return None  # pragma: no cover


SPAN_KEY = _span_key()


# The request being recorded, set by the middleware for the request's duration (reset in its
# finally, so nothing outlives the request on a keep-alive connection's context).
_CURRENT: contextvars.ContextVar[_Request | None] = contextvars.ContextVar("mltrace.deferred", default=None)


class _Request:
    """One request's spans: the ones ended, waiting to be handed to the processors."""

    __slots__ = ("ended", "flushed", "lock", "trace_id", "tracer")

    def __init__(self, tracer: sdk_trace.Tracer, trace_id: int = 0) -> None:
        self.tracer = tracer
        self.trace_id = trace_id  # only spans of this trace are deferred into this request
        self.ended: list[DeferredSpan] = []
        self.flushed = False
        self.lock = threading.Lock()

    def span_ended(self, span: DeferredSpan) -> None:
        if self.flushed:
            _hand_over(self.tracer, (span,))
            return
        self.ended.append(span)
        if self.flushed:  # flushed by another thread meanwhile: what it did not take goes now
            self._take_and_hand_over()

    def flush(self) -> None:
        """Hand every ended span to the processors (after the response); later ends go one by one."""
        if self.flushed:
            return
        self.flushed = True
        self._take_and_hand_over()

    def _take_and_hand_over(self) -> None:
        # A stage ending in another thread (a sync stage in a thread pool) may race the flush:
        # the swap is locked so that each span is handed over exactly once.
        with self.lock:
            spans, self.ended = self.ended, []
        if spans:
            _hand_over(self.tracer, spans)


class DeferredSpan(trace.Span):
    """A recording span held in plain Python objects until its request is over.

    It is a full ``opentelemetry.trace.Span``: ``set_attribute(s)``, ``add_event``,
    ``add_link``, ``record_exception``, ``set_status``, ``update_name`` and ``end`` behave as the
    SDK's (attribute values are cleaned and limited when the span is handed over).
    """

    __slots__ = (
        "_attributes", "_context", "_end_time", "_events", "_has_later", "_kind", "_links", "_name",
        "_parent", "_parent_context", "_record_end_metrics", "_request", "_start_time", "_status",
    )

    def __init__(
        self,
        request: _Request,
        name: str,
        context: SpanContext,
        parent: SpanContext | None,
        parent_context: Context | None,
        kind: SpanKind,
        attributes: types.Attributes,
        links: Sequence[Link],
        start_time: int | None,
        record_end_metrics: Any = None,
    ) -> None:
        self._request = request
        self._name = name
        self._context = context
        self._parent = parent
        self._parent_context = parent_context
        self._kind = kind
        self._attributes: dict[Any, Any] = dict(attributes) if attributes else {}  # str, or _Later
        self._has_later = False
        self._events: list[tuple[str, types.Attributes, int]] = []
        self._links: list[Link] = list(links) if links else []
        self._status = _UNSET  # Status is never changed in place, so one object serves all
        self._start_time = start_time if start_time is not None else time_ns()
        self._end_time: int | None = None
        self._record_end_metrics = record_end_metrics

    # -- read side (what other code asks of a live span) ----------------------------------------
    def get_span_context(self) -> SpanContext:
        return self._context

    def is_recording(self) -> bool:
        return self._end_time is None

    @property
    def name(self) -> str:
        return self._name

    @property
    def kind(self) -> SpanKind:
        return self._kind

    @property
    def parent(self) -> SpanContext | None:
        return self._parent

    @property
    def status(self) -> Status:
        return self._status

    @property
    def start_time(self) -> int:
        return self._start_time

    @property
    def end_time(self) -> int | None:
        return self._end_time

    @property
    def attributes(self) -> Mapping[str, Any]:
        return self._attributes

    # -- write side -----------------------------------------------------------------------------
    def defer_summary(self, prefix: str, obj: object) -> bool:
        """Summarise ``obj`` under ``prefix`` when the span is handed over, not now; False when
        ``obj`` could change before then and is not cheap to copy (the caller summarises now).

        The summary's attributes take this call's place in the span's attribute order.
        """
        if self._end_time is not None:
            return False
        snap = snapshot(obj)
        if snap is _NOW:
            return False
        self._attributes[_Later(prefix, snap)] = None
        self._has_later = True
        return True

    # A key set again moves to the end, as in the SDK's attributes (the exported order is the same).
    def set_attributes(self, attributes: Mapping[str, types.AnyValue]) -> None:
        if self._end_time is None:
            mine = self._attributes
            for key, value in attributes.items():
                mine.pop(key, None)
                mine[key] = value
        else:
            _log.warning("Setting attribute on ended span.")

    def set_attribute(self, key: str, value: types.AnyValue) -> None:
        if self._end_time is None:
            self._attributes.pop(key, None)
            self._attributes[key] = value
        else:
            _log.warning("Setting attribute on ended span.")

    def add_event(self, name: str, attributes: types.Attributes = None, timestamp: int | None = None) -> None:
        if self._end_time is None:
            self._events.append((name, attributes, timestamp if timestamp is not None else time_ns()))

    def add_link(self, context: SpanContext, attributes: types.Attributes = None) -> None:
        if self._end_time is None and sdk_trace._is_valid_link(context, attributes):
            self._links.append(Link(context, attributes))

    def update_name(self, name: str) -> None:
        if self._end_time is None:
            self._name = name

    def set_status(self, status: Status | StatusCode, description: str | None = None) -> None:
        # The SDK's rules: OK is final, UNSET is ignored.
        if self._end_time is not None or self._status.status_code is StatusCode.OK:
            return
        if isinstance(status, Status):
            if status.status_code is not StatusCode.UNSET:
                self._status = status
        elif status is not StatusCode.UNSET:
            self._status = Status(status, description)

    def record_exception(
        self,
        exception: BaseException,
        attributes: types.Attributes = None,
        timestamp: int | None = None,
        escaped: bool = False,
    ) -> None:
        # The SDK's event, formatted now (the traceback is the one in flight at this moment).
        module = type(exception).__module__
        qualname = type(exception).__qualname__
        attrs: dict[str, Any] = {
            "exception.type": f"{module}.{qualname}" if module and module != "builtins" else qualname,
            "exception.message": str(exception),
            "exception.stacktrace": "".join(traceback.format_exception(exception)),
            "exception.escaped": str(escaped),
        }
        if attributes:
            attrs.update(attributes)
        self.add_event("exception", attrs, timestamp)

    def end(self, end_time: int | None = None) -> None:
        if self._end_time is not None:
            _log.warning("Calling end() on an ended span.")
            return
        self._end_time = end_time if end_time is not None else time_ns()
        if self._record_end_metrics is not None:
            self._record_end_metrics()
        self._request.span_ended(self)

    def child(
        self,
        name: str,
        kind: SpanKind = SpanKind.INTERNAL,
        attributes: types.Attributes = None,
        links: Sequence[Link] | None = None,
        start_time: int | None = None,
    ) -> trace.Span:
        """A span under this one, made the way the SDK's tracer would (sampler asked, ids now)."""
        return _start(self._request, name, None, kind, attributes, links, start_time)

    def __repr__(self) -> str:
        return f'DeferredSpan(name="{self._name}", context={self._context})'


class _Later:
    """A summary to compute when the span is handed over (a key in the span's attributes, so it
    keeps its place in their order)."""

    __slots__ = ("obj", "prefix")

    def __init__(self, prefix: str, obj: object) -> None:
        self.prefix = prefix
        self.obj = obj


_NOW = object()  # snapshot(): this object must be summarised now
_SCALARS = frozenset({type(None), bool, int, float, str})
_IMMUTABLE = _SCALARS | {bytes}
_MAX_COPY = 4096  # elements: above this, summarising now is about as cheap as copying


def snapshot(obj: object) -> object:
    """``obj``, or a copy of it, that cannot change before it is summarised after the response;
    ``_NOW`` when no cheap copy exists (nested containers, objects of other types).

    Immutable scalars as they are; lists, tuples and dicts of scalars copied (a 32-float list:
    ~0.3 µs); numeric numpy arrays copied (``ndarray.copy``, ~0.5 µs for 32 floats).
    """
    t = type(obj)
    if t in _IMMUTABLE:
        return obj
    if t is list or t is tuple:
        seq: Any = obj
        if len(seq) <= _MAX_COPY and set(map(type, seq)) <= _SCALARS:
            return list(seq) if t is list else seq
        return _NOW
    if t is dict:
        d: Any = obj
        if len(d) <= _MAX_COPY and set(map(type, d)) <= {str} and set(map(type, d.values())) <= _SCALARS:
            return dict(d)
        return _NOW
    if t.__name__ == "ndarray" and t.__module__ == "numpy":
        arr: Any = obj
        if arr.dtype.kind in "biuf" and arr.size <= _MAX_COPY:
            return arr.copy()
    return _NOW


def _expanded(span: DeferredSpan) -> dict[str, Any]:
    """The span's attributes with the deferred summaries computed, each in its place."""
    if not span._has_later:
        return span._attributes
    summarise: Callable[[str, object], dict[str, Any]] | None = _LATE.get("summary_attributes")
    if summarise is None:
        from ._guarded import summary_attributes

        summarise = _LATE["summary_attributes"] = summary_attributes
    out: dict[str, Any] = {}
    for key, value in span._attributes.items():
        if type(key) is _Later:
            try:
                items = summarise(key.prefix, key.obj)
            except Exception as exc:  # as record_summary: an event and a counter, never a raise
                _summary_failed(span, key.prefix, exc)
                continue
            if not out.keys().isdisjoint(items):  # a key set again moves to the end, as in the SDK
                for k in items:
                    out.pop(k, None)
            out.update(items)
        else:
            out.pop(key, None)
            out[key] = value
    return out


def _summary_failed(span: DeferredSpan, prefix: str, exc: Exception) -> None:
    from .. import semconv
    from ..export import COUNTERS

    COUNTERS.add("instrumentation_errors")
    where = f"summary {prefix.rstrip('.')}"
    event = {"where": where, "error.type": type(exc).__name__}
    span._events.append((semconv.ML_TRACE_ERROR, event, span._end_time or 0))


def _start(
    request: _Request | None,
    name: str,
    context: Context | None,
    kind: SpanKind,
    attributes: types.Attributes,
    links: Sequence[Link] | None,
    start_time: int | None,
    root_tracer: sdk_trace.Tracer | None = None,
    parent_span_context: SpanContext | None = None,
    decided: Decided | None = None,
) -> trace.Span:
    """``Tracer.start_span`` of the SDK, step for step, ending in a DeferredSpan instead of a span.

    ``request`` None: a request's root (from ``root_tracer``), whose ``_Request`` is made only
    when the span records (a sampled-out request makes nothing but its ``NonRecordingSpan``).
    ``decided``: :func:`decide_root` already asked the sampler (without the attributes, which
    it ignores) for this root and it kept the span: its trace id and answer are used."""
    tracer = request.tracer if request is not None else root_tracer
    assert tracer is not None
    links = links or ()
    if context is None:  # looked up once, for the parent, the sampler and on_start
        context = otel_context.get_current()
    # ``parent_span_context``: the caller looked it up in ``context`` already (~0.5 µs a span)
    parent: SpanContext | None = (
        parent_span_context if parent_span_context is not None else trace.get_current_span(context).get_span_context()
    )
    if not tracer._is_enabled():
        return NonRecordingSpan(parent)  # type: ignore[arg-type]  # as the SDK does
    # The parent's fields read once: unpacked from the tuple where its layout is the one checked
    # at import (each property is a Python call: ~0.3 µs a span in all), else through them.
    if parent is None:
        valid = False
    elif _TUPLE_CONTEXT and type(parent) is SpanContext:
        parent_trace_id, _, parent_remote, parent_flags, parent_state, valid = parent
    else:
        parent_trace_id, parent_remote, parent_flags, parent_state, valid = (
            parent.trace_id, parent.is_remote, parent.trace_flags, parent.trace_state, parent.is_valid
        )
    if not valid:
        parent = None
        trace_id = decided.trace_id if decided is not None else tracer.id_generator.generate_trace_id()
    else:
        trace_id = parent_trace_id
    trace_state: TraceState | None
    rule = _child_rule(tracer.sampler) if parent is not None and parent_flags.sampled else None
    if decided is not None:
        # An attribute-blind sampler's answer to None, merged as it merges (its additions last)
        result = decided.result
        decision, trace_state = result.decision, result.trace_state
        start_attributes = {**attributes, **result.attributes} if result.attributes and attributes else (
            result.attributes or attributes
        )
    elif rule is not None and parent is not None and not parent_remote:
        # What the sampler answers for a local sampled parent, without the call (~1.3 µs)
        decision, trace_state = Decision.RECORD_AND_SAMPLE, parent_state
        start_attributes = attributes if rule is _AS_GIVEN else rule(trace_state, attributes)
    else:
        result = tracer.sampler.should_sample(context, trace_id, name, kind, attributes, links)
        decision, start_attributes, trace_state = result.decision, result.attributes, result.trace_state
    sampled = decision is Decision.RECORD_AND_SAMPLE
    random_id = tracer.id_generator.is_trace_id_random() if parent is None else parent_flags.random_trace_id
    flags = _FLAGS[sampled, bool(random_id)]
    span_id = tracer.id_generator.generate_span_id()
    if _TUPLE_CONTEXT and parent is not None and 0 < span_id <= _MAX_SPAN_ID:
        # The parent's trace id is valid and so is the span id: SpanContext.__new__'s checks and
        # defaults would give exactly this tuple (checked at import, _tuple_layout_holds) (~1 µs)
        state = _NO_STATE if trace_state is None else trace_state
        span_context = _new_tuple(SpanContext, (trace_id, span_id, False, flags, state, True))
    else:
        span_context = SpanContext(trace_id, span_id, is_remote=False, trace_flags=flags, trace_state=trace_state)
    record_end = tracer._tracer_metrics.start_span(parent, decision)
    if decision is Decision.DROP:
        return NonRecordingSpan(span_context)
    if request is None:
        request = _Request(tracer, trace_id)
    return DeferredSpan(
        request, name, span_context, parent, context, kind, start_attributes, links, start_time, record_end
    )


_new_tuple = tuple.__new__
_MAX_SPAN_ID = (1 << 64) - 1
_NO_STATE = DEFAULT_TRACE_STATE  # what SpanContext puts in for None


def _tuple_layout_holds() -> bool:
    """Whether a SpanContext is still the tuple (trace_id, span_id, is_remote, trace_flags,
    trace_state, is_valid) that its ``__new__`` builds (else _start calls the constructor)."""
    try:
        flags, state = TraceFlags(3), TraceState([("k", "v")])
        made = SpanContext(5, 6, is_remote=False, trace_flags=flags, trace_state=state)
        built = _new_tuple(SpanContext, (5, 6, False, flags, state, True))
        plain = SpanContext(5, 6, is_remote=False, trace_flags=flags)
        return (
            type(made).__mro__[1] is tuple and tuple(made) == tuple(built) and made == built
            and built.is_valid and built.trace_state is state and not built.is_remote
            and plain.trace_state is _NO_STATE
        )
    except Exception:  # pragma: no cover - an API that changed its insides
        return False


_TUPLE_CONTEXT = _tuple_layout_holds()

# TraceFlags are immutable ints: one object per combination of (sampled, random trace id).
_FLAGS = {
    (sampled, random_id): TraceFlags(
        (TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT) | (TraceFlags.RANDOM_TRACE_ID if random_id else 0)
    )
    for sampled in (False, True)
    for random_id in (False, True)
}


def _as_given(trace_state: TraceState | None, attributes: types.Attributes) -> types.Attributes:
    return attributes


_AS_GIVEN = _as_given


def _child_rule(sampler: object) -> Callable[[TraceState | None, types.Attributes], types.Attributes] | None:
    """How ``sampler`` (or configure()'s wrapper around it) answers for a span under a local
    sampled parent, when that is known without asking: always sample, with the parent's trace
    state, and the start attributes this function returns. ``None``: ask the sampler.

    The SDK's ParentBased with its default for that case (ALWAYS_ON): the attributes as given.
    mltrace's ConsistentProbabilitySampler: plus the parent's adjusted count (its own rule)."""
    if type(sampler) is _head_sampler_class():
        sampler = sampler.delegate  # type: ignore[attr-defined]
    last = _LAST_RULE
    if last[0] is sampler:  # asked per span; the sampler changes on configure() only
        known: Callable[[TraceState | None, types.Attributes], types.Attributes] | None = last[1]
        return known
    rule: Callable[[TraceState | None, types.Attributes], types.Attributes] | None = None
    cls = type(sampler)
    if cls is ParentBased:
        local = sampler._local_parent_sampled  # type: ignore[attr-defined]
        if type(local) is StaticSampler and local._decision is Decision.RECORD_AND_SAMPLE:
            rule = _AS_GIVEN
    elif cls is _consistent_class():
        rule = sampler.child_attributes  # type: ignore[attr-defined]
    _LAST_RULE[:] = [sampler, rule]
    return rule


_LAST_RULE: list[Any] = [None, None]  # [sampler, its rule]: one slot


def _consistent_class() -> type:
    if "consistent" not in _LATE:
        from ..sampling import ConsistentProbabilitySampler

        _LATE["consistent"] = ConsistentProbabilitySampler
    return _LATE["consistent"]  # type: ignore[no-any-return]


def _head_sampler_class() -> type:
    global _HEAD
    if _HEAD is None:
        from .._configure import _HeadSampler

        _HEAD = _HeadSampler
    return _HEAD


_HEAD: type | None = None


class Decided(NamedTuple):
    """A request root the sampler kept before its attributes were built (see :func:`decide_root`)."""

    trace_id: int
    result: SamplingResult


def _blind(sampler: object, depth: int = 0) -> bool:
    """Whether ``sampler``'s answer is known not to depend on the span's name and attributes:
    the SDK's ALWAYS_ON/ALWAYS_OFF and TraceIdRatioBased, ParentBased over those, mltrace's
    ConsistentProbabilitySampler (exact types: a subclass may read more)."""
    cls = type(sampler)
    if cls is StaticSampler or cls is TraceIdRatioBased or cls is _consistent_class():
        return True
    if cls is ParentBased and depth < 2:
        parts = [getattr(sampler, name, None) for name in _PARENT_BASED_PARTS]
        return all(part is not None and _blind(part, depth + 1) for part in parts)
    return False


_PARENT_BASED_PARTS = (
    "_root", "_remote_parent_sampled", "_remote_parent_not_sampled",
    "_local_parent_sampled", "_local_parent_not_sampled",
)


class Blind(NamedTuple):
    """How to ask a sampler that ignores attributes: its bound ``should_sample``, and for a root
    without a parent, a shorter call when there is one (``sample_ratio=``'s sampler: ~1 µs less
    in a served request than asking it to look the parent up)."""

    ask: Callable[..., SamplingResult]
    root: Callable[[int], SamplingResult] | None


def blind_sampler(tracer: sdk_trace.Tracer) -> Blind | None:
    """How to ask ``tracer``'s sampler (configure()'s wrapper opened) when that sampler ignores
    attributes, else None. Cached per sampler object (one slot): asked per request, changed by
    configure() only."""
    sampler = tracer.sampler
    if type(sampler) is _head_sampler_class():
        sampler = sampler.delegate  # type: ignore[attr-defined]
    last = _LAST_BLIND
    if last[0] is not sampler:
        how = None
        if _blind(sampler):
            root = sampler.root_result if type(sampler) is _consistent_class() else None  # type: ignore[attr-defined]
            how = Blind(sampler.should_sample, root)
        last[:] = [sampler, how]
    blind: Blind | None = last[1]
    return blind


_LAST_BLIND: list[Any] = [None, None]  # [sampler, how to ask it or None]: one slot


def decide_root(
    tracer: sdk_trace.Tracer, blind: Blind, context: Context, name: str, kind: SpanKind
) -> NonRecordingSpan | Decided:
    """The head-sampling decision for a request's root span before its attributes exist (``ask``,
    from :func:`blind_sampler`, ignores them): the ``NonRecordingSpan`` ``_start`` would make for
    a dropped span (same ids, flags, trace state, the tracer's span metric), or what ``_start``
    needs to make the kept one without asking again. The caller checked ``tracer._is_enabled()``."""
    # An empty context (no incoming trace headers, nothing current) has no parent to look up
    parent: SpanContext | None = trace.get_current_span(context).get_span_context() if context else None
    root = None
    if parent is not None and parent.is_valid:
        trace_id = parent.trace_id
        span_id = 0
        random_id = parent.trace_flags.random_trace_id
    else:
        root = blind.root
        parent = None
        generator = tracer.id_generator
        if type(generator) is RandomIdGenerator:  # one draw for both ids (~0.3 µs)
            bits = _getrandbits(192)
            trace_id, span_id = bits >> 64, bits & _MAX_SPAN_ID
            if not trace_id:  # invalid (2**-128): drawn again, as the generator does
                trace_id = generator.generate_trace_id()
        else:
            trace_id, span_id = generator.generate_trace_id(), 0
        random_id = generator.is_trace_id_random()
    result = root(trace_id) if root is not None else blind.ask(context, trace_id, name, kind, None, ())
    decision = result.decision
    if decision is not Decision.DROP:
        return Decided(trace_id, result)
    if not span_id:
        span_id = tracer.id_generator.generate_span_id()
    flags = _FLAGS[False, bool(random_id)]
    trace_state = result.trace_state
    if _TUPLE_CONTEXT and 0 < span_id <= _MAX_SPAN_ID and 0 < trace_id <= _MAX_TRACE_ID:
        state = _NO_STATE if trace_state is None else trace_state
        span_context = _new_tuple(SpanContext, (trace_id, span_id, False, flags, state, True))
    else:
        span_context = SpanContext(trace_id, span_id, is_remote=False, trace_flags=flags, trace_state=trace_state)
    tracer._tracer_metrics.start_span(parent, decision)
    return NonRecordingSpan(span_context)


_MAX_TRACE_ID = (1 << 128) - 1


def start_request_span(
    name: str, context: Context, kind: SpanKind, attributes: types.Attributes, decided: Decided | None = None
) -> tuple[trace.Span, _Request | None]:
    """The request's root span (the middleware's server span), deferred when the switch is on and
    the provider is the SDK's; ``(span, request)``, request None when not deferred (the caller
    then has an ordinary span)."""
    from ._tracer import TRACER

    tracer = TRACER.get()
    if not isinstance(tracer, sdk_trace.Tracer):
        return tracer.start_span(name, context=context, kind=kind, attributes=attributes), None
    span = _start(None, name, context, kind, attributes, None, None, tracer, None, decided)
    # Sampled out: nothing will be recorded under it, so no request to keep or hand over.
    return span, (span._request if type(span) is DeferredSpan else None)


def enter(request: _Request) -> contextvars.Token[_Request | None]:
    return _CURRENT.set(request)


def leave(request: _Request, token: contextvars.Token[_Request | None]) -> None:
    """The request is over: reset the variable, hand the ended spans over (never raises)."""
    _CURRENT.reset(token)
    try:
        request.flush()
    except Exception:  # never into the request
        _log.debug("mltrace: handing deferred spans over failed", exc_info=True)


def begin_enriched() -> tuple[_Request, contextvars.Token[_Request | None]] | None:
    """For a request whose server span another instrumentation made: defer the stages under it."""
    from ._tracer import TRACER

    tracer = TRACER.get()
    if not isinstance(tracer, sdk_trace.Tracer):
        return None
    request = _Request(tracer, trace.get_current_span().get_span_context().trace_id)
    return request, _CURRENT.set(request)


def start_child(
    name: str,
    kind: SpanKind,
    attributes: types.Attributes,
    links: Sequence[Link] | None,
    start_time: int | None,
) -> trace.Span | None:
    """A deferred span under the current span when a deferred request is running, else None."""
    request = _CURRENT.get()
    if request is None or request.flushed:
        return None
    context = otel_context.get_current()
    parent = trace.get_current_span(context).get_span_context()
    if parent.trace_id != request.trace_id:
        # Another trace: a new root started inside the request, or a request whose context was
        # copied from this one (uvicorn starts a pipelined request from inside the last send):
        # the SDK's own spans, as without deferral.
        return None
    return _start(request, name, context, kind, attributes, links, start_time, None, parent)


def start_stage(
    name: str,
    attributes: types.Attributes,
    start_time: int | None,
    context: Context,
    parent: trace.Span,
    kind: SpanKind = SpanKind.INTERNAL,
) -> trace.Span | None:
    """:func:`start_child` for the stage wrappers, which looked up the current ``context`` and its
    span (``parent``) already: each lookup again cost ~0.2 µs, four stages a request."""
    request = _CURRENT.get()
    if request is None or request.flushed:
        return None
    parent_context = parent.get_span_context()
    if parent_context.trace_id != request.trace_id:
        return None  # another trace: as in start_child
    return _start(request, name, context, kind, attributes, None, start_time, None, parent_context)


# -- handing spans over ---------------------------------------------------------------------------
def _quiet_on_start(processor: object) -> bool:
    """True when ``processor.on_start`` does nothing (so a ReadableSpan and on_end suffice)."""
    cls = type(processor)
    known = _QUIET.get(cls)
    if known is not None:
        return known
    quiet_start, quiet_ending = _quiet_functions()
    on_ending = getattr(cls, "_on_ending", sdk_trace.SpanProcessor._on_ending)
    quiet = getattr(cls, "on_start", None) in quiet_start and on_ending in quiet_ending
    if len(_QUIET) < 64:
        _QUIET[cls] = quiet
    return quiet


_QUIET: dict[type, bool] = {}
_QUIET_FUNCS: tuple[set[object], set[object]] = (set(), set())


def _quiet_functions() -> tuple[set[object], set[object]]:
    """The ``on_start`` and ``_on_ending`` implementations known to do nothing (read in their source)."""
    if not _QUIET_FUNCS[0]:
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

        from ..export import CountingBatchSpanProcessor
        from ..testing import _Fanout

        for cls in (sdk_trace.SpanProcessor, BatchSpanProcessor, SimpleSpanProcessor,
                    CountingBatchSpanProcessor, _Fanout):
            _QUIET_FUNCS[0].add(cls.on_start)
            _QUIET_FUNCS[1].add(cls._on_ending)
    return _QUIET_FUNCS


def _all_quiet(processor: object) -> bool:
    """Whether no processor reachable from the provider's needs ``on_start`` or ``_on_ending``.

    Walked per request (a few type checks): the sets of processors change on ``configure()``.
    """
    if isinstance(processor, sdk_trace.SynchronousMultiSpanProcessor | sdk_trace.ConcurrentMultiSpanProcessor):
        return all(_all_quiet(p) for p in processor._span_processors)
    cls = type(processor)
    if cls is _exporters_class():  # configure()'s exporters: forwards each call to its processors
        return all(_all_quiet(p) for p in processor._procs)  # type: ignore[attr-defined]
    if cls is _tail_class():  # forwards on_start/_on_ending to its downstream only
        return _all_quiet(processor.downstream)  # type: ignore[attr-defined]
    return _quiet_on_start(processor)


def _exporters_class() -> type:
    if "exporters" not in _LATE:
        from .._configure import _Exporters

        _LATE["exporters"] = _Exporters
    return _LATE["exporters"]  # type: ignore[no-any-return]


def _tail_class() -> type:
    if "tail" not in _LATE:
        from ..sampling import TailSampler

        _LATE["tail"] = TailSampler
    return _LATE["tail"]  # type: ignore[no-any-return]


# Classes and functions of modules that import this one, resolved on first use (an import
# statement run per call costs ~0.5 µs even when the module is loaded).
_LATE: dict[str, Any] = {}


def _hand_over(tracer: sdk_trace.Tracer, spans: Sequence[DeferredSpan]) -> None:
    processor = tracer.span_processor
    limits = tracer._span_limits
    if _all_quiet(processor):
        for span in spans:
            try:
                processor.on_end(_readable(tracer, limits, span))
            except Exception:
                _log.debug("mltrace: a span processor failed on a deferred span", exc_info=True)
        return
    for span in spans:
        try:
            _replay(tracer, limits, span)
        except Exception:
            _log.debug("mltrace: a span processor failed on a deferred span", exc_info=True)


def _bounded_events(limits: sdk_trace.SpanLimits, span: DeferredSpan) -> Iterator[sdk_trace.Event]:
    for name, attributes, timestamp in span._events:
        yield sdk_trace.Event(
            name,
            BoundedAttributes(limits.max_event_attributes, attributes,
                              max_value_len=limits.max_attribute_length, immutable=True),
            timestamp,
        )


def _bounded_links(limits: sdk_trace.SpanLimits, span: DeferredSpan) -> list[Link]:
    out = []
    for link in span._links:
        if link and sdk_trace._is_valid_link(link.context, link.attributes):
            out.append(Link(link.context, BoundedAttributes(
                limits.max_link_attributes, link.attributes,
                max_value_len=limits.max_attribute_length, immutable=True)))
    return out


_PRIMITIVE = frozenset({bool, int, float})


def _span_attributes(limits: sdk_trace.SpanLimits, attributes: dict[str, Any]) -> BoundedAttributes:
    """``BoundedAttributes`` holding what the SDK's span would hold, cheaper.

    The SDK cleans every value on the way in (~1 µs each: 70 attributes a request cost ~60 µs).
    A value of exactly ``bool``/``int``/``float`` (and ``str`` when no length limit is set) comes
    out of that cleaning unchanged, so it is put in as it is; anything else (sequences, bytes,
    subclasses such as numpy scalars, invalid values) goes through the SDK's own cleaning. Over
    the count limit, the SDK's constructor does it all (it drops the oldest, as a live span does).
    """
    maxlen, max_value_len = limits.max_span_attributes, limits.max_span_attribute_length
    if maxlen is not None and len(attributes) > maxlen:
        return BoundedAttributes(maxlen, attributes, immutable=True, max_value_len=max_value_len)
    bounded = BoundedAttributes(maxlen, None, immutable=False, max_value_len=max_value_len)
    store = bounded._dict
    if not isinstance(store, dict):  # pragma: no cover - an SDK that changed its insides
        return BoundedAttributes(maxlen, attributes, immutable=True, max_value_len=max_value_len)
    exact = _PRIMITIVE if max_value_len is not None else _PRIMITIVE | {str}
    for key, value in attributes.items():
        if type(value) in exact and type(key) is str and key:
            store[key] = value
        else:
            bounded[key] = value  # the SDK's checks, warnings and drop count
    bounded._immutable = True
    return bounded


def _readable(tracer: sdk_trace.Tracer, limits: sdk_trace.SpanLimits, span: DeferredSpan) -> sdk_trace.ReadableSpan:
    attributes = _span_attributes(limits, _expanded(span))
    # No events or links (most spans): an empty tuple reads the same to exporters as an empty
    # BoundedList (nothing, none dropped) and costs nothing to build.
    events: Any = BoundedList.from_seq(limits.max_events, _bounded_events(limits, span)) if span._events else _NO_EVENTS
    links: Any = BoundedList.from_seq(limits.max_links, _bounded_links(limits, span)) if span._links else _NO_LINKS
    return sdk_trace.ReadableSpan(
        name=span._name,
        context=span._context,
        parent=span._parent,
        resource=tracer.resource,
        attributes=attributes,
        events=events,
        links=links,
        kind=span._kind,
        status=span._status,
        start_time=span._start_time,
        end_time=span._end_time,
        instrumentation_info=tracer.instrumentation_info,
        instrumentation_scope=tracer._instrumentation_scope,
    )


def _replay(tracer: sdk_trace.Tracer, limits: sdk_trace.SpanLimits, span: DeferredSpan) -> None:
    """A real SDK span, started and ended with the recorded times: every processor hook runs."""
    real = sdk_trace._Span(
        name=span._name,
        context=span._context,
        parent=span._parent,
        sampler=tracer.sampler,
        resource=tracer.resource,
        attributes=_expanded(span),
        span_processor=tracer.span_processor,
        kind=span._kind,
        links=span._links,
        instrumentation_info=tracer.instrumentation_info,
        limits=limits,
        instrumentation_scope=tracer._instrumentation_scope,
    )
    real.start(start_time=span._start_time, parent_context=span._parent_context)
    for name, attributes, timestamp in span._events:
        real.add_event(name, attributes, timestamp)
    real._status = span._status
    assert span._end_time is not None
    real.end(end_time=span._end_time)
