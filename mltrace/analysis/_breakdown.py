"""Where a trace's time went: self time per stage, network between services, and the rest.

A span belongs to the stage named by its ``ml.stage`` attribute; spans under it without one count
toward that stage. A SERVER span starts afresh (a remote service's time is not its caller's
stage). A CLIENT span that called a traced service counts as ``network``: its duration minus the
remote server span's. Time of the root (and of other spans outside any stage) that no child
covers is ``unaccounted``. Self time is a span's duration minus the union of its children's
intervals, so concurrent children are not counted twice and the parts add up to the root's
duration.
"""

from __future__ import annotations

from collections.abc import Iterator

from .. import semconv
from ..query import Span, Trace

NETWORK = "network"
UNACCOUNTED = "unaccounted"
_ORDER = {name: i for i, name in enumerate(semconv.KNOWN_STAGES)}


def stage_order(names: list[str] | set[str] | tuple[str, ...]) -> list[str]:
    """Known stages in pipeline order, then a user's own stages by name, then network, unaccounted."""

    def key(name: str) -> tuple[int, str]:
        if name in _ORDER:
            return (0, f"{_ORDER[name]:02d}")
        if name == NETWORK:
            return (2, name)
        if name == UNACCOUNTED:
            return (3, name)
        return (1, name)

    return sorted(names, key=key)


def _start(span: Span) -> int:
    return span.start_us


def self_time_us(span: Span, children: list[Span]) -> int:
    """``span``'s duration minus the union of its children's intervals (clipped to the span)."""
    start, end = span.start_us, span.end_us
    covered = 0
    cur_start = cur_end = None
    for child in children if len(children) < 2 else sorted(children, key=_start):
        a, b = max(child.start_us, start), min(child.end_us, end)
        if b <= a:
            continue
        if cur_end is None or a > cur_end:
            if cur_end is not None and cur_start is not None:
                covered += cur_end - cur_start
            cur_start, cur_end = a, b
        elif b > cur_end:
            cur_end = b
    if cur_end is not None and cur_start is not None:
        covered += cur_end - cur_start
    return max(0, span.duration_us - covered)


def _walk(trace: Trace) -> Iterator[tuple[Span, str, list[Span]]]:
    """Every span with the bucket its self time goes to and its children (one pass, no recursion)."""
    children = trace.children
    stack: list[tuple[Span, str | None]] = [(root, None) for root in reversed(trace.roots)]
    while stack:
        span, inherited = stack.pop()
        own = span.attributes.get(semconv.ML_STAGE)
        owner = str(own) if own is not None else (None if span.kind == "SERVER" else inherited)
        kids = children.get(span.span_id, [])
        if span.kind == "CLIENT" and own is None and (owner is None or any(k.kind == "SERVER" for k in kids)):
            yield span, NETWORK, kids
        else:
            yield span, owner or UNACCOUNTED, kids
        stack.extend((k, owner) for k in reversed(kids))


def span_stages(trace: Trace) -> dict[str, str]:
    """The bucket each span's self time goes to (a stage, ``network`` or ``unaccounted``)."""
    return {span.span_id: bucket for span, bucket, _ in _walk(trace)}


def breakdown_us(trace: Trace) -> dict[str, int]:
    """Self time per bucket in µs; always has ``unaccounted``."""
    out: dict[str, int] = {UNACCOUNTED: 0}
    for span, bucket, kids in _walk(trace):
        own = self_time_us(span, kids) if kids else span.duration_us
        out[bucket] = out.get(bucket, 0) + own
    return out


def stage_breakdown(trace: Trace) -> dict[str, float]:
    """Self time per stage in ms, in pipeline order (see the module docstring).

    Computed once per trace (~30 µs) and kept on it, as its ``cached_property`` values are (a
    Trace is immutable): the ui's overview asked for it three times per trace, from slow, stats and
    its charts. Each caller gets its own copy."""
    cached: dict[str, float] | None = trace.__dict__.get("_stage_breakdown_ms")
    if cached is None:
        raw = breakdown_us(trace)
        cached = {name: raw[name] / 1000.0 for name in stage_order(list(raw))}
        trace.__dict__["_stage_breakdown_ms"] = cached
    return dict(cached)


def dominant_stage(stages: dict[str, float]) -> str | None:
    """The stage with the most self time (``None`` for an empty breakdown)."""
    return max(stages, key=lambda k: stages[k]) if stages else None
