"""The critical path of a trace: the chain of spans that set its duration, as Jaeger draws it.

Walking back from the root's end: the child that finished last (before the point reached so far)
is on the path; the time between its end and that point is the parent's own; then the same inside
that child; then on, before the child's start, to the next child that finished last. Children
running beside a path child (ending after the path has moved past them) are off the path: making
them faster would not shorten the request. Children sticking out of their parent are clipped to it,
and children wholly outside it (clock skew between hosts) are left out, so the stretches always add
up to the root's duration.

Where this differs from Jaeger UI's ``computeCriticalPath`` (its ``sanitizeOverFlowingChildren``
and ``findLastFinishingChildSpan``), on purpose: a child that ends exactly where the path
resumes is on the path here (Jaeger asks for a strictly earlier end, which drops back-to-back
sequential stages); a child is clipped to its parent's clipped extent (Jaeger clips to the
unclipped parent), and a child covering its whole parent is clipped, not dropped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..query import Span, Trace
from ._breakdown import span_stages
from ._reports import CriticalSegment


def _segments(
    trace: Trace, span: Span, lo: int, hi: int, until: int, out: list[tuple[Span, int, int]], depth: int
) -> None:
    """Append ``span``'s stretch of the path ending at ``until`` (newest first); ``lo``-``hi`` is
    ``span`` clipped to its parent's (clipped) extent, as Jaeger's UI sanitizes overflowing children."""
    cursor = min(hi, until)
    kids: list[tuple[Span, int, int]] = []
    for kid in trace.children.get(span.span_id, []):
        k_lo, k_hi = max(kid.start_us, lo), min(kid.end_us, hi)
        if k_hi > k_lo:  # else wholly outside the parent (clock skew) or empty: never waited on
            kids.append((kid, k_lo, k_hi))
    kids.sort(key=lambda k: k[2], reverse=True)  # stable: of equal ends, the earlier start first
    for kid, k_lo, k_hi in kids:
        if cursor <= lo:
            break
        if k_hi > cursor:
            continue  # beside the path: still running when the path passed
        if cursor > k_hi:
            out.append((span, k_hi, cursor))
        if depth < 200:  # a pathological depth is cut, not a RecursionError
            _segments(trace, kid, k_lo, k_hi, k_hi, out, depth + 1)
        else:
            out.append((kid, k_lo, k_hi))
        cursor = k_lo
    if cursor > lo:
        out.append((span, lo, cursor))


def critical_path(trace: Trace) -> list[CriticalSegment]:
    """The path in time order: one entry per stretch, with the span, the stage its time counts
    toward, the offset from the trace's start and the length, in ms. The stretches add up to the
    root's duration."""
    if not trace.spans:
        return []
    raw: list[tuple[Span, int, int]] = []
    root = trace.root
    _segments(trace, root, root.start_us, root.end_us, root.end_us, raw, 0)
    raw.reverse()
    merged: list[tuple[Span, int, int]] = []
    for span, a, b in raw:  # consecutive stretches of one span (around an off-path child) join
        if merged and merged[-1][0] is span and merged[-1][2] == a:
            merged[-1] = (span, merged[-1][1], b)
        else:
            merged.append((span, a, b))
    stages = span_stages(trace)
    t0 = trace.start_us
    return [
        {
            "span_id": span.span_id,
            "name": span.name,
            "service": span.service,
            "stage": stages.get(span.span_id),
            "offset_ms": round((a - t0) / 1000.0, 3),
            "duration_ms": round((b - a) / 1000.0, 3),
        }
        for span, a, b in merged
    ]


def path_by_stage(path: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Time on the critical path per stage, in ms."""
    out: dict[str, float] = {}
    for seg in path:
        key = seg["stage"] or "unaccounted"
        out[key] = round(out.get(key, 0.0) + seg["duration_ms"], 3)
    return out
