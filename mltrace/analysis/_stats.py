"""``stats``: latency percentiles per stage and per operation, error rates, HTTP statuses by
class (4xx and 5xx apart), and ``--by`` slices.

Slicing by an attribute groups traces by its value (numeric attributes with many values fall
into quartile ranges) and reports, per group, latency, error rate, the mix of predictions and
drift scores, so a regression in one model version or one region stands out.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from .. import semconv
from ..query import Trace, TraceSource, parse_duration
from ._attributes import attribute_value
from ._breakdown import stage_breakdown, stage_order
from ._effects import format_value
from ._gc import paused_gc
from ._reports import (
    CountedPercentiles,
    OperationRow,
    Percentiles,
    StageRow,
    StatsGroup,
    StatsReport,
    StatsSlice,
    TraceSummary,
)
from ._status import http_status, status_counts
from ._weights import trace_weights, weighted_quantile
from ._window import sample_window

PERCENTILES = (50, 95, 99)
MAX_GROUPS = 12
MAX_OPERATIONS = 30


def percentiles(values: list[float] | np.ndarray, weights: np.ndarray | None = None) -> Percentiles:
    """``{"p50", "p95", "p99", "mean", "max"}`` in the values' unit, rounded to µs.

    ``weights``: each value's adjusted count (sampled stores; see ``_weights``), or ``None``.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return {}
    if weights is not None:
        p50, p95, p99 = (round(weighted_quantile(arr, weights, p / 100), 3) for p in PERCENTILES)
        mean = float(np.average(arr, weights=weights))
    else:
        p50, p95, p99 = (round(float(np.percentile(arr, p)), 3) for p in PERCENTILES)
        mean = float(arr.mean())
    return {"p50": p50, "p95": p95, "p99": p99, "mean": round(mean, 3), "max": round(float(arr.max()), 3)}


def _stage_rows(traces: list[Trace], breakdowns: list[dict[str, float]]) -> list[StageRow]:
    names = stage_order({k for b in breakdowns for k in b})
    total = sum(t.duration_ms for t in traces) or 1.0
    rows: list[StageRow] = []
    for name in names:
        present = [b[name] for b in breakdowns if name in b]
        errors = sum(1 for t in traces for s in t.spans if s.error and s.stage == name)
        rows.append(
            {
                "stage": name,
                "count": len(present),
                "errors": errors,
                "share_of_time": round(sum(present) / total, 4),
                **percentiles(present),
            }
        )
    return rows


def _operation_rows(traces: list[Trace]) -> list[OperationRow]:
    spans: dict[tuple[str, str], list[tuple[float, bool]]] = {}
    for t in traces:
        for s in t.spans:
            spans.setdefault((s.service, s.name), []).append((s.duration_ms, s.error))
    rows: list[OperationRow] = []
    for (service, name), items in spans.items():
        errors = sum(1 for _, e in items if e)
        rows.append(
            {
                "service": service,
                "operation": name,
                "count": len(items),
                "errors": errors,
                "error_rate": round(errors / len(items), 4),
                **percentiles([d for d, _ in items]),
            }
        )
    rows.sort(key=lambda r: (-r["count"] * r.get("p50", 0.0), r["operation"]))
    return rows[:MAX_OPERATIONS]


def _group_labels(values: list[Any]) -> list[str | None]:
    """A label per trace: the value itself, or a quartile range for many-valued numbers."""
    present = [v for v in values if v is not None]
    numeric = present and all(isinstance(v, int | float) and not isinstance(v, bool) for v in present)
    if not numeric or len(set(present)) <= MAX_GROUPS:
        return [format_value(v) if v is not None else None for v in values]
    edges = sorted(set(np.percentile(np.asarray(present, dtype=np.float64), [25, 50, 75]).tolist()))
    labels: list[str | None] = []
    for v in values:
        if v is None:
            labels.append(None)
            continue
        i = int(np.searchsorted(edges, float(v), side="right"))
        lo = format_value(edges[i - 1]) if i > 0 else "min"
        hi = format_value(edges[i]) if i < len(edges) else "max"
        labels.append(f"[{lo}, {hi})" if i < len(edges) else f"[{lo}, max]")
    return labels


def _drift(values: list[Any]) -> CountedPercentiles:
    scores = [float(v) for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    return {"count": len(scores), **percentiles(scores)} if scores else {}


def _slice(traces: list[Trace], breakdowns: list[dict[str, float]], attribute: str) -> StatsSlice:
    labels = _group_labels([attribute_value(t, attribute) for t in traces])
    groups: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        groups.setdefault(label if label is not None else "(not set)", []).append(i)
    rows: list[StatsGroup] = []
    for label, idx in sorted(groups.items(), key=lambda kv: -len(kv[1]))[:MAX_GROUPS]:
        members = [traces[i] for i in idx]
        errors = sum(1 for t in members if t.error)
        predictions = Counter(
            format_value(p) for t in members if (p := t.attribute(semconv.ML_OUTPUT_PREDICTION)) is not None
        )
        alerts = sum(1 for t in members if t.attribute(semconv.ML_DRIFT_ALERT) is True)
        statuses = [http_status(t) for t in members]
        stage_p50 = {}
        for name in stage_order({k for i in idx for k in breakdowns[i]}):
            stage_p50[name] = round(float(np.median([breakdowns[i].get(name, 0.0) for i in idx])), 3)
        rows.append(
            {
                "value": label,
                "count": len(idx),
                "errors": errors,
                "error_rate": round(errors / len(idx), 4),
                "status_4xx": sum(1 for c in statuses if c is not None and 400 <= c < 500),
                "status_5xx": sum(1 for c in statuses if c is not None and c >= 500),
                "duration_ms": percentiles([t.duration_ms for t in members]),
                "stages_p50_ms": stage_p50,
                "predictions": {k: round(v / len(idx), 4) for k, v in predictions.most_common(5)},
                "drift_score": _drift([t.attribute(semconv.ML_DRIFT_SCORE) for t in members]),
                "drift_alerts": alerts,
            }
        )
    return {"attribute": attribute, "groups": rows}


def generation_stats(traces: list[Trace]) -> dict[str, Any] | None:
    from ._generation import generation_stats as stats  # imported late: _generation imports this module

    return stats(traces)


def summarize_traces(traces: list[Trace], *, by: str | None = None, sample_weight: float = 1.0) -> TraceSummary:
    """Percentiles per stage and per operation over ``traces`` (what :func:`trace_stats` returns).

    ``sample_weight``: how many traces each of ``traces`` stands for when they are a uniform sample
    of a larger window (:mod:`._window`); it scales ``requests`` only (a uniform weight changes no
    percentile, share or rate)."""
    breakdowns = [stage_breakdown(t) for t in traces]
    errors = sum(1 for t in traces if t.error)
    weights = trace_weights(traces)  # None unless the store holds ratio-sampled traces
    w = weights if weights is not None else np.ones(len(traces))
    analysed = float(w.sum())
    weighted_errors = float(sum(wi for wi, t in zip(w, traces, strict=True) if t.error))
    out: TraceSummary = {
        "count": len(traces),
        "requests": round(analysed * sample_weight, 1),
        "errors": errors,
        "error_rate": round(weighted_errors / analysed, 4) if traces else 0.0,
        "status": status_counts(traces),
        "duration_ms": percentiles([t.duration_ms for t in traces], weights),
        "stages": _stage_rows(traces, breakdowns),
        "operations": _operation_rows(traces),
    }
    if by:
        out["by"] = _slice(traces, breakdowns, by)
    if (generation := generation_stats(traces)) is not None:
        out["generation"] = generation  # TTFT / per-token percentiles (mltrace.analysis._generation)
    return out


def trace_stats(
    source: TraceSource,
    *,
    service: str | None = None,
    since: str | float | None = "1h",
    by: str | None = None,
    scan: int = 10_000,
    progress: Any = None,
) -> StatsReport:
    """p50/p95/p99 latency per stage (self time) and per operation, counts and error rates.

    ``by`` slices latency, errors, prediction mix and drift by an attribute (e.g.
    ``ml.model.version``, a customer segment, a region). Every trace in the window is counted
    (``scanned``; the local store from its entry index, Jaeger and Zipkin by reading the window in
    slices) and up to ``scan`` of them, a uniform sample across the window when it holds more, are
    analysed (``analysed``, ``sampled``, ``sample_weight``; ``requests`` is scaled to the window,
    each row's ``count`` is of analysed traces).
    """
    with paused_gc():
        sample = sample_window(source, service, parse_duration(since), scan, progress)
        summary = summarize_traces(sample.traces, by=by, sample_weight=sample.sample_weight)
    return {"source": source.url, "service": service, "since": since, **summary, **sample.fields()}  # type: ignore[typeddict-item]
