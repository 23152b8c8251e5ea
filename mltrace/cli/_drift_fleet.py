"""``mltrace drift --source prometheus://HOST:PORT --profile P [--service S] --window 1h``: the fleet's
drift, from every replica's bin counts summed by Prometheus (:mod:`mltrace.query.prometheus`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.console import Console

from .._errors import MLTraceError
from ..query.prometheus import fleet_drift
from ._common import CommandError, emit
from ._format import esc
from ._render_drift import _feature_table, _verdict


def is_prometheus(source: str | None) -> bool:
    return bool(source) and str(source).startswith(("prometheus://", "prometheus+https://"))


def run_fleet(args: argparse.Namespace, out: Console) -> int:
    if not args.profile:
        raise CommandError("--source prometheus://... needs --profile: the reference the replicas' monitors use")
    if args.data:
        raise CommandError("--data reads a file; with --source prometheus:// the data are the replicas' bin counts")
    if not Path(args.profile).is_file():
        raise CommandError(f"no such file: {args.profile}")
    source = str(args.source).replace("prometheus+https://", "https://")
    try:
        data = fleet_drift(source, args.profile, service=args.service, window=args.window or "1h")
    except (OSError, ValueError) as exc:
        raise CommandError.of(exc) from None
    except MLTraceError:
        raise
    data["profile"]["path"] = args.profile
    return emit(args, out, data, render_fleet_drift)


def render_fleet_drift(out: Console, data: dict[str, Any]) -> None:
    who = f"service {esc(data['service'])}" if data["service"] else "all services"
    out.print(
        f"[bold]Fleet drift of {who}[/] over the last {esc(str(data['window']))}: {data['n']:,} rows from "
        f"{data['replicas']} replica(s), against reference {data['reference']}: {_verdict(data)}"
    )
    if data["n"] == 0:
        out.print("[yellow]no bin counts in that window: are the replicas exporting metrics "
                  "(configure(metrics=True)) to this Prometheus, with this profile?[/]")
        return
    out.print(_feature_table("features, most drifted first (merged across replicas)", data["features"]))
    if data["unknown_bins"]:
        out.print(f"[bright_black]bins not in this profile (ignored): {esc(', '.join(data['unknown_bins'][:10]))}[/]")
