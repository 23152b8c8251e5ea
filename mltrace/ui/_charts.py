"""Chart geometry for server-side SVG: numbers in, coordinates and labels out.

The templates draw the shapes (``templates/_charts.html``) with autoescaping on, so a label taken
from a span (a stage or attribute name) is text in the SVG like everywhere else; nothing here
builds markup. Every chart is a plain dict so a template can loop over it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from typing import Any

PALETTE = ("#3366cc", "#dc3912", "#ff9900", "#109618", "#990099", "#0099c6", "#dd4477", "#66aa00")
WIDTH = 720
HEIGHT = 200
PAD = {"left": 56, "right": 34, "top": 12, "bottom": 28}


def number(value: Any, digits: int = 3) -> str:
    """A value for a reader: floats to ``digits`` significant digits, thousands separated."""
    if isinstance(value, bool) or value is None:
        return "-" if value is None else str(value).lower()
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value) or value == 0:
            return "0" if value == 0 else str(value)
        size = abs(value)
        if size >= 1000:
            return f"{value:,.0f}"
        if size >= 1e-3:
            return f"{value:.{max(0, digits - 1 - math.floor(math.log10(size)))}f}"
        return f"{value:.{digits}g}"
    return str(value)


def nice_max(value: float) -> float:
    """The next "round" number at or above ``value`` (1, 2, 2.5, 5 times a power of ten)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    for step in (1.0, 2.0, 2.5, 5.0, 10.0):
        if value <= step * power:
            return step * power
    return 10 * power


def clock(us: int | float) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(us / 1e6))


def _frame(width: int, height: int) -> dict[str, float]:
    return {
        "x0": PAD["left"], "x1": width - PAD["right"], "y0": PAD["top"], "y1": height - PAD["bottom"],
        "width": width, "height": height,
    }


def _y_ticks(frame: dict[str, float], top: float, unit: str) -> list[dict[str, Any]]:
    ticks = []
    for i in range(5):
        v = top * i / 4
        y = frame["y1"] - (frame["y1"] - frame["y0"]) * i / 4
        ticks.append({"y": round(y, 1), "label": f"{number(v)}{unit}"})
    return ticks


def line_chart(
    xs: Sequence[float],
    series: Sequence[dict[str, Any]],
    *,
    x_labels: Sequence[str] = (),
    unit: str = "",
    threshold: float | None = None,
    threshold_label: str = "",
    y_max: float | None = None,
    width: int = WIDTH,
    height: int = HEIGHT,
    title: str = "",
) -> dict[str, Any]:
    """Lines over shared x values. ``series``: ``{"name", "values": [float | None]}`` (a gap
    where ``None``); optional ``"color"``, ``"dash"``. ``x_labels`` label a few of the x values."""
    frame = _frame(width, height)
    finite = [v for s in series for v in s["values"] if v is not None and math.isfinite(v)]
    top = nice_max(max([*finite, threshold or 0.0, 0.0]) if y_max is None else y_max)
    lo, hi = (min(xs), max(xs)) if xs else (0.0, 1.0)
    span = (hi - lo) or 1.0

    def px(x: float) -> float:
        return round(frame["x0"] + (frame["x1"] - frame["x0"]) * (x - lo) / span, 1)

    def py(v: float) -> float:
        return round(frame["y1"] - (frame["y1"] - frame["y0"]) * min(v, top) / top, 1)

    lines = []
    for i, s in enumerate(series):
        d: list[str] = []
        dots = []
        pen_up = True
        for x, v in zip(xs, s["values"], strict=False):
            if v is None or not math.isfinite(v):
                pen_up = True
                continue
            d.append(f"{'M' if pen_up else 'L'}{px(x)},{py(v)}")
            dots.append({"x": px(x), "y": py(v), "title": f"{s['name']}: {number(v)}{unit}"})
            pen_up = False
        lines.append({"name": s["name"], "d": " ".join(d), "dots": dots, "dash": s.get("dash", ""),
                      "color": s.get("color", PALETTE[i % len(PALETTE)])})
    step = max(1, len(xs) // 6)
    x_ticks = [{"x": px(x), "label": label} for j, (x, label) in enumerate(zip(xs, x_labels, strict=False))
               if j % step == 0]
    return {
        "kind": "line", "title": title, "frame": frame, "lines": lines, "y_ticks": _y_ticks(frame, top, unit),
        "x_ticks": x_ticks,
        "threshold": {"y": py(threshold), "label": threshold_label} if threshold is not None else None,
    }


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    unit: str = "",
    color: str = PALETTE[0],
    highlight: Sequence[bool] = (),
    width: int = WIDTH,
    height: int = 140,
    title: str = "",
) -> dict[str, Any]:
    """Vertical bars, one per label (counts over time buckets)."""
    frame = _frame(width, height)
    top = nice_max(max(values, default=0.0))
    n = max(1, len(values))
    slot = (frame["x1"] - frame["x0"]) / n
    bars = []
    for i, (label, v) in enumerate(zip(labels, values, strict=False)):
        h = (frame["y1"] - frame["y0"]) * max(0.0, v) / top
        bars.append({"x": round(frame["x0"] + i * slot + slot * 0.1, 1), "w": round(slot * 0.8, 1),
                     "y": round(frame["y1"] - h, 1), "h": round(h, 1),
                     "color": PALETTE[1] if i < len(highlight) and highlight[i] else color,
                     "title": f"{label}: {number(v)}{unit}"})
    step = max(1, n // 6)
    x_ticks = [{"x": round(frame["x0"] + (i + 0.5) * slot, 1), "label": label}
               for i, label in enumerate(labels) if i % step == 0]
    return {"kind": "bars", "title": title, "frame": frame, "bars": bars, "y_ticks": _y_ticks(frame, top, unit),
            "x_ticks": x_ticks}


def histograms(
    groups: Sequence[dict[str, Any]],
    *,
    bins: int = 24,
    unit: str = "",
    log: bool = False,
    edges: Sequence[float] | None = None,
    shares: bool = True,
    width: int = WIDTH,
    height: int = 180,
    title: str = "",
) -> dict[str, Any]:
    """Histograms of several groups on one axis, drawn side by side within each bin.

    ``groups``: ``{"name", "values": [float]}`` or, with ``edges`` given, ``{"name", "shares":
    [float per bin]}``. Shares (each group sums to 1) let a group of 30 be compared with one of
    3,000. ``log`` bins on a log scale (latencies spread over decades)."""
    frame = _frame(width, height)
    if edges is None:
        every = [v for g in groups for v in g["values"] if math.isfinite(v)]
        lo, hi = (min(every), max(every)) if every else (0.0, 1.0)
        if log:
            lo = max(lo, 1e-3)
            hi = max(hi, lo * 1.01)
            a, b = math.log10(lo), math.log10(hi)
            edges = [10 ** (a + (b - a) * i / bins) for i in range(bins + 1)]
        else:
            hi = hi if hi > lo else lo + 1.0
            edges = [lo + (hi - lo) * i / bins for i in range(bins + 1)]
    n_bins = len(edges) - 1
    heights: list[list[float]] = []
    for g in groups:
        if "shares" in g:
            heights.append([float(s) for s in g["shares"]])
            continue
        counts = [0] * n_bins
        for v in g["values"]:
            if not math.isfinite(v):
                continue
            i = _bin(edges, v)
            counts[i] += 1
        total = sum(counts) or 1
        heights.append([c / total if shares else float(c) for c in counts])
    top = nice_max(max((h for row in heights for h in row), default=0.0))
    slot = (frame["x1"] - frame["x0"]) / max(1, n_bins)
    k = max(1, len(groups))
    bars = []
    for gi, (g, row) in enumerate(zip(groups, heights, strict=False)):
        color = g.get("color", PALETTE[gi % len(PALETTE)])
        for i, h in enumerate(row):
            if h <= 0:
                continue
            ph = (frame["y1"] - frame["y0"]) * h / top
            bars.append({
                "x": round(frame["x0"] + i * slot + slot * (0.1 + 0.8 * gi / k), 1), "w": round(slot * 0.8 / k, 1),
                "y": round(frame["y1"] - ph, 1), "h": round(ph, 1), "color": color,
                "title": f"{g['name']}: {number(h * 100 if shares else h)}{'%' if shares else ''} "
                         f"in [{number(edges[i])}, {number(edges[i + 1])}){unit}",
            })
    step = max(1, n_bins // 6)
    x_ticks = [{"x": round(frame["x0"] + i * slot, 1), "label": f"{number(edges[i])}{unit}"}
               for i in range(0, n_bins + 1, step)]
    legend = [{"name": g["name"], "color": g.get("color", PALETTE[i % len(PALETTE)])} for i, g in enumerate(groups)]
    return {"kind": "bars", "title": title, "frame": frame, "bars": bars, "x_ticks": x_ticks, "legend": legend,
            "y_ticks": _y_ticks(frame, top * 100 if shares else top, "%" if shares else "")}


def _bin(edges: Sequence[float], v: float) -> int:
    lo, hi = 0, len(edges) - 2
    if v <= edges[0]:
        return 0
    if v >= edges[-1]:
        return hi
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if edges[mid] <= v:
            lo = mid
        else:
            hi = mid - 1
    return lo


def waterfall(spans: Sequence[dict[str, Any]], critical: set[str], total_ms: float,
              colors: dict[str, str], width: int = 1000, row: int = 22) -> dict[str, Any]:
    """One bar per span (``show --json``'s rows: offset, duration, depth), critical path marked."""
    label_w = 300
    x0, x1 = label_w, width - 70
    scale = (x1 - x0) / (total_ms or 1.0)
    rows = []
    for i, s in enumerate(spans):
        x = x0 + s["offset_ms"] * scale
        w = max(1.0, s["duration_ms"] * scale)
        on_path = s["span_id"] in critical
        stage = s.get("counts_toward") or ""
        rows.append({
            "y": 24 + i * row, "x": round(x, 1), "w": round(w, 1), "h": row - 6,
            "indent": 8 + 14 * s["depth"], "name": s["name"], "service": s["service"],
            "color": colors.get(stage, "#888888"), "critical": on_path, "error": s["error"],
            "label": f"{number(s['duration_ms'])} ms", "label_x": round(min(x + w + 4, x1 + 4), 1),
            "title": f"{s['name']} ({stage or 'no stage'}): {number(s['duration_ms'])} ms, self "
                     f"{number(s['self_ms'])} ms, starts at +{number(s['offset_ms'])} ms"
                     + ("; on the critical path" if on_path else ""),
            "anchor": s["span_id"],
        })
    ticks = [{"x": round(x0 + (x1 - x0) * i / 5, 1), "label": f"{number(total_ms * i / 5)} ms"} for i in range(6)]
    return {"width": width, "height": 24 + len(spans) * row + 8, "rows": rows, "ticks": ticks, "x0": x0, "x1": x1}


def stage_colors(names: Sequence[str]) -> dict[str, str]:
    fixed = {"preprocess": PALETTE[0], "feature_lookup": PALETTE[2], "inference": PALETTE[1],
             "postprocess": PALETTE[3], "network": "#999999", "unaccounted": "#cccccc"}
    out = dict(fixed)
    extra = [n for n in names if n not in fixed]
    for i, name in enumerate(extra):
        out[name] = PALETTE[(4 + i) % len(PALETTE)]
    return out


def stacked(parts: dict[str, float], colors: dict[str, str], *, unit: str = " ms", width: int = 720) -> dict[str, Any]:
    """One horizontal bar split into ``parts`` (a trace's self time per stage)."""
    total = sum(v for v in parts.values() if v > 0) or 1.0
    x = 0.0
    segments = []
    for name, v in parts.items():
        if v <= 0:
            continue
        w = (width - 2) * v / total
        segments.append({"x": round(1 + x, 1), "w": round(w, 1), "color": colors.get(name, "#888888"), "name": name,
                         "title": f"{name}: {number(v)}{unit} ({number(v / total * 100)}%)"})
        x += w
    return {"width": width, "height": 22, "segments": segments}
