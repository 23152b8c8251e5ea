"""``mltrace show TRACE_ID``: the span tree with durations, a timeline bar and the ml.* attributes."""

from __future__ import annotations

import argparse

from rich.console import Console

from ..analysis import show_trace
from ..query import TraceNotFound
from ._common import emit, from_source, not_found, trace_id
from ._render import render_show


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "show",
        parents=[parent],
        help="one trace as a span tree with a timeline",
        description="Print one trace: each span with its duration, self time, a timeline bar and its ml.* attributes.",
    )
    p.add_argument("trace_id", metavar="TRACE_ID", help="the trace id (32 hex digits; the X-Trace-Id response header)")
    p.add_argument("--all", action="store_true", help="also print per-feature input/output statistics")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, out: Console, err: Console) -> int:
    wanted = trace_id(args.trace_id)
    try:
        data = from_source(args, lambda source: show_trace(source, wanted))
    except TraceNotFound as exc:
        raise not_found(exc) from None
    return emit(args, out, data, lambda console, found: render_show(console, found, everything=args.all))
