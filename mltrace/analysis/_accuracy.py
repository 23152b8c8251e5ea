"""``accuracy``: join late ground truth (``feedback`` spans) with the predictions it is about.

Each feedback span names its prediction's trace (``ml.feedback.trace_id``, or its span link) and,
where known, the span (``ml.feedback.span_id``, or the link's span id). The prediction is the
``ml.output.prediction`` of that span, else of the trace's inference span, else of its
postprocess span, else of any span. Classification outcomes (text, booleans, whole numbers)
score as accuracy (label == prediction); other numbers as mean absolute error. When one
prediction received several feedback spans, the newest wins (a correction).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import semconv
from .._errors import InvalidArgumentError
from ..query import Span, Trace, TraceNotFound, TraceSource, UnknownService, parse_duration
from ._attributes import attribute_value
from ._effects import format_value
from ._gc import paused_gc
from ._reports import (
    AccuracyGroup,
    AccuracyReport,
    Score,
)
from ._stats import MAX_GROUPS, percentiles
from ._weights import trace_weight

METRICS = ("auto", "accuracy", "mae")
_PREDICTION_STAGES = (semconv.STAGE_INFERENCE, semconv.STAGE_POSTPROCESS, None)
_NOT_SET = "(not set)"


@dataclass(frozen=True)
class _Feedback:
    span: Span
    label: Any
    trace_id: str
    span_id: str | None


def _target(span: Span) -> tuple[str | None, str | None]:
    trace_id = span.attributes.get(semconv.ML_FEEDBACK_TRACE_ID)
    span_id = span.attributes.get(semconv.ML_FEEDBACK_SPAN_ID)
    for link in span.links:
        if trace_id is None or str(trace_id) == link.trace_id:
            trace_id = trace_id or link.trace_id
            if span_id is None and link.span_id.strip("0"):
                span_id = link.span_id
    return (str(trace_id).lower() if trace_id else None), (str(span_id).lower() if span_id else None)


def _feedback_spans(traces: list[Trace], since_us: int | None) -> tuple[list[_Feedback], int]:
    """The newest feedback per prediction trace, and how many feedback spans there were in all."""
    newest: dict[str, _Feedback] = {}
    seen: set[str] = set()
    for trace in traces:
        for span in trace.spans:
            if span.stage != semconv.STAGE_FEEDBACK or span.span_id in seen:
                continue
            if since_us is not None and span.start_us < since_us:
                continue
            seen.add(span.span_id)
            trace_id, span_id = _target(span)
            label = span.attributes.get(semconv.ML_FEEDBACK_LABEL)
            if trace_id is None or label is None:
                continue
            old = newest.get(trace_id)
            if old is None or span.start_us > old.span.start_us:  # sources list newest first
                newest[trace_id] = _Feedback(span, label, trace_id, span_id)
    return sorted(newest.values(), key=lambda f: f.span.start_us), len(seen)


def _prediction(trace: Trace, span_id: str | None) -> tuple[Any, Span | None]:
    linked = trace.by_id.get(span_id) if span_id else None
    if linked is not None and semconv.ML_OUTPUT_PREDICTION in linked.attributes:
        return linked.attributes[semconv.ML_OUTPUT_PREDICTION], linked
    for stage in _PREDICTION_STAGES:
        for span in trace.spans:
            if (stage is None or span.stage == stage) and semconv.ML_OUTPUT_PREDICTION in span.attributes:
                return span.attributes[semconv.ML_OUTPUT_PREDICTION], span
    return None, None


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _choose_metric(pairs: list[tuple[Any, Any]], metric: str) -> str:
    if metric not in METRICS:
        raise InvalidArgumentError(f"metric must be one of {', '.join(METRICS)}; got {metric!r}")
    if metric != "auto":
        return metric
    numbers = [v for pair in pairs for v in pair]
    if numbers and all(_is_number(v) for v in numbers) and not all(float(v).is_integer() for v in numbers):
        return "mae"
    return "accuracy"


def _class(v: Any) -> str:
    """A class label's comparable form: ``1``, ``1.0`` and ``"1"`` are one class."""
    if isinstance(v, str):
        try:
            number = float(v)
        except ValueError:
            return v
        return format_value(number) if math.isfinite(number) else v
    return format_value(v)


def _score(pairs: list[tuple[Any, Any]], metric: str, weights: list[float] | None = None) -> Score:
    """Accuracy (or MAE); ``weights``: each pair's adjusted count (ratio-sampled stores)."""
    out: Score = {"count": len(pairs)}
    if metric == "accuracy":
        keys = [(_class(label), _class(pred)) for label, pred in pairs]
        correct = sum(1 for a, b in keys if a == b)
        if weights is not None and any(w != 1.0 for w in weights):
            hit = sum(w for (a, b), w in zip(keys, weights, strict=True) if a == b)
            out["weighted_accuracy"] = round(hit / sum(weights), 4) if pairs else None
            out["requests"] = round(sum(weights), 1)
        mistakes = Counter((a, b) for a, b in keys if a != b)
        out["correct"] = correct
        out["accuracy"] = round(correct / len(pairs), 4) if pairs else None
        out["labels"] = {k: n for k, n in Counter(a for a, _ in keys).most_common(5)}
        out["mistakes"] = [{"label": a, "prediction": b, "count": n} for (a, b), n in mistakes.most_common(3)]
        return out
    numeric = [(float(a), float(b)) for a, b in pairs if _is_number_like(a) and _is_number_like(b)]
    errors = np.array([abs(b - a) for a, b in numeric], dtype=np.float64)
    out["count"] = len(numeric)
    out["mae"] = round(float(errors.mean()), 6) if errors.size else None
    out["rmse"] = round(float(np.sqrt((errors**2).mean())), 6) if errors.size else None
    out["mean_label"] = round(float(np.mean([a for a, _ in numeric])), 6) if numeric else None
    out["mean_prediction"] = round(float(np.mean([b for _, b in numeric])), 6) if numeric else None
    return out


def _is_number_like(v: Any) -> bool:
    if _is_number(v):
        return math.isfinite(float(v))
    if isinstance(v, str):
        try:
            return math.isfinite(float(v))
        except ValueError:
            return False
    return False


def _fetch(source: TraceSource, ids: list[str], known: dict[str, Trace], progress: Any) -> dict[str, Trace]:
    found = dict(known)
    for i, trace_id in enumerate(ids):
        if trace_id in found:
            continue
        with contextlib.suppress(TraceNotFound):
            found[trace_id] = source.get_trace(trace_id)
        if progress is not None and i % 50 == 0:
            progress(i)
    return found


def accuracy(
    source: TraceSource,
    *,
    service: str | None = None,
    since: str | float | None = "1d",
    by: str | None = semconv.ML_MODEL_VERSION,
    metric: str = "auto",
    scan: int = 10_000,
    progress: Any = None,
) -> AccuracyReport:
    """Accuracy (or MAE) of ``service``'s predictions against the feedback recorded within ``since``.

    Feedback spans are found by attribute (``ml.stage = feedback``, up to ``scan`` of them, newest
    first; every source supports that search), their predictions' traces fetched by id.
    ``service`` keeps predictions served by that service (feedback may come from anywhere).
    Results are per value of ``by`` (read from the prediction's trace, then from the feedback span).
    """
    if service:
        known_services = source.services()
        if service not in known_services:
            raise UnknownService(service, known_services)
    window = parse_duration(since)
    since_us = int((time.time() - window) * 1e6) if window is not None else None
    with paused_gc():
        traces = source.find_by_attribute(semconv.ML_STAGE, semconv.STAGE_FEEDBACK, limit=scan)
        items, total = _feedback_spans(traces, since_us)
        predictions = _fetch(source, [f.trace_id for f in items], {t.trace_id: t for t in traces}, progress)
    pairs: list[tuple[_Feedback, Trace, Any]] = []
    missing: list[str] = []
    without_prediction = 0
    for item in items:
        trace = predictions.get(item.trace_id)
        if trace is None:
            missing.append(item.trace_id)
            continue
        if service and service not in trace.services:
            continue
        value, _ = _prediction(trace, item.span_id)
        if value is None or isinstance(value, list | dict):
            without_prediction += 1
            continue
        pairs.append((item, trace, value))
    chosen = _choose_metric([(f.label, p) for f, _, p in pairs], metric)
    groups: dict[str, list[tuple[Any, Any]]] = {}
    for item, trace, value in pairs:
        key = _group(item, trace, by)
        groups.setdefault(key, []).append((item.label, value))
    rows: list[AccuracyGroup] = [{"value": key, **_score(members, chosen)} for key, members in groups.items()]
    rows = [r for r in rows if r["count"]]  # MAE: groups whose outcomes are not numbers
    rows.sort(key=lambda r: (-r["count"], r["value"]))
    delays = [(f.span.start_us - t.start_us) / 1e6 for f, t, _ in pairs]
    return {
        "source": source.url,
        "service": service,
        "since": since,
        "by": by,
        "metric": chosen,
        "feedback": total,
        "matched": len(pairs),
        "unmatched": {"count": len(missing), "examples": missing[:5]},
        "without_prediction": without_prediction,
        "overall": _score([(f.label, p) for f, _, p in pairs], chosen, [trace_weight(t) for _, t, _ in pairs]),
        "groups": rows[:MAX_GROUPS],
        "delay_s": percentiles(delays),
    }


def _group(item: _Feedback, trace: Trace, by: str | None) -> str:
    if not by:
        return "all"
    value = attribute_value(trace, by)
    if value is None:
        value = item.span.attributes.get(by)
    return format_value(value) if value is not None else _NOT_SET
