"""``mltrace accuracy``: how right the predictions were, once ground truth came back (``mltrace.feedback``)."""

from __future__ import annotations

import argparse

from rich.console import Console

from ..analysis import accuracy
from ..analysis._accuracy import METRICS
from ._common import emit, read_traces
from ._render_accuracy import render_accuracy


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "accuracy",
        parents=[parent],
        help="accuracy (or MAE) per model version, from feedback recorded with mltrace.feedback()",
        description="Join the feedback spans recorded within --since (mltrace.feedback(trace_id, label)) with the "
        "predictions they are about (ml.output.prediction), and report accuracy for classes or mean absolute "
        "error for numbers, per model version (--by).",
    )
    p.add_argument("--service", "-s", help="only predictions served by this service")
    p.add_argument("--since", default="1d", help="feedback recorded within this window (default 1d)")
    p.add_argument("--by", metavar="ATTRIBUTE", default="ml.model.version",
                   help="group by this attribute of the prediction (default ml.model.version)")
    p.add_argument("--metric", choices=METRICS, default="auto",
                   help="accuracy (label == prediction) or mae; auto: mae when the values are fractional numbers")
    p.add_argument("--scan", type=int, default=10_000, help="read at most this many feedback traces (default 10000)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, out: Console, err: Console) -> int:
    data = read_traces(args, err, lambda source, update: accuracy(
        source, service=args.service, since=args.since, by=args.by, metric=args.metric, scan=args.scan,
        progress=update,
    ), what="Joining feedback")
    return emit(args, out, data, render_accuracy)
