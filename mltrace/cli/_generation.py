"""``slow --by ttft|tpot`` and the generation section of ``stats``: running and rendering.

Kept apart from ``_slow``/``_stats`` so that the generation views evolve without touching them;
those commands call in here with one line each.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.table import Table

from ..analysis._generation import slow_generations
from ._common import emit, read_traces
from ._format import esc, ms, num, value
from ._render import _render_causes


def run_slow(args: argparse.Namespace, out: Console, err: Console) -> int:
    """``mltrace slow --by ttft`` (or ``tpot``)."""
    data = read_traces(args, err, lambda source, update: slow_generations(
        source, by=args.by, service=args.service, since=args.since, limit=args.limit, scan=args.scan,
        min_duration=args.min_duration, progress=update,
    ))
    return emit(args, out, data, render_slow_generation)


def render_slow_generation(out: Console, data: dict[str, Any]) -> None:
    scope = f"service {esc(data['service'])}" if data.get("service") else "all services"
    by, label = data["metric"], data["label"]
    out.print(
        f"[bold]Slowest generations by {esc(label)}[/] of {scope}, last {esc(data.get('since') or 'all time')}: "
        f"{data['generations']:,} generations in {data['scanned']:,} traces from {esc(data.get('source', '?'))}"
    )
    if not data["traces"]:
        out.print('No generation traces found (an @mltrace.inference(kind="generate") stage records them).')
        return
    out.print(
        f"Slow = top tenth by {esc(label)}: {data['slow_count']} generations ≥ {ms(data['slow_threshold_ms'])} "
        f"(median {ms(data['median_ms'])})\n"
    )
    shown = {"ml.generate.queue_time", "ml.generate.input_tokens", "gen_ai.usage.input_tokens", "ml.model.version"}
    highlight = [k for k in dict.fromkeys(k for t in data["traces"] for k in t["attributes"]) if k not in shown][:2]
    table = Table(box=None, header_style="bold", pad_edge=False)
    for name in ("trace id", f"{by} ms", "queue ms", "tokens in", "tokens out", "total ms", "version"):
        table.add_column(name, justify="left" if name == "trace id" else "right", no_wrap=name == "trace id")
    for key in highlight:
        table.add_column(esc(".".join(key.split(".")[-2:])), justify="right")
    for t in data["traces"]:
        table.add_row(
            t["trace_id"], num(t[f"{by}_ms"]), num(t.get("queue_ms")), _int(t.get("input_tokens")),
            _int(t.get("output_tokens")), num(t["duration_ms"]), esc(value(t.get("model_version"), 12)),
            *[esc(value(t["attributes"].get(k), 12)) for k in highlight],
        )
    out.print(table)
    _render_causes(out, data["causes"])
    out.print(f"\n[bright_black]Next: mltrace show {data['traces'][0]['trace_id']}[/]")


def render_generation_stats(out: Console, gen: dict[str, Any] | None) -> None:
    """The ``stats`` section for generation traces (nothing when there are none)."""
    if not gen:
        return
    table = Table(
        title=f"\ngeneration ({gen['count']:,} streams)", title_justify="left", box=None, header_style="bold"
    )
    for name in ("figure", "p50", "p95", "p99", "max"):
        table.add_column(name, justify="left" if name == "figure" else "right")
    rows = (
        ("time to first token (ms)", "time_to_first_token_ms"),
        ("time per output token (ms)", "time_per_output_token_ms"),
        ("longest token gap (ms)", "max_token_gap_ms"),
        ("queue time (ms)", "queue_time_ms"),
        ("tokens in", "input_tokens"),
        ("tokens out", "output_tokens"),
    )
    for label, key in rows:
        p = gen.get(key) or {}
        if p:
            table.add_row(label, num(p.get("p50")), num(p.get("p95")), num(p.get("p99")), num(p.get("max")))
    out.print(table)
    reasons = " · ".join(f"{esc(k)} {v:,}" for k, v in gen["finish_reasons"].items())
    out.print(f"finish reasons: {reasons or 'none recorded'}; client disconnects: {gen['client_disconnects']:,}")


def _int(v: Any) -> str:
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else "–"
