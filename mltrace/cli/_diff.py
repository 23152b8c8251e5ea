"""``mltrace diff TRACE_A [TRACE_B]``: a slow trace beside a typical one, stage by stage and
attribute by attribute."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

from ..analysis._diff import diff
from ._common import emit, from_source
from ._format import esc, ms, style_of, value


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "diff",
        parents=[parent],
        help="a slow trace beside a typical one, stage by stage and attribute by attribute",
        description="Lay TRACE_A beside TRACE_B (default: the median-duration recent trace of TRACE_A's "
        "service and route): self time and critical-path time per stage, then the attributes that differ.",
    )
    p.add_argument("trace_a", metavar="TRACE_A", help="the trace to explain (32 hex digits)")
    p.add_argument("trace_b", metavar="TRACE_B", nargs="?", help="the trace to compare with (default: a typical one)")
    p.add_argument("--since", default="1h", help="where to look for a typical trace (default 1h)")
    p.add_argument("--all", action="store_true", help="also list the attributes both traces share")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, out: Console, err: Console) -> int:
    data = from_source(args, lambda source: diff(source, args.trace_a, args.trace_b, since=args.since))
    return emit(args, out, data, lambda console, found: render_diff(console, found, everything=args.all))


def _signed(v: float) -> str:
    return ("+" if v > 0 else "") + ms(v)


def render_diff(out: Console, data: dict[str, Any], *, everything: bool = False) -> None:
    a, b = data["a"], data["b"]
    which = "a typical trace of the same route" if data["b_chosen"] == "typical" else "B"
    out.print(f"[bold]A[/] {a['trace_id']}  {esc(a['name'])}  {ms(a['duration_ms'])}")
    out.print(f"[bold]B[/] {b['trace_id']}  {esc(b['name'])}  {ms(b['duration_ms'])}  ({which})")
    out.print(f"A is {_signed(data['delta_ms'])} against B\n")
    table = Table(box=None, header_style="bold", pad_edge=False)
    for col in ("stage", "A self", "B self", "Δ", "A on path", "B on path"):
        table.add_column(col, justify="left" if col == "stage" else "right", no_wrap=True)
    for row in data["stages"]:
        style = style_of(row["stage"])
        delta = f"[bold]{_signed(row['delta_ms'])}[/]" if row["stage"] == data["largest_stage_delta"] else _signed(
            row["delta_ms"])
        table.add_row(f"[{style}]{esc(row['stage'])}[/]", ms(row["a_ms"]), ms(row["b_ms"]), delta,
                      ms(row["a_critical_ms"]), ms(row["b_critical_ms"]))
    out.print(table)
    rows = [r for r in data["attributes"] if r["differs"] or everything]
    if not rows:
        out.print("\nNo attribute differs between the two traces.")
        return
    out.print("")
    attrs = Table(box=None, header_style="bold", pad_edge=False)
    attrs.add_column("attribute")
    attrs.add_column("A", justify="right")
    attrs.add_column("B", justify="right")
    for r in rows:
        mark = "bold" if r["differs"] else "bright_black"
        attrs.add_row(f"[{mark}]{esc(r['attribute'])}[/]", esc(value(r["a"], 40)), esc(value(r["b"], 40)))
    out.print(attrs)
