"""``mltrace stats``: latency percentiles per stage and operation, optionally sliced by an attribute."""

from __future__ import annotations

import argparse

from rich.console import Console

from ..analysis import trace_stats
from ._common import emit, read_traces
from ._render_stats import render_stats


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "stats",
        parents=[parent],
        help="p50/p95/p99 per stage and per operation, error rates; --by slices by an attribute",
        description="Latency percentiles per stage (self time) and per operation over a time window, with counts "
        "and error rates. --by ATTRIBUTE slices latency, errors, prediction mix and drift by an attribute.",
    )
    p.add_argument("--service", "-s", help="service name (required for Jaeger)")
    p.add_argument("--since", default="1h", help="time window back from now (default 1h)")
    p.add_argument("--by", metavar="ATTRIBUTE", help="slice by an attribute, e.g. ml.model.version")
    p.add_argument(
        "--scan", type=int, default=10_000,
        help="analyse at most this many traces (default 10000): a uniform sample across the window when it holds more",
    )
    p.set_defaults(run=run)


def run(args: argparse.Namespace, out: Console, err: Console) -> int:
    data = read_traces(args, err, lambda source, update: trace_stats(
        source, service=args.service, since=args.since, by=args.by, scan=args.scan, progress=update,
    ))
    return emit(args, out, data, render_stats)
