"""``slow``: the slowest traces, where their time went, and which attributes explain it.

For each stage (and ``network``/``unaccounted``) the traces in the top tenth of that stage's self
time are compared with the rest, attribute by attribute (see :mod:`._effects`). A cause is a
condition such as ``ml.input.size >= 512`` that singles out the slow traces of one stage; causes
are ranked by how well they separate times how many milliseconds they add to that stage, so a
strong effect on the stage that dominates the slow traces comes first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..query import Trace, TraceSource, parse_duration
from ._attributes import trace_attributes
from ._breakdown import dominant_stage, stage_breakdown, stage_order
from ._effects import FAMILY_ALPHA, BoolArray, Column, Condition, FloatArray, format_value, top_mask
from ._errors import UnknownStage
from ._feedback import without_feedback
from ._gc import paused_gc
from ._reports import CauseFinding, SlowAnalysis, SlowCause, SlowReport, SlowTraceRow, StageExcess
from ._weights import trace_weights, weighted_quantile
from ._window import sample_indices

SLOW_QUANTILE = 0.9  # the slow set is the top tenth
MIN_SLOW = 5
MAX_CAUSES = 5
MIN_RATIO = 1.3
MIN_ADDED = 0.05  # a cause must add at least this share of the slow threshold (p90 of the metric)
MAX_PER_STAGE = 3


@dataclass
class _Population:
    traces: list[Trace]
    stages: list[dict[str, float]]
    names: list[str]  # every stage seen, in pipeline order
    times: dict[str, FloatArray]  # stage -> self time (ms) per trace
    durations: FloatArray
    columns: list[Column]

    @classmethod
    def of(cls, traces: list[Trace]) -> _Population:
        stages = [stage_breakdown(t) for t in traces]
        names = stage_order({k for s in stages for k in s})
        times = {k: np.array([s.get(k, 0.0) for s in stages], dtype=np.float64) for k in names}
        durations = np.array([t.duration_ms for t in traces], dtype=np.float64)
        attrs = [trace_attributes(t) for t in traces]
        keys = sorted({k for a in attrs for k in a})
        alpha = FAMILY_ALPHA / max(1, len(keys))
        columns = [Column(k, [a.get(k) for a in attrs], alpha) for k in keys]
        return cls(traces, stages, names, times, durations, [c for c in columns if c.usable()])


def _median(values: FloatArray) -> float:
    return float(np.median(values)) if len(values) else 0.0


def _ms(value: float) -> str:
    return f"{value:.1f} ms" if value >= 0.95 else f"{value:.2f} ms"


def _cause(
    stage: str, cond: Condition, times: FloatArray, active: BoolArray, noise_ms: float, given: list[str]
) -> CauseFinding | None:
    with_c, without = _median(times[cond.mask]), _median(times[active & ~cond.mask])
    delta = with_c - without
    if delta <= noise_ms or with_c < MIN_RATIO * without:
        return None
    ratio = with_c / without if without > 0 else math.inf
    factor = f"{ratio:.1f}x slower" if math.isfinite(ratio) and ratio < 100 else f"{delta:.1f} ms slower"
    aside = f"; setting aside traces with {' or '.join(given)}" if given else ""
    reason = (
        f"{stage} is {factor} ({_ms(with_c)} vs {_ms(without)} median) when {cond.text()} "
        f"({cond.slow_count}/{cond.slow_total} slow traces vs {cond.other_count}/{cond.other_total} others{aside})"
    )
    return {
        "stage": stage,
        "attribute": cond.attribute,
        "condition": _condition_text(cond),
        "value": cond.value,
        "reason": reason,
        "score": round(cond.separation * delta, 4),
        "slowdown": round(ratio, 2) if math.isfinite(ratio) else None,
        "added_ms": round(delta, 3),
        "median_ms_with": round(with_c, 3),
        "median_ms_without": round(without, 3),
        "slow_count": cond.slow_count,
        "slow_total": cond.slow_total,
        "other_count": cond.other_count,
        "other_total": cond.other_total,
        "separation": round(cond.separation, 4),
        "effect_size": round(cond.effect_size, 4),
        "given": list(given),
    }


def _condition_text(cond: Condition) -> str:
    return cond.op if cond.value is None else f"{cond.op} {format_value(cond.value)}"


_NEGATIVE_OPS = ("<", "is not set")
# Among conditions that single out exactly the same traces, name the documented key first.
_PREFERRED = (
    "ml.input.size", "ml.batch.size", "ml.input.n_rows", "ml.input.shape", "ml.feature_store.misses",
    "ml.model.version", "ml.model.name", "ml.drift.score", "ml.drift.alert",
)


def _preference(attribute: str) -> int:
    return _PREFERRED.index(attribute) if attribute in _PREFERRED else len(_PREFERRED)


def _stage_causes(pop: _Population, stage: str, noise: float) -> list[CauseFinding]:
    """Causes of one stage's slow tail, found greedily: after each cause its traces are set aside
    and the rest examined again, so attributes that merely ride along with a cause (the largest
    value in a large batch) drop out, and a second, independent cause can surface."""
    times = pop.times[stage]
    n = len(times)
    active = np.ones(n, dtype=bool)
    given: list[str] = []
    found: list[CauseFinding] = []
    for _ in range(MAX_PER_STAGE):
        idx = np.flatnonzero(active)
        if len(idx) < 2 * MIN_SLOW:
            break
        slow = np.zeros(n, dtype=bool)
        slow[idx[top_mask(times[idx], SLOW_QUANTILE, MIN_SLOW)]] = True
        # Is there a tail at all? The mean, not the median, of the slow set: a cause behind 5% of
        # the traces fills half the top tenth, and whether the median lands on it then depended
        # on chance draws — at 100,000 traces the feature-store misses (4.9% of traces) were
        # missed this way while at 10,000 (5.1%) they were found (issue 14).
        if float(times[slow].mean()) - _median(times[active & ~slow]) <= noise:
            break  # no tail left to explain
        candidates = []
        for column in pop.columns:
            cond = column.best(slow, active)
            cause = _cause(stage, cond, times, active, noise, given) if cond is not None else None
            if cond is not None and cause is not None:
                candidates.append((cause, cond))
        if not candidates:
            break
        candidates.sort(
            key=lambda cc: (-cc[0]["score"], cc[1].op in _NEGATIVE_OPS, _preference(cc[1].attribute), cc[1].attribute)
        )
        cause, cond = candidates[0]
        twins = [c for _, c in candidates[1:] if np.array_equal(c.mask, cond.mask)]
        if twins:
            cause["also"] = [{"attribute": c.attribute, "condition": _condition_text(c)} for c in twins]
        found.append(cause)
        given.append(cond.text())
        active &= ~cond.mask
    return found


def find_causes(
    pop: _Population, stages: list[str], metric: FloatArray, max_causes: int = MAX_CAUSES
) -> list[SlowCause]:
    """Ranked causes over ``stages``: per attribute, the stage it explains best. A cause must add
    at least ``MIN_ADDED`` of the slow threshold, so a 0.3 ms wobble in preprocessing is not
    listed beside a 40 ms inference slow path."""
    noise = MIN_ADDED * float(np.percentile(metric, 100 * SLOW_QUANTILE))
    best: dict[str, CauseFinding] = {}
    for stage in stages:
        if stage not in pop.times:
            continue
        for cause in _stage_causes(pop, stage, noise):
            held = best.get(cause["attribute"])
            if cause["score"] > (held["score"] if held is not None else 0.0):
                best[cause["attribute"]] = cause
    ranked = sorted(best.values(), key=lambda c: (-c["score"], c["attribute"]))[:max_causes]
    return [{**cause, "rank": i} for i, cause in enumerate(ranked, 1)]


def _excess(pop: _Population, slow: np.ndarray) -> dict[str, StageExcess]:
    """Per stage: mean self time in the slow set and in the rest, and its share of the extra time."""
    rows = {}
    for name in pop.names:
        t = pop.times[name]
        rows[name] = (float(t[slow].mean()), float(t[~slow].mean()) if (~slow).any() else 0.0)
    extra = sum(max(0.0, a - b) for a, b in rows.values()) or 1.0
    return {
        name: {"slow_ms": round(a, 3), "others_ms": round(b, 3), "share_of_extra": round(max(0.0, a - b) / extra, 4)}
        for name, (a, b) in rows.items()
    }


def _trace_row(pop: _Population, i: int, highlight: list[str]) -> SlowTraceRow:
    return _row_of(pop.traces[i], highlight, pop.stages[i])


def analyze_slow(traces: list[Trace], *, limit: int = 10, stage: str | None = None) -> SlowAnalysis:
    """The slow-trace report for traces already fetched (what :func:`slow_traces` returns)."""
    if not traces:
        return {"scanned": 0, "metric": stage or "duration", "traces": [], "causes": [], "stages": {}}
    pop = _Population.of(traces)
    if stage is not None and stage not in pop.times:
        raise UnknownStage(stage, pop.names)
    metric = pop.times[stage] if stage is not None else pop.durations
    weights = trace_weights(traces)  # adjusted counts of a ratio-sampled store, else None
    slow = top_mask(metric, SLOW_QUANTILE, MIN_SLOW)
    if weights is not None:  # the top tenth of requests, not of the (slow-heavy) kept traces
        slow = metric >= weighted_quantile(metric, weights, SLOW_QUANTILE)
    causes = find_causes(pop, [stage] if stage else pop.names, metric) if len(traces) >= 2 * MIN_SLOW else []
    order = np.argsort(-metric, kind="stable")[:limit]
    highlight = list(dict.fromkeys(c["attribute"] for c in causes))[:3]
    excess = _excess(pop, slow) if slow.any() else {}
    threshold = float(metric[slow].min()) if slow.any() else None
    return {
        "scanned": len(traces),
        "metric": stage or "duration",
        "slow_count": int(slow.sum()),
        "slow_threshold_ms": round(threshold, 3) if threshold is not None else None,
        "median_ms": round(_median(metric) if weights is None else weighted_quantile(metric, weights, 0.5), 3),
        "requests": round(float(weights.sum()) if weights is not None else float(len(traces)), 1),
        "traces": [_trace_row(pop, int(i), highlight) for i in order],
        "stages": excess,
        "dominant_stage": max(excess, key=lambda k: excess[k]["slow_ms"]) if excess else None,
        "causes": causes,
    }


def _row_of(trace: Trace, highlight: list[str], stages: dict[str, float] | None = None) -> SlowTraceRow:
    """One listed trace: its duration, self time per stage, dominant stage, highlighted attributes."""
    rounded = {k: round(v, 3) for k, v in (stages if stages is not None else stage_breakdown(trace)).items()}
    root = trace.root
    return {
        "trace_id": trace.trace_id,
        "duration_ms": round(trace.duration_ms, 3),
        "start_us": trace.start_us,
        "name": root.name,
        "service": root.service,
        "error": trace.error,
        "stages": rounded,
        "dominant_stage": dominant_stage(rounded),
        "attributes": {k: trace.attribute(k) for k in highlight if trace.attribute(k) is not None},
    }


def _over_window(
    source: Any, service: str | None, since: str | float | None, window: float | None, min_duration: float | None,
    limit: int, stage: str | None, scan: int, progress: Any,
) -> SlowReport:
    """``slow`` over every trace in the window, for sources that can list a window cheaply (the
    local store's entry index): durations, the slow set, its threshold and the slowest traces
    from all of them; stage breakdowns and causes from all of them too when there are at most
    ``scan``, else from a uniform random sample of ``scan`` across the window (fixed seed: the
    same store gives the same answer), which the report says (``sampled``, ``sample_weight``).
    A uniform sample needs no per-trace weights for medians, shares and tests; each analysed
    trace stands for ``sample_weight`` traces of the window."""
    win = source.trace_window(service, window, min_duration, progress=progress)
    n = len(win)
    if n == 0:
        return {
            "source": source.url, "service": service, "since": since,
            **analyze_slow([], limit=limit, stage=stage), "analysed": 0, "sampled": False, "sample_weight": 1.0,
        }
    sample_ids = [win.trace_ids[i] for i in sample_indices(n, scan)]  # the draw sample_window makes
    sampled = len(sample_ids) < n
    top = np.argsort(-win.duration_ms, kind="stable")[:limit] if stage is None else np.array([], dtype=np.int64)
    top_ids = [win.trace_ids[i] for i in top.tolist()]
    in_sample = set(sample_ids)
    wanted = sample_ids + [t for t in top_ids if t not in in_sample]
    loaded = {t.trace_id: t for t in without_feedback(source.load(wanted, progress))}
    sample = [loaded[t] for t in sample_ids if t in loaded]
    report: SlowReport = {
        "source": source.url, "service": service, "since": since, **analyze_slow(sample, limit=limit, stage=stage),
        "scanned": n, "analysed": len(sample), "sampled": sampled, "sample_weight": round(n / max(1, len(sample)), 3),
    }
    if stage is None and sampled:
        # The window's own figures, not the sample's: every trace's duration is known.
        slow = top_mask(win.duration_ms, SLOW_QUANTILE, MIN_SLOW)
        report["slow_count"] = int(slow.sum())
        report["slow_threshold_ms"] = round(float(win.duration_ms[slow].min()), 3) if slow.any() else None
        report["median_ms"] = round(_median(win.duration_ms), 3)
        highlight = list(dict.fromkeys(c["attribute"] for c in report["causes"]))[:3]
        report["traces"] = [_row_of(loaded[t], highlight) for t in top_ids if t in loaded]
    return report


def slow_traces(
    source: TraceSource,
    *,
    service: str | None = None,
    since: str | float | None = "15m",
    limit: int = 10,
    stage: str | None = None,
    scan: int = 10_000,
    min_duration: str | float | None = None,
    progress: Any = None,
) -> SlowReport:
    """The slowest traces of ``service`` with per-stage breakdowns and ranked causes.

    Returns plain data (the ``mltrace slow --json`` contract): ``traces`` (each with ``trace_id``,
    ``duration_ms``, ``stages`` = self time per stage in ms, ``dominant_stage``) and ``causes``
    (ranked, each with ``stage``, ``attribute``, ``reason``), plus ``stages`` (how the slow set's
    extra time splits across stages) and what was scanned. ``stage`` ranks by that stage's self
    time instead of the trace duration. Up to ``scan`` traces are compared: from a source that can
    list its window (the local store, Jaeger, Zipkin), every trace in the window is counted and
    ranked and a uniform sample of ``scan`` across it is compared (``scanned``, ``analysed``,
    ``sampled``, ``sample_weight``); from a source without ``trace_window``, the newest ``scan``.
    """
    window = parse_duration(since)
    if callable(getattr(source, "trace_window", None)):
        with paused_gc():
            return _over_window(
                source, service, since, window, parse_duration(min_duration), limit, stage, scan, progress
            )
    with paused_gc():
        traces = source.find_traces(service, window, scan, parse_duration(min_duration), progress=progress)
        report = analyze_slow(without_feedback(traces), limit=limit, stage=stage)
    # The newest `scan` traces, all analysed: the same fields as the whole-window answer.
    return {
        "source": source.url, "service": service, "since": since,
        **report, "analysed": report["scanned"], "sampled": False, "sample_weight": 1.0,
    }
