"""``mltrace lineage``: what a prediction saw (input, features, model, drift, output, payload), or every
prediction made on one input (``--fingerprint``)."""

from __future__ import annotations

import argparse

from rich.console import Console

from ..analysis import lineage, predictions_for_input
from ..query import TraceNotFound
from ._common import emit, from_source, not_found, trace_id
from ._render import render_fingerprint, render_lineage


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "lineage",
        parents=[parent],
        help="from a prediction back to its input, features, model and drift",
        description="Trace a prediction back to what produced it: input summary and fingerprint, features fetched "
        "and from where, model name and version, drift scores, output, and the stored (redacted) payload "
        "where payload capture was on. --fingerprint F lists every prediction made on the same input.",
    )
    p.add_argument("trace_id", metavar="TRACE_ID", nargs="?", help="the prediction's trace id")
    p.add_argument("--fingerprint", "-f", help="list every prediction made on the input with this fingerprint")
    p.add_argument("--limit", "-n", type=int, default=100, help="with --fingerprint: at most this many (default 100)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, out: Console, err: Console) -> int:
    if bool(args.trace_id) == bool(args.fingerprint):
        err.print("error: give a TRACE_ID or --fingerprint F (one of them)")
        return 2
    if args.fingerprint:
        found = from_source(args, lambda source: predictions_for_input(source, args.fingerprint, limit=args.limit))
        return emit(args, out, found, render_fingerprint)
    wanted = trace_id(args.trace_id)
    try:
        data = from_source(args, lambda source: lineage(source, wanted))
    except TraceNotFound as exc:
        raise not_found(exc) from None
    return emit(args, out, data, render_lineage)
