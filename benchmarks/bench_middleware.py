"""The middleware's own cost on each of its paths, against another checkout's middleware, side by side.

    python benchmarks/bench_middleware.py                       # this checkout only
    python benchmarks/bench_middleware.py --before /tmp/old     # plus /tmp/old/mltrace/spans/_middleware.py

The endpoint of benchmarks/overhead.py (4 stages, summaries) served three ways, in-process over
raw ASGI calls, cases shuffled within each round:
  none      FastAPI with its telemetry off, no middleware
  own       FastAPI with its telemetry off + MLTraceMiddleware: mltrace makes the server span
  own-out   (own) with the sampler deciding DROP
  enrich    FastAPI's native server span (operation spans off) enriched by MLTraceMiddleware
With ``--before``, (own), (own-out) and (enrich) are also built with the other checkout's
``MLTraceMiddleware`` (loaded under this package, so both share everything else): the difference
is the middleware's alone.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
import _app
from _asgi import bodies, call
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from overhead import Discard, Toggle

import mltrace

BODIES = bodies()


def _other_middleware(checkout: Path) -> type:
    path = checkout / "mltrace" / "spans" / "_middleware.py"
    spec = importlib.util.spec_from_file_location("mltrace.spans._middleware_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.MLTraceMiddleware  # type: ignore[no-any-return]


def _with(middleware: type, *, fastapi_telemetry: bool) -> Any:
    app = _app.build(False, fastapi_telemetry=fastapi_telemetry, operation_spans=False)
    app.add_middleware(middleware)
    return app


async def _time(app: Any, n: int) -> float:
    t0 = time.perf_counter()
    for i in range(n):
        await call(app, BODIES[i % len(BODIES)])
    return (time.perf_counter() - t0) / n * 1e6


async def main(rounds: int, n: int, before: Path | None) -> None:
    sampler = Toggle()
    handle = mltrace.configure(service_name="bench", exporter="none", sampler=sampler)
    handle.provider.add_span_processor(BatchSpanProcessor(Discard()))
    ours = mltrace.MLTraceMiddleware
    apps = {
        "none": _app.build(False, fastapi_telemetry=False),
        "own": _with(ours, fastapi_telemetry=False),
        "own-out": _with(ours, fastapi_telemetry=False),
        "enrich": _with(ours, fastapi_telemetry=True),
    }
    if before is not None:
        other = _other_middleware(before)
        apps |= {
            "own (before)": _with(other, fastapi_telemetry=False),
            "own-out (before)": _with(other, fastapi_telemetry=False),
            "enrich (before)": _with(other, fastapi_telemetry=True),
        }
    for app in apps.values():
        for _ in range(200):
            assert await call(app) == 200
    results: dict[str, list[float]] = {k: [] for k in apps}
    order = list(apps.items())
    for _ in range(rounds):
        random.Random(len(results["none"])).shuffle(order)
        for name, app in order:
            sampler.on = "-out" not in name
            results[name].append(await _time(app, n))
    handle.shutdown()
    base_med = statistics.median(results["none"])
    base_min = min(results["none"])
    print(f"in-process raw ASGI, {rounds} interleaved rounds x {n} requests")
    print(f"{'case':24} {'median µs':>10} {'added':>8} {'fastest µs':>11} {'added':>8}")
    for name, times in results.items():
        med, low = statistics.median(times), min(times)
        print(f"{name:24} {med:10.1f} {med - base_med:8.1f} {low:11.1f} {low - base_min:8.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--before", type=Path, help="another checkout whose middleware to compare")
    args = parser.parse_args()
    asyncio.run(main(args.rounds, args.requests, args.before))
