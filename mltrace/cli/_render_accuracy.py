"""Rich rendering of ``mltrace accuracy``: overall and per-group accuracy (or MAE) against feedback."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from ._format import esc, percent, value


def seconds(s: float | None) -> str:
    """A delay for people: ``850 ms``, ``42 s``, ``3.5 min``, ``2.1 h``, ``4.0 d``."""
    if s is None:
        return "-"
    if s < 1:
        return f"{s * 1000:.0f} ms"
    if s < 120:
        return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.1f} h" if s < 172_800 else f"{s / 86400:.1f} d"


def _headline(score: dict[str, Any], metric: str) -> str:
    if not score["count"]:
        return "-"
    if metric == "accuracy":
        return f"accuracy {percent(score['accuracy'])} ({score['correct']:,}/{score['count']:,})"
    return f"MAE {value(score['mae'])}  RMSE {value(score['rmse'])} over {score['count']:,}"


def render_accuracy(out: Console, data: dict[str, Any]) -> None:
    scope = f"service {esc(data['service'])}" if data.get("service") else "all services"
    missing = data["unmatched"]["count"]
    out.print(
        f"[bold]Accuracy[/] of {scope} against feedback from the last {esc(data.get('since') or 'all time')}: "
        f"{data['feedback']:,} feedback spans, {data['matched']:,} matched to a prediction "
        f"({missing:,} not found, {data['without_prediction']:,} without ml.output.prediction)"
    )
    if not data["matched"]:
        out.print(
            "Nothing to score. Record outcomes with mltrace.feedback(trace_id, label), or widen --since."
        )
        if missing:
            out.print(f"[bright_black]not found, e.g. {esc(', '.join(data['unmatched']['examples']))}[/]")
        return
    delay = data["delay_s"]
    out.print(
        f"Overall: {_headline(data['overall'], data['metric'])}   ·   feedback arrived "
        f"{seconds(delay.get('p50'))} after the prediction (median; max {seconds(delay.get('max'))})\n"
    )
    by = data.get("by") or "all"
    table = Table(title=f"by {esc(by)}", title_justify="left", box=None, header_style="bold")
    table.add_column(esc(by.rsplit(".", 1)[-1]))
    table.add_column("count", justify="right")
    if data["metric"] == "accuracy":
        for col in ("accuracy", "correct"):
            table.add_column(col, justify="right")
        table.add_column("labels")
        table.add_column("most common mistakes (label → prediction)")
        for g in data["groups"]:
            labels = ", ".join(f"{k}: {percent(n / g['count'])}" for k, n in list(g["labels"].items())[:3])
            mistakes = ", ".join(f"{m['label']} → {m['prediction']} ×{m['count']}" for m in g["mistakes"])
            table.add_row(
                esc(value(g["value"], 24)), f"{g['count']:,}", percent(g["accuracy"]), f"{g['correct']:,}",
                esc(labels), esc(mistakes or "-"),
            )
    else:
        for col in ("MAE", "RMSE", "mean label", "mean prediction"):
            table.add_column(col, justify="right")
        for g in data["groups"]:
            table.add_row(
                esc(value(g["value"], 24)), f"{g['count']:,}", value(g["mae"]), value(g["rmse"]),
                value(g["mean_label"]), value(g["mean_prediction"]),
            )
    out.print(table)
