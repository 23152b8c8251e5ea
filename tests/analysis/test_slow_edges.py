"""``analyze_slow`` on traces built in memory, without the CLI: a planted effect is named with
its condition, and the edges (no traces, one trace, every trace alike, ties, NaN and missing
attribute values, a stage that is not there) give a plain answer, not an exception."""

from __future__ import annotations

import math
import random

import pytest

from mltrace.analysis import UnknownStage, analyze_slow
from mltrace.query import Span, Trace


def _trace(i: int, inference_ms: float, pre_ms: float = 1.0, **attrs: object) -> Trace:
    """server span over preprocess then inference; ``attrs`` on the inference span."""
    tid = f"{i + 1:032x}"
    pre_us, inf_us = int(pre_ms * 1000), int(inference_ms * 1000)
    spans = [
        Span(tid, f"{3 * i + 1:016x}", None, "POST /predict", "svc", "SERVER", 0, pre_us + inf_us + 500, {}),
        Span(tid, f"{3 * i + 2:016x}", f"{3 * i + 1:016x}", "preprocess", "svc", "INTERNAL", 100, pre_us,
             {"ml.stage": "preprocess"}),
        Span(tid, f"{3 * i + 3:016x}", f"{3 * i + 1:016x}", "inference", "svc", "INTERNAL", 200 + pre_us, inf_us,
             {"ml.stage": "inference", **attrs}),
    ]
    return Trace.of(tid, spans)


def _smallest_big(traces: list[Trace]) -> int:
    return min(int(t.attribute("ml.input.size") or 0) for t in traces[::10])


def _planted(n: int = 200, seed: int = 3) -> list[Trace]:
    """Batches of 512 rows or more (one in ten) take 30 ms more in inference."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        big = i % 10 == 0
        size = rng.randint(512, 1024) if big else rng.randint(1, 64)
        out.append(_trace(i, 2.0 + rng.random() + (30.0 if big else 0.0), 1.0 + rng.random() * 0.2,
                          **{"ml.input.size": size, "ml.model.version": rng.choice(["1", "2"]),
                             "ml.input.n_rows": size}))
    return out


def test_the_planted_cause_is_named_with_its_twin_and_condition() -> None:
    traces = _planted()
    report = analyze_slow(traces)
    top = report["causes"][0]
    cut = f">= {_smallest_big(traces)}"  # the split between the groups, at the slow group's edge
    assert (top["stage"], top["attribute"], top["condition"]) == ("inference", "ml.input.size", cut)
    assert top["also"] == [{"attribute": "ml.input.n_rows", "condition": cut}]  # the same traces
    assert top["slow_count"] == top["slow_total"] == 20 and top["other_count"] == 0
    assert top["added_ms"] == pytest.approx(30.0, abs=1.0)
    assert not any(c["attribute"] == "ml.model.version" for c in report["causes"])  # random: no cause
    assert report["dominant_stage"] == "inference" and report["stages"]["inference"]["share_of_extra"] > 0.9
    assert report["traces"][0]["attributes"]["ml.input.size"] >= 512


def test_no_traces_and_one_trace() -> None:
    empty = analyze_slow([])
    assert (empty["scanned"], empty["traces"], empty["causes"], empty["stages"]) == (0, [], [], {})
    one = analyze_slow([_trace(0, 5.0)])
    assert one["scanned"] == 1 and one["causes"] == [] and len(one["traces"]) == 1
    assert one["slow_count"] == 0 and one["slow_threshold_ms"] is None  # a slow set is never every trace
    assert one["median_ms"] == one["traces"][0]["duration_ms"]


def test_too_few_traces_to_compare_name_no_cause() -> None:
    """Below twice the smallest slow set (5), nothing is compared, however clear the difference."""
    few = [_trace(i, 100.0 if i < 2 else 1.0, **{"ml.input.size": 1000 if i < 2 else 1}) for i in range(9)]
    assert analyze_slow(few)["causes"] == []


def test_identical_traces_have_no_tail_to_explain() -> None:
    same = [_trace(i, 4.0, **{"ml.input.size": i % 3}) for i in range(50)]
    report = analyze_slow(same)
    assert report["causes"] == [] and report["slow_threshold_ms"] == report["median_ms"]


def test_ties_the_slow_set_keeps_its_size_and_the_listing_its_order() -> None:
    """Ten traces tie at the top; the slow set is still the top tenth, at least five (5 of 40),
    and the slowest are listed in the order they came."""
    traces = [_trace(i, 10.0 if i % 4 == 0 else 2.0) for i in range(40)]
    report = analyze_slow(traces, limit=3)
    assert report["slow_count"] == 5 and report["slow_threshold_ms"] == traces[0].duration_ms
    ids = [t["trace_id"] for t in report["traces"]]
    assert ids == [traces[0].trace_id, traces[4].trace_id, traces[8].trace_id]  # equal durations: input order


def test_nan_and_missing_values_do_not_hide_the_cause_or_leak_into_it() -> None:
    traces = _planted()
    for i, t in enumerate(traces):
        if i % 10 == 5:  # a fast trace whose size was not a number, another without one
            inf = t.spans[-1]
            inf.attributes = {**inf.attributes, "ml.input.size": math.nan if i % 20 == 5 else None}
    report = analyze_slow(traces)
    top = report["causes"][0]
    # a NaN is missing, as None is: the cause keeps its full separation and its documented name
    expected = ("ml.input.size", f">= {_smallest_big(traces)}", 1.0)
    assert (top["attribute"], top["condition"], top["separation"]) == expected
    assert all(not (isinstance(c["value"], float) and math.isnan(c["value"])) for c in report["causes"])


def test_a_stage_ranks_by_its_own_self_time_and_an_unknown_one_is_refused() -> None:
    traces = [_trace(i, 2.0, pre_ms=20.0 if i % 10 == 0 else 1.0, **{"ml.input.size": 7}) for i in range(60)]
    report = analyze_slow(traces, stage="preprocess")
    assert report["metric"] == "preprocess" and report["slow_count"] == 6
    assert {t["trace_id"] for t in report["traces"][:6]} == {traces[i].trace_id for i in range(0, 60, 10)}
    with pytest.raises(UnknownStage):
        analyze_slow(traces, stage="postprocess")
