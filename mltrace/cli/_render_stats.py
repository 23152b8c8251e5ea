"""Rich rendering of ``mltrace stats``: per-stage, per-operation and ``--by`` tables."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from ._format import esc, num, percent, style_of, value
from ._generation import render_generation_stats
from ._render import fit_columns


def _latency_columns(table: Table) -> None:
    for col in ("p50", "p95", "p99"):
        table.add_column(col, justify="right")


def render_stats(out: Console, data: dict[str, Any]) -> None:
    scope = f"service {esc(data['service'])}" if data.get("service") else "all services"
    d = data["duration_ms"]
    out.print(
        f"[bold]Latency[/] of {scope}, last {esc(data.get('since') or 'all time')}: "
        + (f"{data['scanned']:,} traces, {percent(data['error_rate'])} errors" if data.get("sampled") else
           f"{data['count']:,} traces, {data['errors']} errors ({percent(data['error_rate'])})")
    )
    if not data["count"]:
        return
    if data.get("sampled"):
        out.print(
            f"[yellow]From a uniform sample of {data['analysed']:,} of the window's {data['scanned']:,} traces "
            f"(each stands for {data['sample_weight']:,.1f}); requests scaled to the window. --scan N reads more.[/]"
        )
    if data.get("status"):
        out.print(status_line(data["status"], data["count"]))
    out.print(f"end to end (ms): p50 {num(d['p50'])}  p95 {num(d['p95'])}  p99 {num(d['p99'])}  max {num(d['max'])}\n")
    stages = Table(title="self time per stage (ms)", title_justify="left", box=None, header_style="bold")
    stages.add_column("stage")
    stages.add_column("count", justify="right")
    _latency_columns(stages)
    stages.add_column("share", justify="right")
    stages.add_column("errors", justify="right")
    for row in data["stages"]:
        stages.add_row(
            f"[{style_of(row['stage'])}]{esc(row['stage'])}[/]", f"{row['count']:,}", num(row.get("p50")),
            num(row.get("p95")), num(row.get("p99")), percent(row["share_of_time"]), str(row["errors"]),
        )
    out.print(stages)
    ops = Table(title="\nspan duration per operation (ms)", title_justify="left", box=None, header_style="bold")
    ops.add_column("operation")
    ops.add_column("service")
    ops.add_column("count", justify="right")
    _latency_columns(ops)
    ops.add_column("errors", justify="right")
    for row in data["operations"]:
        ops.add_row(
            esc(value(row["operation"], 32)), esc(row["service"]), f"{row['count']:,}", num(row.get("p50")),
            num(row.get("p95")), num(row.get("p99")), percent(row["error_rate"]),
        )
    out.print(ops)
    render_generation_stats(out, data.get("generation"))
    if "by" in data:
        render_slices(out, data["by"])


def status_line(status: dict[str, Any], count: int) -> str:
    """``HTTP status: 2xx 35 · 4xx 57 (422 ×57) · 5xx 0``: client and server errors apart."""
    codes = status.get("codes", {})

    def detail(cls: str) -> str:
        listed = [f"{c} ×{n:,}" for c, n in codes.items() if c.startswith(cls[0])][:4]
        return f" ({', '.join(listed)})" if listed else ""

    parts = [f"{cls} {status.get(cls, 0):,}" for cls in ("2xx", "3xx") if status.get(cls) or cls == "2xx"]
    parts.append(f"[{'yellow' if status.get('4xx') else 'default'}]4xx {status.get('4xx', 0):,}{detail('4xx')}[/]")
    parts.append(f"[{'red' if status.get('5xx') else 'default'}]5xx {status.get('5xx', 0):,}{detail('5xx')}[/]")
    if status.get("none"):
        parts.append(f"no status {status['none']:,}")
    note = "   [bright_black](4xx: the request was refused; 5xx: the server failed)[/]"
    if status.get("none", 0) == count:
        note = ""
    return "HTTP status: " + " · ".join(parts) + note


def render_slices(out: Console, by: dict[str, Any]) -> None:
    groups = by["groups"]

    def slowest(g: dict[str, Any]) -> str:
        p50 = g["stages_p50_ms"]
        stage = max(p50, key=lambda k: p50[k]) if p50 else None
        return f"{stage} {num(p50[stage])}" if stage else "-"

    columns: list[tuple[str, str, list[str]]] = [
        (by["attribute"].rsplit(".", 1)[-1], "", [value(g["value"], 24) for g in groups]),
        ("count", "", [f"{g['count']:,}" for g in groups]),
        ("p50", "", [num(g["duration_ms"].get("p50")) for g in groups]),
        ("p95", "", [num(g["duration_ms"].get("p95")) for g in groups]),
        ("p99", "", [num(g["duration_ms"].get("p99")) for g in groups]),
        ("errors", "", [percent(g["error_rate"]) for g in groups]),
        ("4xx", "", [f"{g.get('status_4xx', 0):,}" for g in groups]),
        ("5xx", "", [f"{g.get('status_5xx', 0):,}" for g in groups]),
        ("slowest stage (p50 ms)", "", [slowest(g) for g in groups]),
        ("predictions", "", ["\n".join(f"{k} {percent(v)}" for k, v in list(g["predictions"].items())[:3]) or "-"
                             for g in groups]),
        ("drift p50", "", [value(g["drift_score"].get("p50") if g["drift_score"] else None) for g in groups]),
        ("alerts", "", [str(g["drift_alerts"]) for g in groups]),
    ]
    # narrow terminals lose the prediction mix, the slowest stage, p99, then p95: never a cut number
    kept, dropped = fit_columns(columns, out.width - 2, [9, 8, 4, 3])
    table = Table(title=f"\nby {esc(by['attribute'])}", title_justify="left", box=None, header_style="bold")
    for i, (header, _, _) in enumerate(kept):
        table.add_column(esc(header), justify="left" if i == 0 or header in ("slowest stage (p50 ms)", "predictions")
                         else "right", no_wrap=True, overflow="fold")
    for i in range(len(groups)):
        table.add_row(*(esc(cells[i]) for _, _, cells in kept))
    out.print(table)
    if dropped:
        names = ", ".join(h for h, _, _ in dropped)
        out.print(f"[bright_black]left out at {out.width} columns: {esc(names)} (widen the terminal, or --json)[/]")
