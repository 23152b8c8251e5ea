"""``mltrace slow``: the slowest traces, their per-stage breakdown and the likely causes."""

from __future__ import annotations

import argparse

from rich.console import Console

from ..analysis import slow_traces
from ._common import emit, read_traces
from ._generation import run_slow as run_generation_slow
from ._render import render_slow


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "slow",
        parents=[parent],
        help="the slowest traces, where their time went, and why",
        description="Rank the slowest traces of a service, break each into stage self times, and name the "
        "attributes that set the slow traces apart from the rest.",
    )
    p.add_argument("--service", "-s", help="service name (required for Jaeger)")
    p.add_argument("--since", default="15m", help="time window back from now: 30s, 15m, 2h, 7d (default 15m)")
    p.add_argument("--limit", "-n", type=int, default=10, help="how many slow traces to list (default 10)")
    p.add_argument("--stage", help="rank by this stage's self time instead of the whole trace (e.g. inference)")
    p.add_argument(
        "--scan", type=int, default=10_000,
        help="compare at most this many traces attribute by attribute (default 10000); every source "
        "counts and ranks every trace in the window and compares a uniform sample across it",
    )
    p.add_argument("--min-duration", help="only traces at least this long (e.g. 50ms)")
    p.add_argument(
        "--by", "--metric", dest="by", choices=("duration", "ttft", "tpot"), default="duration",
        help="rank by trace duration (default), or generations by time to first token / time per output token",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace, out: Console, err: Console) -> int:
    if getattr(args, "by", "duration") != "duration":
        return run_generation_slow(args, out, err)
    data = read_traces(args, err, lambda source, update: slow_traces(
        source, service=args.service, since=args.since, limit=args.limit, stage=args.stage,
        scan=args.scan, min_duration=args.min_duration, progress=update,
    ))
    return emit(args, out, data, render_slow)
