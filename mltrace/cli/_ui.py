"""``mltrace ui``: serve the local web view (overview, slow, trace, drift, lineage pages and their
JSON under ``/api/``) over a trace source until Ctrl-C."""

from __future__ import annotations

import argparse

from rich.console import Console

from ._common import connect


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
    p.add_argument("--service", "-s", help="the service pages show first (and the API's default service)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace, out: Console, err: Console) -> int:
    from ..ui import serve

    source = connect(args)
    try:
        serve(source, host=args.host, port=args.port, service=args.service)
    finally:
        source.close()
    return 0
