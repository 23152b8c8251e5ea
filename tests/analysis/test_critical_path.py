"""The critical path (`show`'s ``critical_path`` and the UI's waterfall) against Jaeger UI's
definition, on hand-drawn traces (concurrent children, overlapping siblings, children outliving
their parent, clock skew) and on thousands of generated ones compared with a second, independent
implementation written the way Jaeger's ``computeCriticalPath`` is: sanitize overflowing children
first, then walk last-finishing children."""

from __future__ import annotations

import random

import pytest

from mltrace.analysis._critical_path import critical_path, path_by_stage
from mltrace.analysis._show import trace_tree
from mltrace.query import Span, Trace

TID = "t" * 32


def _span(span_id: str, parent: str | None, start: int, end: int, stage: str | None = None) -> Span:
    attrs = {"ml.stage": stage} if stage else {}
    return Span(TID, span_id, parent, span_id, "svc", "INTERNAL" if parent else "SERVER", start, end - start, attrs)


def _path(*spans: Span) -> list[tuple[str, int, int]]:
    """The path as (span id, start, end) in µs since the epoch, for readable expectations."""
    trace = Trace.of(TID, list(spans))
    return _absolute(trace)


def _absolute(trace: Trace) -> list[tuple[str, int, int]]:
    t0 = trace.start_us  # offsets count from the earliest span, skewed ones included
    return [(s["span_id"], t0 + round(s["offset_ms"] * 1000), t0 + round((s["offset_ms"] + s["duration_ms"]) * 1000))
            for s in critical_path(trace)]


def test_the_shorter_of_two_concurrent_children_is_off_the_path() -> None:
    assert _path(_span("root", None, 0, 50), _span("a", "root", 0, 40), _span("b", "root", 0, 10),
                 _span("c", "root", 40, 50)) == [("a", 0, 40), ("c", 40, 50)]


def test_a_sibling_overlapping_the_path_child_is_off_the_path() -> None:
    """b (10-90) was still running when the path entered a (50-100): making b faster would not
    shorten the request, so the root's own 0-50 is on the path, not b."""
    assert _path(_span("root", None, 0, 100), _span("a", "root", 50, 100),
                 _span("b", "root", 10, 90)) == [("root", 0, 50), ("a", 50, 100)]


def test_back_to_back_children_are_both_on_the_path() -> None:
    """x ends exactly when y starts (a sequential pipeline); Jaeger asks for a strictly earlier end
    and would give x's time to the root; here x is what the root waited on."""
    assert _path(_span("root", None, 0, 30), _span("x", "root", 0, 10),
                 _span("y", "root", 10, 30)) == [("x", 0, 10), ("y", 10, 30)]


def test_a_child_outliving_its_parent_is_clipped_to_it() -> None:
    assert _path(_span("root", None, 0, 100), _span("a", "root", 0, 60), _span("a1", "a", 50, 150)) == [
        ("a", 0, 50), ("a1", 50, 60), ("root", 60, 100)]


def test_clock_skew_a_child_wholly_outside_its_parent_is_left_out() -> None:
    """A child stamped after its parent ended (another host's clock) was never waited on; the path
    still adds up to the root's duration (it came to 120 ms of a 100 ms request before the fix)."""
    assert _path(_span("root", None, 0, 100), _span("late", "root", 120, 150),
                 _span("late1", "late", 125, 130)) == [("root", 0, 100)]
    assert _path(_span("root", None, 0, 100), _span("early", "root", -50, -10)) == [("root", 0, 100)]


def test_clock_skew_a_child_starting_before_its_parent_is_clipped() -> None:
    assert _path(_span("root", None, 0, 100), _span("x", "root", -20, 50), _span("x1", "x", -15, -5)) == [
        ("x", 0, 50), ("root", 50, 100)]


def test_a_child_covering_its_whole_parent_is_clipped_not_dropped() -> None:
    assert _path(_span("root", None, 0, 100), _span("a", "root", 10, 20), _span("a1", "a", 0, 30)) == [
        ("root", 0, 10), ("a1", 10, 20), ("root", 20, 100)]


def test_of_equal_ends_the_longer_child_is_on_the_path() -> None:
    assert _path(_span("root", None, 0, 100), _span("short", "root", 50, 100),
                 _span("long", "root", 0, 100)) == [("long", 0, 100)]


def test_empty_trace_and_lone_root() -> None:
    assert critical_path(Trace.of(TID, [])) == []
    assert _path(_span("root", None, 5, 9)) == [("root", 5, 9)]


def test_time_on_the_path_per_stage() -> None:
    trace = Trace.of(TID, [_span("root", None, 0, 100), _span("pre", "root", 0, 20, "preprocess"),
                           _span("inf", "root", 20, 90, "inference"), _span("warm", "root", 20, 40, "inference")])
    assert path_by_stage(critical_path(trace)) == {"preprocess": 0.02, "inference": 0.07, "unaccounted": 0.01}


def test_a_pathologically_deep_trace_is_cut_not_a_recursion_error() -> None:
    spans = [_span("s0", None, 0, 10_000)] + [_span(f"s{i}", f"s{i - 1}", i, 10_000 - i) for i in range(1, 3000)]
    path = critical_path(Trace.of(TID, spans))
    assert sum(s["duration_ms"] for s in path) == pytest.approx(10.0)


# --- an independent implementation, shaped like Jaeger UI's, for the generated traces ---------------

def _jaeger_like(trace: Trace) -> list[tuple[str, int, int]]:
    """Jaeger's two steps as separate passes: (1) clip every span to its parent's clipped extent,
    dropping spans (and their subtrees) wholly outside; (2) from the root, repeatedly take the
    last-finishing child that ends no later than the point reached, emit the gap before it as the
    parent's own time, descend; with no such child emit the rest of the span and climb back to its
    parent with the span's start as the barrier. Deviations from Jaeger are the documented ones."""
    root = trace.root
    bounds = {root.span_id: (root.start_us, root.end_us)}
    parent_of: dict[str, str] = {}
    queue = [root.span_id]
    kept: dict[str, list[str]] = {}
    while queue:
        sid = queue.pop()
        lo, hi = bounds[sid]
        kept[sid] = []
        for kid in trace.children.get(sid, []):
            k = (max(kid.start_us, lo), min(kid.end_us, hi))
            if k[1] > k[0]:
                bounds[kid.span_id] = k
                parent_of[kid.span_id] = sid
                kept[sid].append(kid.span_id)
                queue.append(kid.span_id)
    for ids in kept.values():
        ids.sort(key=lambda i: bounds[i][1], reverse=True)
    sections: list[tuple[str, int, int]] = []
    current, barrier = root.span_id, None
    while True:
        lo, hi = bounds[current]
        end = hi if barrier is None else barrier
        lfc = next((k for k in kept[current] if bounds[k][1] <= end), None)
        if lfc is not None:
            if bounds[lfc][1] != end:
                sections.append((current, bounds[lfc][1], end))
            current, barrier = lfc, None
            continue
        if lo != end:
            sections.append((current, lo, end))
        if current == root.span_id:
            break
        current, barrier = parent_of[current], lo
    merged: list[tuple[str, int, int]] = []
    for sid, a, b in reversed(sections):
        if merged and merged[-1][0] == sid and merged[-1][2] == a:
            merged[-1] = (sid, merged[-1][1], b)
        else:
            merged.append((sid, a, b))
    return merged


def _generated(rng: random.Random, skew: bool) -> Trace:
    """Up to 14 spans under random parents; with ``skew``, children may start before, end after or
    lie wholly outside their parent, and some last 0 µs."""
    spans = [_span("s0", None, 0, 1000)]
    for i in range(1, rng.randint(1, 14)):
        p = rng.choice(spans)
        if skew:
            start = rng.randint(p.start_us - 200, p.end_us + 100)
            end = start + rng.choice([0, rng.randint(0, 700)])
        else:
            start = rng.randint(p.start_us, p.end_us)
            end = rng.randint(start, p.end_us)
        spans.append(_span(f"s{i}", p.span_id, start, end))
    return Trace.of(TID, spans)


@pytest.mark.parametrize("skew", [False, True], ids=["inside", "skewed"])
def test_agrees_with_a_jaeger_shaped_walk_on_generated_traces(skew: bool) -> None:
    rng = random.Random(12)
    for _ in range(3000):
        trace = _generated(rng, skew)
        got = _absolute(trace)
        assert got == _jaeger_like(trace), [s.to_dict() for s in trace]
        # the stretches tile the root exactly: contiguous, in order, adding up to its duration
        assert [a for _, a, _ in got] == [trace.root.start_us] + [b for _, _, b in got[:-1]]
        assert sum(b - a for _, a, b in got) == trace.root.duration_us


def test_show_lays_the_trace_out_with_its_path() -> None:
    """``show``'s data (trace_tree): spans in tree order with depth, offset and self time, the
    stage each counts toward, and the path's time per stage adding up to the request."""
    trace = Trace.of(TID, [
        _span("root", None, 1000, 11_000), _span("pre", "root", 1000, 3000, "preprocess"),
        _span("inf", "root", 3000, 10_000, "inference"), _span("layer", "inf", 4000, 9000),
        _span("warm", "root", 3000, 5000, "inference"),
    ])
    tree = trace_tree(trace)
    assert [(s["span_id"], s["depth"]) for s in tree["spans"]] == [
        ("root", 0), ("pre", 1), ("inf", 1), ("layer", 2), ("warm", 1)]
    rows = {s["span_id"]: s for s in tree["spans"]}
    assert (rows["pre"]["offset_ms"], rows["inf"]["self_ms"], rows["layer"]["counts_toward"]) == (0.0, 2.0, "inference")
    assert tree["duration_ms"] == 10.0 and tree["dominant_stage"] == "inference"
    assert [s["span_id"] for s in tree["critical_path"]] == ["pre", "inf", "layer", "inf", "root"]
    assert tree["critical_path_by_stage"] == {"preprocess": 2.0, "inference": 7.0, "unaccounted": 1.0}
    assert sum(tree["critical_path_by_stage"].values()) == tree["duration_ms"]
