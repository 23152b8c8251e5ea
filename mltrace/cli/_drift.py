"""``mltrace drift``: drift over time from the spans of served requests (``--service``), or a file of
recent data against a reference profile, offline (``--profile --data``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from ..analysis import drift_history
from ..drift import drift_report
from ._common import CommandError, emit, read_traces
from ._drift_fleet import is_prometheus, run_fleet
from ._render_drift import render_drift_history, render_drift_report

_BAD_INPUT = (OSError, ValueError, ImportError, UnicodeError)


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "drift",
        parents=[parent],
        help="drift over time from traces (--service), or recent data against a profile (--profile --data)",
        description="With --service: read the ml.drift.* attributes of recent requests (the inference spans of a "
        "model with a DriftMonitor) and show the window score over time, alerts, the features most often "
        "drifted, per model version. With --profile P --data D: score the rows of D against the reference "
        "profile P and print the window report, feature by feature (PSI, Jensen-Shannon, KS, Wasserstein, "
        "band, alert).",
    )
    p.add_argument("--service", "-s", help="read drift from this service's traces (required for Jaeger)")
    p.add_argument("--since", default="1h", help="with --service: time window back from now (default 1h)")
    p.add_argument("--buckets", type=int, default=12, help="with --service: time buckets (default 12)")
    p.add_argument("--by", metavar="ATTRIBUTE", default="ml.model.version",
                   help="with --service: group by this attribute (default ml.model.version)")
    p.add_argument(
        "--scan", type=int, default=10_000,
        help="with --service: analyse at most this many traces (default 10000), a uniform sample across the window",
    )
    p.add_argument("--profile", "-p", metavar="PROFILE", help="a reference profile (mltrace profile build)")
    p.add_argument("--data", "-d", metavar="DATA", help="recent data to compare: .csv, .tsv or .parquet")
    p.add_argument("--window", help="with --data: only the last N rows (default: all); with --source "
                   "prometheus://HOST:PORT: the time window of the fleet's merged drift (default 1h)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, out: Console, err: Console) -> int:
    if is_prometheus(args.source):  # the fleet: replicas' bin counts merged by Prometheus
        return run_fleet(args, out)
    offline = args.profile is not None or args.data is not None
    if offline and args.service:
        err.print("error: give --service (drift from traces) or --profile and --data (a file), not both")
        return 2
    if offline:
        return _offline(args, out)
    data = read_traces(args, err, lambda source, update: drift_history(
        source, service=args.service, since=args.since, buckets=args.buckets, by=args.by, scan=args.scan,
        progress=update,
    ))
    return emit(args, out, data, render_drift_history)


def _offline(args: argparse.Namespace, out: Console) -> int:
    if not args.profile or not args.data:
        raise CommandError("--profile and --data go together: the reference profile and the recent data")
    for path in (args.profile, args.data):
        if not Path(path).is_file():
            raise CommandError(f"no such file: {path}")
    window = int(args.window) if args.window is not None and str(args.window).isdigit() else None
    if args.window is not None and (window is None or window < 1):
        raise CommandError(f"--window must be a number of rows, at least 1; got {args.window}")
    try:
        data = drift_report(args.profile, args.data, window=window)
    except _BAD_INPUT as exc:
        raise CommandError.of(exc) from None
    data["profile"]["path"] = args.profile
    return emit(args, out, data, render_drift_report)
