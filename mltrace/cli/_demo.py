"""``mltrace demo``: serve a model in-process, send traffic with planted slowness and drift, then run
``slow``, ``show`` and ``lineage`` on what was recorded and say what they found."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.rule import Rule

from ._common import print_json
from ._format import esc, ms, value
from ._render import bullets, render_fingerprint, render_lineage, render_show, render_slow
from ._ui import add_demo_flags as add_ui_flags
from ._ui import serve_demo


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser], parent: argparse.ArgumentParser) -> None:
    p = sub.add_parser(
        "demo",
        parents=[parent],
        help="serve a model in-process, send traffic, and investigate it (start here)",
        description="Start the demo model server in-process (no server to run), send a realistic mix of "
        "traffic with slow requests and drifted inputs, then run slow, show and lineage on the recorded traces. "
        "Traces go to --source (default local://mltrace-demo.db; jaeger://localhost:16686 or "
        "zipkin://localhost:9411 use those backends).",
    )
    p.add_argument("--requests", "-n", type=int, default=300, help="how many requests to send (default 300)")
    p.add_argument("--seed", type=int, default=0, help="random seed of the traffic mix (default 0)")
    p.add_argument("--endpoint", help="where to send spans when not the source's host on the default port "
                   "(Jaeger: OTLP gRPC, e.g. http://collector:4317; Zipkin: http://host:9411/api/v2/spans)")
    p.add_argument("--wait", type=float, default=60.0, help="seconds to wait for a backend to show the traces")
    add_ui_flags(p)
    p.set_defaults(run=run)


def _findings(out: Console, data: dict[str, Any]) -> None:
    r = data["requests"]
    out.print(
        f"[bold]mltrace demo[/]: served {esc(data['model']['name'])} ({esc(data['model']['framework'])}) "
        f"in-process as service {esc(data['service'])}, traced to {esc(data['source'])}"
    )
    out.print(
        f"Sent {r['sent']} requests in {data['elapsed_s']:.1f} s: {r['large']} large batches, {r['cold']} from "
        f"customers whose features miss the cache, {r['drifted']} with drifted inputs, "
        f"one input sent {r['repeated']} times."
    )
    out.print("\n[bold]What mltrace found[/]")
    rows: list[str] = []
    slow = data["slow"]
    if slow["traces"]:
        top = slow["traces"][0]
        rows.append(
            f"The slowest request took {ms(top['duration_ms'])}; {esc(top['dominant_stage'])} took "
            f"{ms(top['stages'][top['dominant_stage']])} of it."
        )
    rows.extend(esc(cause["reason"]) for cause in slow["causes"][:3])
    for p in data["planted"]:
        mark = f"[green]found[/] (cause #{p['rank']})" if p["found"] else "[red]not found[/]"
        rows.append(f"Planted: {esc(p['what'])} → {mark}")
    lin = data["lineage"]
    if lin and lin["drift"]:
        rows.append(
            f"Most unusual input: drift score {esc(value(lin['drift'].get('score')))} in trace {lin['trace_id']} "
            f"(top features {esc(value(lin['drift'].get('top_features'), 60))}). The score rates one request "
            f"against the training data; the alert (now {esc(value(lin['drift'].get('alert')))}) judges the recent "
            "window of requests, so one odd request does not raise it."
        )
    elif not data["drift_monitor"]:
        rows.append("Drift: mltrace.drift is not available here, so requests carry no drift scores.")
    same = data["same_input"]
    if same and same["count"] > 1:
        earlier = same.get("earlier") or 0
        also = f" ({earlier} more in the store from earlier runs, not counted)" if earlier else ""
        fingerprint = esc(same["fingerprint"])
        rows.append(f"The same input ({fingerprint}) was predicted {same['count']} times in this run{also}.")
    bullets(out, [("•", row) for row in rows])


def _sections(out: Console, data: dict[str, Any], where: str) -> None:
    out.print(Rule(esc(f"mltrace slow --service {data['service']}{where}"), align="left"))
    render_slow(out, data["slow"])
    if data["show"]:
        out.print(Rule(f"mltrace show {data['show']['trace_id']}{where}", align="left"))
        render_show(out, data["show"])
    if data["lineage"]:
        out.print(Rule(f"mltrace lineage {data['lineage']['trace_id']}{where}", align="left"))
        render_lineage(out, data["lineage"])
    if data["same_input"]:
        out.print(Rule(f"mltrace lineage --fingerprint {data['same_input']['fingerprint']}{where}", align="left"))
        render_fingerprint(out, data["same_input"])


def run(args: argparse.Namespace, out: Console, err: Console) -> int:
    from ..demo._run import run_demo

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=err, transient=True, disable=args.json or not err.is_terminal) as bar:
        task = bar.add_task("starting", total=None)

        def update(phase: str, done: int, total: int) -> None:
            bar.update(task, description=phase, completed=done, total=total)

        data = run_demo(args.source, requests=args.requests, seed=args.seed, progress=update,
                        endpoint=args.endpoint, wait_s=args.wait)
    if args.json:
        print_json(data)
        return serve_demo(args, data, out) if args.ui else 0
    where = f" --source {data['source']}"
    _findings(out, data)
    out.print()
    _sections(out, data, where)
    out.print(Rule("try it yourself", align="left"))
    service = esc(data["service"])
    where = esc(where)
    out.print(f"  mltrace slow --service {service}{where} --since 1h")
    out.print(f"  mltrace stats --service {service}{where} --since 1h --by ml.model.version")
    out.print(f"  mltrace slow --service {service}{where} --since 1h --stage feature_lookup --json")
    return serve_demo(args, data, out) if args.ui else 0
