"""Page contexts: the CLI's answers (:func:`._data.answer`) plus the charts drawn from the same
traces. Everything a template receives is plain data; escaping is the template engine's job."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import semconv
from ..analysis import stage_breakdown
from ..analysis._attributes import _flat, _priority
from ..analysis._breakdown import stage_order
from ..analysis._effects import format_value
from ..analysis._feedback import without_feedback
from ..analysis._window import sample_window
from ..query import Trace, TraceSource, parse_duration
from . import _charts as charts
from ._data import CachedSource, answer
from ._params import parse

OVERVIEW_BUCKETS = 24
DRIFT_ALERT_SEVERITY = 0.5  # a window alerts when a feature's ratio to its threshold reaches 1: severity r/(1+r)
TOP_FINDINGS = 3


def _traces(source: TraceSource, args: Any) -> list[Trace]:
    """The traces the command behind ``args`` read (the cached fetch it made): over the local store
    the window's sample that stats and drift analysed (already loaded; the newest ``scan`` cost a
    second read of 10,000 traces, ~1 s of a 2.7 s overview, and covered only part of the window)."""
    minimum = parse_duration(getattr(args, "min_duration", None))
    if minimum is None:
        return sample_window(source, args.service, parse_duration(args.since), args.scan).traces
    return without_feedback(source.find_traces(args.service, parse_duration(args.since), args.scan, minimum))


def _breakdowns(source: TraceSource, args: Any, traces: list[Trace]) -> list[dict[str, float]]:
    """Self time per stage of each of ``traces`` (what _traces returned for ``args``), computed once
    per fetch: the overview's series and /slow's charts both need them (~30 µs a trace)."""
    def compute() -> list[dict[str, float]]:
        return [stage_breakdown(t) for t in traces]

    if not isinstance(source, CachedSource):
        return compute()
    key = ("breakdowns", args.service, args.since, args.scan, getattr(args, "min_duration", None), len(traces))
    return source.memo(key, compute)


def _edges(traces: list[Trace], n: int) -> list[int]:
    lo = min(t.start_us for t in traces)
    hi = max(t.start_us for t in traces) + 1
    width = max(1, -(-(hi - lo) // n))
    return [lo + i * width for i in range(n + 1)]


def _slots(traces: list[Trace], edges: list[int]) -> list[list[int]]:
    n = len(edges) - 1
    width = edges[1] - edges[0]
    slots: list[list[int]] = [[] for _ in range(n)]
    for i, t in enumerate(traces):
        slots[min(n - 1, (t.start_us - edges[0]) // width)].append(i)
    return slots


def overview(source: TraceSource, query: dict[str, str], defaults: dict[str, str]) -> dict[str, Any]:
    """Request rate, stage percentiles, error share and drift alerts over time; top causes."""
    opts = [(k, v) for k, v in query.items() if k in ("service", "since", "scan")]
    slow = answer(source, parse("slow", opts, defaults=defaults))
    stats_args = parse("stats", opts, defaults=defaults)
    stats = answer(source, stats_args)
    drift = answer(source, parse("drift", opts, defaults=defaults))
    traces = _traces(source, stats_args)
    ctx: dict[str, Any] = {"slow": slow, "stats": stats, "drift": drift, "since": stats_args.since,
                           "service": stats_args.service, "count": len(traces), "charts": {}}
    if not traces:
        return ctx
    breakdowns = _breakdowns(source, stats_args, traces)
    edges = _edges(traces, OVERVIEW_BUCKETS)
    slots = _slots(traces, edges)
    xs = [(a + b) / 2 for a, b in itertools.pairwise(edges)]
    labels = [charts.clock(x) for x in xs]
    width_s = (edges[1] - edges[0]) / 1e6
    names = [n for n in stage_order({k for b in breakdowns for k in b}) if any(b.get(n, 0) > 0 for b in breakdowns)]
    colors = charts.stage_colors(names)
    weight = float(stats.get("sample_weight", 1.0))  # a sample of the window: each trace stands for `weight`
    counts = [len(s) * weight for s in slots]
    rate = [c / width_s if width_s > 0 else float(c) for c in counts]
    errors = [sum(1 for i in s if traces[i].error) / len(s) * 100 if s else None for s in slots]
    alerts = [sum(1 for i in s if traces[i].attribute(semconv.ML_DRIFT_ALERT) is True) for s in slots]

    def pct(stage: str, q: float) -> list[float | None]:
        return [float(np.percentile([breakdowns[i].get(stage, 0.0) for i in s], q)) if s else None for s in slots]

    p50 = [{"name": f"{n} p50", "values": pct(n, 50), "color": colors[n]} for n in names]
    p95 = [{"name": f"{n} p95", "values": pct(n, 95), "color": colors[n]} for n in names]
    ctx["charts"] = {
        "rate": charts.bar_chart(labels, rate, unit="/s", title="requests per second"),
        "p50": charts.line_chart(xs, p50, x_labels=labels, unit=" ms", title="p50 self time per stage"),
        "p95": charts.line_chart(xs, p95, x_labels=labels, unit=" ms", title="p95 self time per stage"),
        "errors": charts.line_chart(xs, [{"name": "error share", "values": errors}], x_labels=labels, unit="%",
                                    y_max=max(1.0, max((e for e in errors if e is not None), default=0.0)),
                                    title="share of requests that failed"),
        "alerts": charts.bar_chart(labels, [float(a) * weight for a in alerts], color=charts.PALETTE[1],
                                   title="requests served while the drift window was in alert"),
    }
    ctx["legend"] = [{"name": n, "color": colors[n]} for n in names]
    ctx["findings"] = slow["causes"][:TOP_FINDINGS]
    ctx["bucket_s"] = width_s
    return ctx


def _attribute(trace: Trace, key: str) -> Any:
    """``key`` as ``slow`` compares it (``trace_attributes``: the inference span's value first)."""
    for span in sorted(trace.spans, key=_priority):
        value = span.attributes.get(key)
        if value is not None:
            return _flat(value)
    return _flat(trace.root.resource.get(key)) if trace.spans and key in trace.root.resource else None


def _holds(value: Any, op: str, target: Any) -> bool:
    """Whether a trace's attribute value meets a cause's condition (``_effects.Condition``)."""
    if op == "is set":
        return value is not None
    if op == "is not set":
        return value is None
    if value is None:
        return False
    if op == "=":
        return bool(value == target or format_value(value) == format_value(target))
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if not number or not isinstance(target, int | float):
        return False
    return float(value) >= float(target) if op == ">=" else float(value) < float(target)


def slow_page(source: TraceSource, query: dict[str, str], defaults: dict[str, str]) -> dict[str, Any]:
    """``slow``'s answer with each cause drawn: the stage's self time with and without it."""
    args = parse("slow", list(query.items()), defaults=defaults)
    data = answer(source, args)
    traces = _traces(source, args)
    breakdowns = _breakdowns(source, args, traces) if data["causes"] else []
    causes = []
    for cause in data["causes"]:
        op, _, _ = cause["condition"].partition(" ")
        op = cause["condition"] if cause["condition"] in ("is set", "is not set") else op
        mask = [_holds(_attribute(t, cause["attribute"]), op, cause["value"]) for t in traces]
        stage = cause["stage"]
        with_c = [b.get(stage, 0.0) for b, m in zip(breakdowns, mask, strict=False) if m]
        without = [b.get(stage, 0.0) for b, m in zip(breakdowns, mask, strict=False) if not m]
        chart = charts.histograms(
            [{"name": f"with ({len(with_c):,})", "values": with_c, "color": charts.PALETTE[1]},
             {"name": f"without ({len(without):,})", "values": without, "color": charts.PALETTE[0]}],
            log=True, unit=" ms", title=f"{stage} self time",
        )
        causes.append({**cause, "chart": chart, "with_n": len(with_c), "without_n": len(without)})
    return {"slow": data, "causes": causes, "args": vars(args)}


_GROUPS = (
    ("input", semconv.ML_INPUT_PREFIX),
    ("output", semconv.ML_OUTPUT_PREFIX),
    ("drift", "ml.drift."),
    ("model", "ml.model."),
    ("feature store", "ml.feature_store."),
)


def _readable(value: Any, key: str = "") -> str:
    """A value for a reader: numbers rounded, a shape as ``81 × 30``, lists joined."""
    ints = isinstance(value, list) and value and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
    if ints and key.endswith("shape"):
        return " × ".join(f"{v:,}" for v in value)
    if isinstance(value, list):
        return ", ".join(charts.number(v) for v in value)
    return charts.number(value)


def _attribute_groups(attributes: dict[str, Any]) -> list[dict[str, Any]]:
    """Attributes by family (input, output, drift, ...) with short keys and readable values; the
    per-feature statistics of an input or output summary (``feature.<name>.<stat>``) as a table."""
    groups: dict[str, list[tuple[str, str]]] = {}
    tables: dict[str, dict[str, dict[str, str]]] = {}
    for key in sorted(attributes):
        value = attributes[key]
        title, short = "other", key
        for name, prefix in _GROUPS:
            if key.startswith(prefix):
                title, short = name, key[len(prefix):]
                break
        if title in ("input", "output") and short.startswith("feature.") and short.count(".") >= 2:
            feature, _, stat = short[len("feature."):].rpartition(".")
            tables.setdefault(title, {}).setdefault(feature, {})[stat] = _readable(value, stat)
            continue
        groups.setdefault(title, []).append((short, _readable(value, short)))
    out: list[dict[str, Any]] = []
    for title in [name for name, _ in _GROUPS] + ["other"]:
        if title in groups:
            out.append({"title": title, "rows": groups[title]})
        if title in tables:
            features = tables[title]
            stats = sorted({s for f in features.values() for s in f})
            out.append({"title": f"{title} features", "columns": stats,
                        "table": [(name, [f.get(s, "") for s in stats]) for name, f in features.items()]})
    return out


def backend_link(source: TraceSource, trace_id: str) -> str | None:
    """The same trace in Jaeger's or Zipkin's own UI, where the source is one of them."""
    api = getattr(source, "api", None) or getattr(getattr(source, "inner", None), "api", None)
    base = getattr(api, "base_url", None)
    if not isinstance(base, str):
        return None
    if source.url.startswith("jaeger"):
        return f"{base}/trace/{trace_id}"
    if source.url.startswith("zipkin"):
        return f"{base}/zipkin/traces/{trace_id}"
    return None


def critical_spans(show: Mapping[str, Any]) -> set[str]:
    """The spans to mark on the waterfall: those with a stretch on ``show``'s critical path (the
    analysis' ``critical_path``, as Jaeger defines it), and the root, which the whole request is."""
    ids = {seg["span_id"] for seg in show["critical_path"]}
    if show["spans"]:
        ids.add(show["spans"][0]["span_id"])
    return ids


def trace_page(source: TraceSource, trace_id: str) -> dict[str, Any]:
    args = parse("show", [], positional=trace_id)
    data = answer(source, args)
    critical = critical_spans(data)
    colors = charts.stage_colors([s["counts_toward"] or "" for s in data["spans"]])
    spans = [{**s, "groups": _attribute_groups(s["attributes"]), "critical": s["span_id"] in critical}
             for s in data["spans"]]
    total = data["duration_ms"] or 1.0
    stages = [{"name": k, "ms": v, "color": colors.get(k, "#888888"), "share": v / total * 100}
              for k, v in data["stages"].items()]
    return {
        "show": data, "spans": spans, "stages": stages, "critical_ms": sum(
            s["self_ms"] for s in data["spans"] if s["span_id"] in critical),
        "fall": charts.waterfall(data["spans"], critical, data["duration_ms"], colors),
        "backend": backend_link(source, data["trace_id"]),
    }


def lineage_page(source: TraceSource, trace_id: str) -> dict[str, Any]:
    data = answer(source, parse("lineage", [], positional=trace_id))
    same = None
    if data["fingerprint"]:
        same = answer(source, parse("lineage", [("fingerprint", str(data["fingerprint"]))]))
    summary = data["input"].get("summary", {}) if data["input"] else {}
    colors = charts.stage_colors(list(data["stages"]))
    return {
        "lineage": data, "same": same, "time": charts.stacked(data["stages"], colors),
        "input_groups": _attribute_groups({semconv.ML_INPUT_PREFIX + k: v for k, v in summary.items()}),
        "output_rows": [(k, _readable(v, k)) for k, v in sorted(data["output"].items())],
        "drift_rows": [(k, _readable(v, k)) for k, v in sorted(data["drift"].items())],
        "model_rows": [(k, _readable(v, k)) for k, v in data["model"].items()],
    }


def drift_page(
    source: TraceSource, query: dict[str, str], defaults: dict[str, str], profile: Any = None
) -> dict[str, Any]:
    """``drift``'s answer as charts: the window score against the alert level over time, per
    feature how often the window named it drifted, and with a reference ``profile`` the chosen
    feature's reference distribution against the requests' (``?feature=NAME``)."""
    feature = query.pop("feature", None)
    args = parse("drift", list(query.items()), defaults=defaults)
    data = answer(source, args)
    ctx: dict[str, Any] = {"drift": data, "args": vars(args), "charts": {}, "features": [], "feature": feature}
    buckets = data["buckets"]
    if not buckets:
        return ctx
    xs = [(b["start_us"] + b["end_us"]) / 2 for b in buckets]
    labels = [charts.clock(x) for x in xs]
    ctx["charts"]["window"] = charts.line_chart(
        xs,
        [{"name": "window score (max)", "values": [b["window_score_max"] for b in buckets]},
         {"name": "window score (mean)", "values": [b["window_score_mean"] for b in buckets], "dash": "4 3"},
         {"name": "request score (p50)", "values": [b["score_p50"] for b in buckets], "color": "#999999"}],
        x_labels=labels, threshold=DRIFT_ALERT_SEVERITY, threshold_label="alert", y_max=1.0,
        title="drift score over time",
    )
    ctx["charts"]["alerts"] = charts.bar_chart(labels, [float(b["alerts"]) for b in buckets], color=charts.PALETTE[1],
                                               title="requests in alert")
    traces = _traces(source, args)
    per_feature = _feature_shares(traces, buckets)
    names = [f["feature"] for f in data["window_top_features"]]
    names += [n for n in sorted(per_feature, key=lambda n: -sum(v or 0.0 for v in per_feature[n])) if n not in names]
    for name in names[:8]:
        ctx["features"].append({
            "name": name,
            "chart": charts.line_chart(xs, [{"name": name, "values": per_feature.get(name, [])}], x_labels=labels,
                                       unit="%", y_max=100.0, threshold=50.0, threshold_label="half the requests",
                                       height=120, title=name),
        })
    if profile is not None:
        ctx["histogram"] = _reference_histogram(profile, traces, feature, names)
    return ctx


def _feature_values(traces: list[Trace], profile: Any) -> dict[str, list[float]]:
    """Per profile feature, the requests' value of it: the input summary's per-feature mean
    (``ml.input.feature.<name or column index>.mean``), which for a one-row request is the value."""
    out: dict[str, list[float]] = {}
    for index, name in enumerate(profile.feature_names):
        keys = (f"{semconv.ML_INPUT_PREFIX}feature.{name}.mean", f"{semconv.ML_INPUT_PREFIX}feature.{index}.mean")
        values = []
        for t in traces:
            v = t.attribute(keys[0])
            v = t.attribute(keys[1]) if v is None else v
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
                values.append(float(v))
        if values:
            out[name] = values
    return out


def _reference_histogram(profile: Any, traces: list[Trace], chosen: str | None, ranked: list[str]) -> dict[str, Any]:
    """The chosen feature's reference shares per PSI bin (the profile's quantile bins) against the
    shares of the requests in the window."""
    from bisect import bisect_right

    values = _feature_values(traces, profile)
    numeric = [f.name for f in profile.features if getattr(f, "bin_edges", None) and f.name in values]
    out: dict[str, Any] = {"profile": profile.id, "features": numeric, "feature": None}
    if not numeric:
        return out
    fallback = next((n for n in ranked if n in numeric), numeric[0])
    name: str = chosen if chosen is not None and chosen in numeric else fallback
    ref = profile.feature(name)
    coarse = list(ref.bin_edges)
    shares = [0.0] * (len(coarse) + 1)
    for j, count in enumerate(ref.counts):
        lower = ref.edges[j - 1] if j > 0 else -math.inf
        shares[bisect_right(coarse, lower) if j > 0 else 0] += count
    total = sum(shares) or 1.0
    current = [0.0] * (len(coarse) + 1)
    for v in values[name]:
        current[bisect_right(coarse, v)] += 1
    n = len(values[name])
    lo = min(ref.min if ref.min is not None else coarse[0], min(values[name]))
    hi = max(ref.max if ref.max is not None else coarse[-1], max(values[name]))
    out.update(feature=name, n=n, chart=charts.histograms(
        [{"name": f"reference ({ref.count:,} rows)", "shares": [c / total for c in shares], "color": "#999999"},
         {"name": f"requests in the window ({n:,})", "shares": [c / n for c in current], "color": charts.PALETTE[1]}],
        edges=[lo, *coarse, hi], title=f"{name}: share of values per reference decile",
    ))
    return out


def _feature_shares(traces: list[Trace], buckets: list[dict[str, Any]]) -> dict[str, list[float | None]]:
    """Per feature and bucket: the share (%) of scored requests whose window named it drifted."""
    lo, width, n = buckets[0]["start_us"], buckets[0]["end_us"] - buckets[0]["start_us"], len(buckets)
    named: list[Counter[str]] = [Counter() for _ in buckets]
    seen = [0] * n
    for t in traces:
        for span in t.spans:
            if not isinstance(span.attributes.get(semconv.ML_DRIFT_SCORE), int | float):
                continue
            i = (span.start_us - lo) // max(1, width)
            if not 0 <= i < n:
                continue
            seen[i] += 1
            top = span.attributes.get(semconv.ML_DRIFT_WINDOW_FEATURES) or []
            named[i].update(str(f) for f in (top if isinstance(top, list) else [top]))
    names = {f for c in named for f in c}
    return {f: [named[i][f] / seen[i] * 100 if seen[i] else None for i in range(n)] for f in names}
