"""``show``: one trace as a tree of spans with offsets, durations, self times and the stage each
span's time counts toward (what the terminal view and ``show --json`` print)."""

from __future__ import annotations

from typing import cast

from ..query import Span, Trace, TraceSource
from ._breakdown import dominant_stage, self_time_us, span_stages, stage_breakdown
from ._critical_path import critical_path, path_by_stage
from ._reports import ShowReport, SpanRow, TraceTree
from ._status import http_status


def _walk(trace: Trace) -> list[tuple[Span, int]]:
    out: list[tuple[Span, int]] = []
    stack = [(root, 0) for root in reversed(trace.roots)]
    while stack:
        span, depth = stack.pop()
        out.append((span, depth))
        stack.extend((c, depth + 1) for c in reversed(trace.children.get(span.span_id, [])))
    return out


def trace_tree(trace: Trace) -> TraceTree:
    """The trace as plain data: spans in tree order with ``depth``, ``offset_ms``, ``self_ms``."""
    start = trace.start_us
    buckets = span_stages(trace)
    spans: list[SpanRow] = []
    for span, depth in _walk(trace):
        row = span.to_dict()  # untyped (query's model); SpanRow names its fields
        row.update(
            depth=depth,
            offset_ms=round((span.start_us - start) / 1000.0, 3),
            duration_ms=round(span.duration_ms, 3),
            self_ms=round(self_time_us(span, trace.children.get(span.span_id, [])) / 1000.0, 3),
            counts_toward=buckets.get(span.span_id),
        )
        spans.append(cast(SpanRow, row))
    stages = stage_breakdown(trace)
    path = critical_path(trace)
    return {
        "trace_id": trace.trace_id,
        "name": trace.root.name,
        "services": trace.services,
        "start_us": start,
        "duration_ms": round(trace.duration_ms, 3),
        "error": trace.error,
        "status": http_status(trace),
        "stages": {k: round(v, 3) for k, v in stages.items()},
        "dominant_stage": dominant_stage(stages),
        "spans": spans,
        "critical_path": path,
        "critical_path_by_stage": path_by_stage(path),
    }


def show_trace(source: TraceSource, trace_id: str) -> ShowReport:
    """One trace as plain data (``mltrace show TRACE_ID --json``)."""
    return {"source": source.url, **trace_tree(source.get_trace(trace_id))}
