"""``TailSampler``: an in-process tail decision in front of the exporter's span processor.

Spans of a trace wait in a bounded buffer until the trace's *local root* (the span with no parent
in this process: the server span) ends; then the whole local trace is kept or dropped together.
It only ever sees this process's spans: see docs/sampling.md for composing it with an
OpenTelemetry Collector's ``tail_sampling`` processor.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
from opentelemetry.trace import SpanContext, StatusCode

from .. import semconv
from ..export import COUNTERS
from ._config import TailSamplingConfig
from ._consistent import (
    ADJUSTED_COUNT,
    MAX_THRESHOLD,
    adjusted_count,
    keeps,
    threshold_for,
    threshold_of,
    with_threshold,
)
from ._force import FORCE_ATTRIBUTE
from ._quantile import RunningQuantile

_log = logging.getLogger("mltrace.sampling")
_MASK64 = (1 << 64) - 1
_MAX_ROUTES = 64  # separate p99s for this many root span names; the rest share one


def _mix64(x: int) -> int:
    """splitmix64's finaliser: a well-spread 64-bit hash of a 64-bit integer."""
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9 & _MASK64
    x = (x ^ (x >> 27)) * 0x94D049BB133111EB & _MASK64
    return x ^ (x >> 31)


def trace_fraction(trace_id: int) -> float:
    """A stable number in [0, 1) from a trace id (a hash of all 128 bits).

    No longer what the ratio decision uses (that is OpenTelemetry's consistent rule on the
    rightmost 56 bits, :mod:`._consistent`); kept for callers who want a hash independent of it.
    """
    return _mix64((trace_id >> 64) ^ _mix64(trace_id & _MASK64)) / float(1 << 64)


@dataclass(slots=True)
class _Pending:
    born: float
    spans: list[ReadableSpan] = field(default_factory=list)
    reason: str | None = None


#: a decision: keep or not, and the ``ot=th`` threshold to stamp on the kept spans (None: as they are)
_Decision = tuple[bool, int | None]
_Ready = list[tuple[list[ReadableSpan], bool, int | None]]


def _stamped(span: ReadableSpan, threshold: int) -> ReadableSpan:
    """A copy of an ended span saying what it stands for: ``ot=th`` and the adjusted count."""
    ctx = span.context
    state = with_threshold(ctx.trace_state, threshold)
    context = SpanContext(ctx.trace_id, ctx.span_id, ctx.is_remote, ctx.trace_flags, state)
    attrs = {**(span.attributes or {}), ADJUSTED_COUNT: adjusted_count(threshold)}
    return ReadableSpan(
        name=span.name,
        context=context,
        parent=span.parent,
        resource=span.resource,
        attributes=attrs,
        events=span.events,
        links=span.links,
        kind=span.kind,
        status=span.status,
        start_time=span.start_time,
        end_time=span.end_time,
        instrumentation_scope=span.instrumentation_scope,
    )


def _reason_of(span: ReadableSpan, config: TailSamplingConfig) -> str | None:
    attrs = span.attributes or {}
    if attrs.get(FORCE_ATTRIBUTE) is True:
        return "forced"
    if config.keep_errors and span.status.status_code is StatusCode.ERROR:
        return "error"
    if config.keep_drift_alerts and attrs.get(semconv.ML_DRIFT_ALERT) is True:
        return "drift"
    return None


def _is_local_root(span: ReadableSpan) -> bool:
    return span.parent is None or span.parent.is_remote


class TailSampler(SpanProcessor):
    """Buffers each local trace until its root ends, then keeps it or drops it as a whole.

    Kept: errors, drift alerts, forced traces, roots slower than ``slow_ms`` or than the running
    p99 of their span name; the rest with probability ``ratio``, by OpenTelemetry's consistent rule
    (the trace id's rightmost 56 bits against the threshold), so a Collector's policy on the same
    threshold and every mltrace process agree. Spans kept by the ratio get ``ot=th`` in their
    ``tracestate`` and ``mltrace.sampling.adjusted_count`` (``1 / ratio``, or ``1 / min(head, tail)``
    under a consistent head sampler). Everything it drops or evicts is
    counted in :func:`mltrace.export_stats` (``spans_sampled_out``, ``spans_dropped_tail_overflow``,
    ``tail_traces_evicted``); it never raises into the code that ended the span.
    """

    def __init__(self, downstream: SpanProcessor, config: TailSamplingConfig | None = None) -> None:
        self.downstream = downstream
        self.config = config or TailSamplingConfig()
        self._lock = threading.Lock()
        self._pending: OrderedDict[int, _Pending] = OrderedDict()
        self._decided: OrderedDict[int, _Decision] = OrderedDict()
        self._threshold = threshold_for(self.config.ratio)
        self._p99: dict[str, RunningQuantile] = {}
        self._shutdown = False

    # -- SpanProcessor -------------------------------------------------------------------------
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self.downstream.on_start(span, parent_context)

    def _on_ending(self, span: Span) -> None:
        self.downstream._on_ending(span)

    def on_end(self, span: ReadableSpan) -> None:
        if not span.context.trace_flags.sampled or self._shutdown:
            self.downstream.on_end(span)  # not ours to decide; the downstream ignores or counts it
            return
        try:
            ready = self._take(span)
        except Exception:  # never into the request; fail open
            COUNTERS.add("instrumentation_errors")
            _log.debug("mltrace: tail sampler failed; exporting the span undecided", exc_info=True)
            self.downstream.on_end(span)
            return
        for spans, keep, stamp in ready:
            self._emit(spans, keep, stamp)

    def shutdown(self) -> None:
        with self._lock:
            self._shutdown = True
            ready = [self._decide_locked(tid, p, None) for tid, p in self._pending.items()]
            self._pending.clear()
        for spans, keep, stamp in ready:
            self._emit(spans, keep, stamp)
        self.downstream.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Flushes what was decided; traces whose root has not ended stay buffered."""
        return self.downstream.force_flush(timeout_millis)

    # -- internals -----------------------------------------------------------------------------
    def _take(self, span: ReadableSpan) -> _Ready:
        """Buffer ``span``; return the traces (spans, keep, stamp) decided by its arrival."""
        cfg = self.config
        tid = span.context.trace_id
        ready: _Ready = []
        with self._lock:
            decided = self._decided.get(tid)
            if decided is not None:  # a span that ended after its local root
                return [([span], *decided)]
            pending = self._pending.get(tid)
            if pending is None:
                now = time.monotonic()
                self._expire_locked(now, ready)
                pending = self._pending[tid] = _Pending(born=now)
            pending.reason = pending.reason or _reason_of(span, cfg)
            if len(pending.spans) < cfg.max_spans_per_trace:
                pending.spans.append(span)
            else:
                COUNTERS.lost("spans_dropped_tail_overflow", 1, "tail sampler: too many spans in one trace")
            if _is_local_root(span):
                del self._pending[tid]
                ready.append(self._decide_locked(tid, pending, span))
        return ready

    def _expire_locked(self, now: float, ready: _Ready) -> None:
        """Decide the oldest traces early when the buffer is full or they waited too long."""
        while self._pending:
            tid, oldest = next(iter(self._pending.items()))
            if len(self._pending) < self.config.max_traces and now - oldest.born < self.config.max_wait_s:
                return
            del self._pending[tid]
            COUNTERS.add("tail_traces_evicted")
            ready.append(self._decide_locked(tid, oldest, None))

    def _decide_locked(
        self, tid: int, pending: _Pending, root: ReadableSpan | None
    ) -> tuple[list[ReadableSpan], bool, int | None]:
        reason = pending.reason
        if root is not None:
            reason = reason or self._latency_reason_locked(root)
            if self.config.keep_p99:
                self._observe_locked(root)  # after the comparison: a root is not judged against itself
        keep = reason is not None
        stamp: int | None = None
        if not keep and self._threshold < MAX_THRESHOLD:
            state = pending.spans[0].context.trace_state if pending.spans else None
            keep = keeps(tid, self._threshold, state)
            if keep:
                reason = "ratio"
                # consistent samplers nest: the trace was kept with the smaller of the two probabilities
                stamp = max(self._threshold, threshold_of(state) or 0)
        COUNTERS.add(f"traces_kept_{reason}" if reason else "traces_sampled_out")
        self._decided[tid] = (keep, stamp)
        while len(self._decided) > self.config.max_traces:
            self._decided.popitem(last=False)
        return pending.spans, keep, stamp

    def _latency_reason_locked(self, root: ReadableSpan) -> str | None:
        ms = _duration_ms(root)
        if self.config.slow_ms is not None and ms >= self.config.slow_ms:
            return "slow"
        if self.config.keep_p99:
            estimate = self._quantile_locked(root.name).value
            if estimate is not None and ms > estimate:
                return "p99"
        return None

    def _quantile_locked(self, name: str) -> RunningQuantile:
        q = self._p99.get(name)
        if q is None:
            key = name if len(self._p99) < _MAX_ROUTES else "*"
            q = self._p99.get(key)
            if q is None:
                q = self._p99[key] = RunningQuantile(0.99, self.config.p99_window, self.config.p99_min_samples)
        return q

    def _observe_locked(self, root: ReadableSpan) -> None:
        self._quantile_locked(root.name).observe(_duration_ms(root))

    def _emit(self, spans: list[ReadableSpan], keep: bool, stamp: int | None) -> None:
        if not keep:
            COUNTERS.add("spans_sampled_out", len(spans))
            return
        for s in spans:
            self.downstream.on_end(_stamped(s, stamp) if stamp is not None else s)

    def p99_ms(self, name: str) -> float | None:
        """The running p99 (ms) of local roots named ``name``, ``None`` while warming up."""
        with self._lock:
            q = self._p99.get(name) or self._p99.get("*")
            return q.value if q is not None else None


def _duration_ms(span: ReadableSpan) -> float:
    if span.start_time is None or span.end_time is None:
        return 0.0
    return (span.end_time - span.start_time) / 1e6
