"""Request latency while the tracing backend misbehaves, against the same app untraced.

    python benchmarks/bench_faults.py                       # OTLP/HTTP, 3 rounds x 3,000 requests
    python benchmarks/bench_faults.py --exporter all        # OTLP/HTTP, OTLP/gRPC and Zipkin

Each scenario runs in its own interpreter (one global TracerProvider each), scenarios interleaved
round by round; the backends are real sockets served from this (otherwise idle) parent process
(tests/_loopback.py). Requests are raw ASGI calls to a FastAPI app with MLTraceMiddleware and four
stage spans; exporters keep their default settings (10 s timeout, queue 2,048, batch 512).
Scenarios: ``untraced`` (no mltrace, no provider), ``healthy`` (a backend answering 200 at once),
``refused`` (closed port), ``hang`` (accepts, never answers), ``slow`` (answers after 1 s),
``errors`` (503 / gRPC UNAVAILABLE). Prints a markdown table: median over rounds of each round's
p50 / p99 / mean latency in µs, spans dropped, and how long ``shutdown(timeout_s=2)`` took.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _asgi import call  # the raw ASGI request overhead.py uses too (this folder is on sys.path)
from pydantic import BaseModel

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

SCENARIOS = ("untraced", "healthy", "refused", "hang", "slow", "errors")
EXPORTERS = ("otlp-http", "otlp-grpc", "zipkin")


# -- worker: one scenario in a fresh interpreter ---------------------------------------------------
class Body(BaseModel):
    x: list[float]


def build_app(traced: bool) -> Any:
    import numpy as np
    from fastapi import FastAPI

    import mltrace

    weights = np.random.default_rng(0).normal(size=32)

    def prepare(x: list[float]) -> Any:
        return np.asarray(x, dtype=np.float64)

    def lookup(x: Any) -> Any:
        return x

    def predict(x: Any) -> float:
        return float(1.0 / (1.0 + np.exp(-x @ weights)))

    def post(p: float) -> dict[str, Any]:
        return {"score": p}

    if traced:
        prepare, lookup = mltrace.preprocess(prepare), mltrace.feature_lookup(store="memory")(lookup)
        predict, post = mltrace.inference(model="m", version="1")(predict), mltrace.postprocess(post)
    app = FastAPI()  # untraced: no provider is set, so FastAPI's own telemetry stays off too
    if traced:
        app.add_middleware(mltrace.MLTraceMiddleware)

    @app.post("/predict")
    async def route(body: Body) -> dict[str, Any]:
        return post(predict(lookup(prepare(body.x))))

    return app


def worker(scenario: str, exporter: str, url: str, requests: int) -> dict[str, Any]:
    import mltrace

    handle = None
    if scenario != "untraced":
        name, protocol = {"otlp-http": ("otlp", "http"), "otlp-grpc": ("otlp", "grpc"), "zipkin": ("zipkin", None)}[
            exporter
        ]
        handle = mltrace.configure(service_name="bench-faults", exporter=name, protocol=protocol, endpoint=url)
    app = build_app(scenario != "untraced")

    async def run() -> list[float]:
        for _ in range(300):  # warm-up
            await call(app)
        lat = []
        for _ in range(requests):
            t0 = time.perf_counter_ns()
            status = await call(app)
            lat.append((time.perf_counter_ns() - t0) / 1000)
            assert status == 200, status
        return lat

    lat = sorted(asyncio.run(run()))
    t0 = time.monotonic()
    finished = handle.shutdown(timeout_s=2.0) if handle else True
    shutdown_s = time.monotonic() - t0
    stats = mltrace.export_stats()
    return {
        "p50": lat[len(lat) // 2],
        "p99": lat[int(len(lat) * 0.99)],
        "mean": statistics.fmean(lat),
        "spans": stats["spans_queued"] + stats["spans_dropped_queue_full"],
        "dropped": stats["spans_dropped_total"],
        "exported": stats["spans_exported"],
        "shutdown_s": shutdown_s,
        "shutdown_finished": finished,
    }


# -- parent: backends and rounds -------------------------------------------------------------------
@contextlib.contextmanager
def backend(exporter: str, scenario: str) -> Iterator[str]:
    from _loopback import GrpcBackend, HangServer, HttpBackend, closed_port

    if scenario in ("untraced", "refused"):
        yield f"http://127.0.0.1:{closed_port()}"
    elif scenario == "hang":
        with HangServer() as s:
            yield s.url
    elif exporter == "otlp-grpc":
        code = "UNAVAILABLE" if scenario == "errors" else None
        with GrpcBackend(code=code, delay=1.0 if scenario == "slow" else 0.0) as g:
            yield g.url
    else:
        status = 503 if scenario == "errors" else 200
        with HttpBackend(status=status, delay=1.0 if scenario == "slow" else 0.0) as h:
            yield h.url


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--exporter", default="otlp-http", choices=(*EXPORTERS, "all"))
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--worker", nargs=3, metavar=("SCENARIO", "EXPORTER", "URL"))
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1], args.worker[2], args.requests)))
        return
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MLTRACE_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), env.get("PYTHONPATH", "")]))
    exporters = EXPORTERS if args.exporter == "all" else (args.exporter,)
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for _ in range(args.rounds):
        for exporter in exporters:
            for scenario in SCENARIOS:
                if scenario == "untraced" and exporter != exporters[0]:
                    continue
                with backend(exporter, scenario) as url:
                    cmd = [sys.executable, __file__, "--requests", str(args.requests)]
                    cmd += ["--worker", scenario, exporter, url]
                    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, check=False)
                if proc.returncode != 0:
                    raise SystemExit(proc.stderr[-2000:])
                results.setdefault((exporter, scenario), []).append(json.loads(proc.stdout.strip().splitlines()[-1]))
    print(f"{args.rounds} rounds x {args.requests} requests, python {sys.version.split()[0]}, {os.cpu_count()} CPUs\n")
    print("| exporter | backend | p50 µs | p99 µs | mean µs | spans made | dropped | shutdown(2 s) took |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for (exporter, scenario), runs in results.items():
        keys = ("p50", "p99", "mean", "spans", "dropped", "shutdown_s")
        med = {k: statistics.median(r[k] for r in runs) for k in keys}
        print(
            f"| {exporter if scenario != 'untraced' else '—'} | {scenario} | {med['p50']:.0f} | {med['p99']:.0f} | "
            f"{med['mean']:.0f} | {med['spans']:.0f} | {med['dropped']:.0f} | {med['shutdown_s']:.2f} s |"
        )


if __name__ == "__main__":
    main()
