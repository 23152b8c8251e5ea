"""``drift_history``: drift as the served requests saw it, read back from their spans.

Every span with ``ml.drift.score`` (the inference span of a model with a drift monitor) is one
observation: its time, request score, window score, alert flag, top features and reference. They
are split into time buckets (window score over time), counted (alerts, the features most often
named) and grouped by an attribute, the model version by default.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import semconv
from .._errors import InvalidArgumentError
from ..query import Span, Trace, TraceSource, parse_duration
from ._attributes import attribute_value
from ._effects import format_value
from ._gc import paused_gc
from ._reports import (
    DriftBucket,
    DriftGroup,
    DriftReport,
    DriftStats,
    RankedFeature,
)
from ._stats import MAX_GROUPS
from ._weights import trace_weight
from ._window import sample_window

TOP_FEATURES = 5


@dataclass(frozen=True)
class _Point:
    start_us: int
    score: float
    window_score: float | None
    alert: bool
    top: tuple[str, ...]
    window_top: tuple[str, ...]
    reference: str | None
    group: str


def _names(value: Any) -> tuple[str, ...]:
    if isinstance(value, list | tuple):
        return tuple(str(v) for v in value)
    return (str(value),) if value else ()


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _points(trace: Trace, by: str | None) -> list[_Point]:
    out = []
    for span in trace.spans:
        score = _number(span.attributes.get(semconv.ML_DRIFT_SCORE))
        if score is None:
            continue
        out.append(_point(trace, span, score, by))
    return out


def _point(trace: Trace, span: Span, score: float, by: str | None) -> _Point:
    a = span.attributes
    group: Any = None
    if by:
        group = a.get(by)
        if group is None:
            group = attribute_value(trace, by)
    reference = a.get(semconv.ML_DRIFT_REFERENCE)
    return _Point(
        start_us=span.start_us,
        score=score,
        window_score=_number(a.get(semconv.ML_DRIFT_WINDOW_SCORE)),
        alert=a.get(semconv.ML_DRIFT_ALERT) is True,
        top=_names(a.get(semconv.ML_DRIFT_TOP_FEATURES)),
        window_top=_names(a.get(semconv.ML_DRIFT_WINDOW_FEATURES)),
        reference=str(reference) if reference is not None else None,
        group=format_value(group) if group is not None else ("(not set)" if by else "all"),
    )


def _round(v: float | None) -> float | None:
    return None if v is None else round(v, 4)


def _summary(points: list[_Point]) -> DriftStats:
    """Counts and score statistics of a set of observations (a bucket, a group, all of them)."""
    scores = np.array([p.score for p in points], dtype=np.float64)
    windows = [p.window_score for p in points if p.window_score is not None]
    latest = max(points, key=lambda p: p.start_us) if points else None
    return {
        "count": len(points),
        "score_p50": _round(float(np.median(scores))) if points else None,
        "score_p95": _round(float(np.percentile(scores, 95))) if points else None,
        "window_score_mean": _round(float(np.mean(windows))) if windows else None,
        "window_score_max": _round(max(windows)) if windows else None,
        "window_score_last": _round(latest.window_score) if latest is not None else None,
        "alerts": sum(1 for p in points if p.alert),
    }


def _ranked(counter: Counter[str], total: int) -> list[RankedFeature]:
    return [{"feature": k, "count": n, "share": round(n / total, 4)} for k, n in counter.most_common(TOP_FEATURES)]


def _buckets(points: list[_Point], n: int) -> list[DriftBucket]:
    lo, hi = points[0].start_us, points[-1].start_us
    width = max(1, -(-(hi - lo + 1) // n))
    slots: list[list[_Point]] = [[] for _ in range(n)]
    for p in points:
        slots[min(n - 1, (p.start_us - lo) // width)].append(p)
    return [{"start_us": lo + i * width, "end_us": lo + (i + 1) * width, **_summary(s)} for i, s in enumerate(slots)]


def _group_rows(points: list[_Point]) -> list[DriftGroup]:
    groups: dict[str, list[_Point]] = {}
    for p in points:
        groups.setdefault(p.group, []).append(p)
    rows: list[DriftGroup] = []
    for value, members in sorted(groups.items(), key=lambda kv: -len(kv[1]))[:MAX_GROUPS]:
        window_top = Counter(f for p in members for f in p.window_top)
        rows.append(
            {
                "value": value,
                **_summary(members),
                "references": sorted({p.reference for p in members if p.reference}),
                "top_features": _ranked(window_top or Counter(f for p in members for f in p.top), len(members)),
            }
        )
    return rows


def drift_history(
    source: TraceSource,
    *,
    service: str | None = None,
    since: str | float | None = "1h",
    buckets: int = 12,
    by: str | None = semconv.ML_MODEL_VERSION,
    scan: int = 10_000,
    progress: Any = None,
) -> DriftReport:
    """Drift over time from the ``ml.drift.*`` attributes of ``service``'s recent requests.

    Returns ``buckets`` (the observed time range cut into that many equal slices, each with the
    request count, request-score percentiles, window score mean/max/last and alerts), ``alerts``
    (requests whose window was in alert) with ``first_alert_us``, ``window_top_features`` and
    ``request_top_features`` (the features most often named, with their share of requests), and
    ``groups`` (the same per value of ``by``).
    """
    if buckets < 1:
        raise InvalidArgumentError(f"buckets must be at least 1; got {buckets}")
    with paused_gc():
        # From the local store: the whole window, a uniform sample of `scan` when it holds more
        # (`sampled`, `sample_weight`); `requests` and `alert_requests` are scaled to the window.
        sample = sample_window(source, service, parse_duration(since), scan, progress)
        traces = sample.traces
        points = sorted((p for t in traces for p in _points(t, by)), key=lambda p: p.start_us)
    alerts = [p for p in points if p.alert]
    scored = [t for t in traces if any(semconv.ML_DRIFT_SCORE in s.attributes for s in t.spans)]
    # adjusted counts (1 when unsampled), times the window's traces per analysed trace
    weight = {t.trace_id: trace_weight(t) * sample.sample_weight for t in scored}
    alerted = {t.trace_id for t in scored if any(s.attributes.get(semconv.ML_DRIFT_ALERT) is True for s in t.spans)}
    return {
        "source": source.url,
        "service": service,
        "since": since,
        "by": by,
        **sample.fields(),  # type: ignore[typeddict-item]
        "generated_us": int(time.time() * 1e6),
        **_summary(points),
        "requests": round(sum(weight.values()), 1),
        "alert_requests": round(sum(w for tid, w in weight.items() if tid in alerted), 1),
        "first_alert_us": alerts[0].start_us if alerts else None,
        "last_alert_us": alerts[-1].start_us if alerts else None,
        "references": dict(Counter(p.reference for p in points if p.reference).most_common()),
        "window_top_features": _ranked(Counter(f for p in points for f in p.window_top), len(points)),
        "request_top_features": _ranked(Counter(f for p in points for f in p.top), len(points)),
        "buckets": _buckets(points, buckets) if points else [],
        "groups": _group_rows(points),
    }
