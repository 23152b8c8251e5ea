"""Rich renderings of ``mltrace profile build`` and ``mltrace drift`` (from traces, and offline)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ._format import esc, percent, value, when
from ._render import fit_columns

BAND_STYLE = {"ok": "green", "warn": "yellow", "alert": "bold red", "insufficient": "bright_black"}
BAR = 16


def _size(n: int | None) -> str:
    if n is None:
        return "?"
    return f"{n / 1024:.0f} KiB" if n >= 1024 else f"{n} bytes"


def _reference_text(f: dict[str, Any]) -> str:
    if f["kind"] == "categorical":
        total = f["count"] or 1
        top = ", ".join(f"{k} {percent(n / total)}" for k, n in f["top"])
        return f"{f['cardinality']} categories: {top}"
    if f["mean"] is None:
        return "no values"
    return f"mean {value(f['mean'])} ± {value(f['std'])}, range [{value(f['min'])}, {value(f['max'])}]"


def render_profile(out: Console, data: dict[str, Any], *, limit: int = 20) -> None:
    outputs = f", output: {', '.join(data['outputs'])}" if data["outputs"] else ""
    out.print(
        f"[bold]Built reference profile {data['id']}[/] from {esc(data['data'])}: {data['rows']:,} rows, "
        f"{len(data['features'])} features ({data['numerical']} numerical, {data['categorical']} categorical)"
        f"{esc(outputs)}"
    )
    out.print(f"Saved to {esc(data['path'])} ({_size(data['bytes'])}) in {data['seconds']:.2f} s\n")
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("feature", "kind", "missing", "reference"):
        table.add_column(col, justify="right" if col == "missing" else "left")
    for f in data["features"][:limit]:
        table.add_row(esc(value(f["name"], 32)), f["kind"], f"{f['missing']:,}", esc(_reference_text(f)))
    out.print(table)
    if len(data["features"]) > limit:
        out.print(f"[bright_black]… and {len(data['features']) - limit} more features (--json lists all)[/]")
    out.print(f"\n[bright_black]Next: mltrace drift --profile {esc(data['path'])} --data recent.csv[/]")


# -- drift from traces ----------------------------------------------------------------------------
def _bar(score: float | None) -> Text:
    if score is None:
        return Text("")
    n = max(1, round(score * BAR)) if score > 0 else 0
    return Text("█" * n, style="red" if score >= 0.5 else "yellow" if score >= 0.3 else "green")


def _clock(us: int, width_us: int, with_date: bool) -> str:
    """A bucket's start: with the date over more than a day, with milliseconds under a second."""
    t = dt.datetime.fromtimestamp(us / 1e6).astimezone()
    if with_date:
        return t.strftime("%m-%d %H:%M:%S")
    return t.strftime("%H:%M:%S.%f")[:-3] if width_us < 1_000_000 else t.strftime("%H:%M:%S")


def _score(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def _features(rows: list[dict[str, Any]], n: int = 3) -> str:
    """The most often named features with their share of requests."""
    return ", ".join(f"{r['feature']} {percent(r['share']) if r['share'] >= 0.01 else '<1%'}" for r in rows[:n]) or "-"


SCORE_NOTE = (
    "request: one request against the reference (about 0.5 for reference-like requests, a batch as its mean "
    "row; 0.99 = more unusual than 99% of reference rows). window: the recent window's distribution "
    "(0.5 or more exactly when it alerts). One odd request scores high without an alert."
)


def render_drift_history(out: Console, data: dict[str, Any]) -> None:
    scope = f"service {esc(data['service'])}" if data.get("service") else "all services"
    refs = ", ".join(data["references"]) or "-"
    out.print(
        f"[bold]Drift[/] of {scope}, last {esc(data.get('since') or 'all time')}: "
        f"{'~' if data.get('sampled') else ''}{data['requests'] if data.get('sampled') else data['count']:,.0f} "
        "requests with "
        f"drift scores ({data['scanned']:,} traces scanned from {esc(data['source'])}); reference {esc(refs)}"
    )
    if data.get("sampled"):
        out.print(
            f"[yellow]From a uniform sample of {data['analysed']:,} of the window's {data['scanned']:,} traces "
            f"(each stands for {data['sample_weight']:,.1f}); requests scaled to the window. --scan N reads more.[/]"
        )
    if not data["count"]:
        out.print(
            "No spans with ml.drift.* attributes. Give the inference stage a monitor: "
            "@mltrace.inference(drift=DriftMonitor(ReferenceProfile.load(...))), or widen --since."
        )
        return
    if data["alerts"]:
        out.print(
            f"[red]Window alert[/] on {data['alerts']:,} requests ({percent(data['alerts'] / data['count'])}), "
            f"first {when(data['first_alert_us'])}, last {when(data['last_alert_us'])}"
        )
    else:
        out.print("[green]No window alert[/] in this period.")
    out.print(
        f"Most often drifted (window): {esc(_features(data['window_top_features']))}   ·   "
        f"most unusual in single requests: {esc(_features(data['request_top_features']))}\n"
    )
    buckets = data["buckets"]
    span_days = (buckets[-1]["end_us"] - buckets[0]["start_us"]) > 86_400e6 if buckets else False
    columns: list[tuple[str, str, list[str]]] = [
        ("from", "", [_clock(b["start_us"], b["end_us"] - b["start_us"], span_days) for b in buckets]),
        ("requests", "", [f"{b['count']:,}" for b in buckets]),
        ("request p50", "", [_score(b["score_p50"]) for b in buckets]),
        ("window mean", "", [_score(b["window_score_mean"]) for b in buckets]),
        ("window max", "", [_score(b["window_score_max"]) for b in buckets]),
        ("alerts", "", [str(b["alerts"]) for b in buckets]),
        ("", "", [_bar(b["window_score_max"]).plain for b in buckets]),
    ]
    # narrow terminals lose the bar, then the window mean and the request count: never a cut number
    kept, dropped = fit_columns(columns, out.width, [6, 3, 1])
    table = Table(title="window score over time", title_justify="left", box=None, header_style="bold")
    for header, _, _ in kept:
        table.add_column(header, justify="left" if header in ("from", "") else "right", no_wrap=True, overflow="fold")
    for i, b in enumerate(buckets):
        table.add_row(*(_bar(b["window_score_max"]) if h == "" else cells[i] for h, _, cells in kept))
    out.print(table)
    if dropped:
        names = ", ".join(h or "bar" for h, _, _ in dropped)
        out.print(f"[bright_black]left out at {out.width} columns: {esc(names)} (widen the terminal, or --json)[/]")
    out.print(f"[bright_black]{esc(SCORE_NOTE)}[/]")
    _render_groups(out, data)


def _render_groups(out: Console, data: dict[str, Any]) -> None:
    by = data.get("by") or "all"
    table = Table(title=f"\nby {esc(by)}", title_justify="left", box=None, header_style="bold")
    for col in (by.rsplit(".", 1)[-1], "requests", "request p50", "window last", "window max", "alerts"):
        table.add_column(esc(col), justify="left" if col == by.rsplit(".", 1)[-1] else "right", no_wrap=True)
    table.add_column("most often drifted")
    for g in data["groups"]:
        table.add_row(
            esc(value(g["value"], 24)), f"{g['count']:,}", _score(g["score_p50"]), _score(g["window_score_last"]),
            _score(g["window_score_max"]), str(g["alerts"]), esc(_features(g["top_features"])),
        )
    out.print(table)


# -- drift offline --------------------------------------------------------------------------------
def _cell(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def _feature_table(title: str, features: dict[str, Any]) -> Table:
    table = Table(title=title, title_justify="left", box=None, header_style="bold")
    table.add_column("feature")
    table.add_column("kind")
    for col in ("n", "psi", "js", "ks", "w1/std", "missing", "band", "alert"):
        table.add_column(col, justify="left" if col == "band" else "right", no_wrap=True)
    ordered = sorted(features.items(), key=lambda kv: -(kv[1]["severity"] or 0.0))
    for name, f in ordered:
        band = f["band"]
        table.add_row(
            esc(value(name, 32)), f["kind"][:3] + ".", f"{f['n']:,}", _cell(f["psi"]), _cell(f["js"]),
            _cell(f["ks"]), _cell(f["wasserstein_norm"]), percent(f["missing_rate"] or 0.0),
            Text(band, style=BAND_STYLE.get(band, "")),
            Text("yes", style="bold red") if f["alert"] else Text("no", style="bright_black"),
        )
    return table


def _verdict(report: dict[str, Any]) -> str:
    m = len(report["features"])
    drifted = round(report["drifted_share"] * m)
    top = ", ".join(report["top_features"]) or "-"
    state = "[bold red]ALERT[/]" if report["alert"] else "[green]no alert[/]"
    return f"{state} · score {report['score']:.2f} · {drifted} of {m} features drifted · top: {esc(top)}"


def render_drift_report(out: Console, data: dict[str, Any]) -> None:
    ref = data["profile"]
    described = f" ({esc(ref['description'])}, {ref['rows']:,} rows)" if ref.get("description") else ""
    window = f", last {data['n']:,}" if data["n"] < data["rows"] else ""
    out.print(
        f"[bold]Drift of {esc(data['data'])}[/] ({data['rows']:,} rows{window}) against reference "
        f"{data['reference']}{described}: {_verdict(data)}"
    )
    rs = data["row_score"]
    out.print(
        f"Per-row drift score: p50 {rs['p50']:.2f}, p95 {rs['p95']:.2f}; {percent(rs['unusual_share'])} of rows "
        f"score ≥ 0.99 (unusual against the reference)\n"
    )
    out.print(_feature_table("features, most drifted first", data["features"]))
    output = data.get("output")
    if output:
        out.print(f"\n[bold]Output[/]: {_verdict(output)}")
        out.print(_feature_table("", output["features"]))
    if data["ignored_columns"]:
        ignored = esc(", ".join(data["ignored_columns"]))
        out.print(f"\n[bright_black]columns not in the reference (ignored): {ignored}[/]")
    if any(f["band"] == "insufficient" for f in data["features"].values()):
        minimum = data["thresholds"]["min_samples"]
        out.print(f"[bright_black]insufficient: fewer than {minimum} values, too few to judge[/]")
