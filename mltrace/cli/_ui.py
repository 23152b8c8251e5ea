"""``mltrace ui``: serve the local web view (overview, slow, trace, drift, lineage pages and their
JSON under ``/api/``) over a trace source until Ctrl-C."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console

from ._common import CommandError, connect


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "ui",
        parents=[parent],
        help="a local web view of slow requests, drift and lineage (read-only)",
        description="Serve a read-only web view of a trace source on 127.0.0.1: an overview per service "
        "(request rate, stage latency, errors, drift alerts over time), the causes of slow requests as "
        "charts, trace waterfalls with the critical path, drift over time and a prediction's lineage. "
        "/api/slow, /api/stats, /api/traces/ID, /api/lineage/ID and /api/drift return what the matching "
        "--json command prints, with its options as query parameters. Serves until Ctrl-C.",
    )
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; anything else exposes your traces)")
    p.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    p.add_argument("--service", "-s",
                   help="the service pages show when the address names none (the API takes only its query)")
    p.add_argument("--profile", "-p", metavar="PROFILE",
                   help="a reference profile (mltrace profile build): /drift compares a feature's distribution with it")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, out: Console, err: Console) -> int:
    from ..ui import serve

    profile = None
    if args.profile:
        from ..drift import ReferenceProfile

        if not Path(args.profile).is_file():
            raise CommandError(f"no such file: {args.profile}")
        try:
            profile = ReferenceProfile.load(args.profile)
        except (OSError, ValueError) as exc:
            raise CommandError.of(exc, f"{args.profile}: ") from None
    source = connect(args)

    def announce(url: str) -> None:
        if args.json:  # one line a script can read the address from
            print(json.dumps({"url": url, "source": source.url, "service": args.service}), flush=True)
        else:
            print(f"mltrace ui: {source.url} at {url} (Ctrl-C to stop)", flush=True)

    try:
        serve(source, host=args.host, port=args.port, service=args.service, profile=profile, announce=announce)
    finally:
        source.close()
    return 0


def add_demo_flags(p: argparse.ArgumentParser) -> None:
    """``mltrace demo --ui [--ui-port N]``."""
    p.add_argument("--ui", action="store_true",
                   help="then serve the findings in the web view (mltrace ui) until Ctrl-C")
    p.add_argument("--ui-port", type=int, default=8765, help="with --ui: port (default 8765; 0 picks a free one)")


def serve_demo(args: argparse.Namespace, data: dict[str, object], out: Console) -> int:
    """After ``mltrace demo``: the web view over the demo's traces, with links to its findings."""
    from ..query import open_source
    from ..ui import serve

    show, lineage = data.get("show"), data.get("lineage")

    def announce(url: str) -> None:
        lines = [f"mltrace ui: the demo's findings at {url} (Ctrl-C to stop)", f"  overview  {url}",
                 f"  slow      {url}slow"]
        if isinstance(show, dict):
            lines.append(f"  slowest   {url}traces/{show['trace_id']}")
        if isinstance(lineage, dict):
            lines.append(f"  lineage   {url}lineage/{lineage['trace_id']}")
        lines.append(f"  drift     {url}drift")
        # stderr with --json, so stdout stays one JSON document
        print("\n".join(lines), file=sys.stderr if args.json else sys.stdout, flush=True)

    profile = None
    if data.get("drift_monitor"):
        from ..demo._model import load_model
        from ..drift import ReferenceProfile

        model = load_model()  # the demo's monitor scored against this profile (demo/_model.py: drift_monitor)
        profile = ReferenceProfile.from_data(model.training, feature_names=model.feature_names)
    source = open_source(str(data["source"]))
    try:
        serve(source, port=args.ui_port, service=str(data["service"]), profile=profile, announce=announce)
    finally:
        source.close()
    return 0
