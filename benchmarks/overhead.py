"""Per-request cost of tracing, measured side by side in one run.

    python benchmarks/overhead.py                 # in-process, raw ASGI calls
    python benchmarks/overhead.py --http          # plus uvicorn + a load generator over loopback

Cases (ratios are to (a), measured interleaved in the same process):
  (a) no tracing          FastAPI with its native telemetry off, plain functions
  (b) otel-fastapi        opentelemetry-instrumentation-fastapi alone, plain functions
  (c) mltrace             MLTraceMiddleware + 4 stage spans + input/output summaries
  (d) mltrace sampled out (c) with the sampler deciding DROP
  (n1) fastapi-native     FastAPI's own server span alone, operation spans off (as mltrace sets them)
  (n0) fastapi-native, sampled out
  (c0) mltrace without summaries  (c) with MLTRACE_SUMMARIES=0: spans only
  (f0) floor, sampled out          a minimal pure-ASGI server span (global propagators' extract,
                                   sampler, attach) and nothing else, FastAPI's telemetry off
mltrace's own share is (c) - (n1) and (d) - (n0): FastAPI makes the server span that mltrace
enriches, so its cost is there whether or not mltrace is.
Spans go through a BatchSpanProcessor to an exporter that discards them, so the hot-path cost
(span creation, attributes, queueing) is measured without a backend's network time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes

sys.path.insert(0, str(Path(__file__).parent))
import _app
from _asgi import bodies, call

import mltrace
from mltrace._settings import SETTINGS


class Toggle(Sampler):
    """ALWAYS_ON or ALWAYS_OFF, switched between measurement rounds."""

    def __init__(self) -> None:
        self.on = True

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        s = ALWAYS_ON if self.on else ALWAYS_OFF
        return s.should_sample(parent_context, trace_id, name, kind, attributes, links, trace_state)

    def get_description(self) -> str:
        return "Toggle"


class Discard(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS




BODIES = bodies()


async def time_case(app: Any, n: int) -> float:
    """Mean µs per request over ``n`` sequential requests, each with a different body."""
    todo = [BODIES[i % len(BODIES)] for i in range(n)]
    t0 = time.perf_counter()
    for body in todo:
        await call(app, body)
    return (time.perf_counter() - t0) / n * 1e6


async def in_process(rounds: int, n: int) -> dict[str, list[float]]:
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    sampler = Toggle()
    handle = mltrace.configure(service_name="bench", exporter="none", sampler=sampler)
    handle.provider.add_span_processor(BatchSpanProcessor(Discard()))
    apps = {
        "a_none": _app.build(False, fastapi_telemetry=False),
        "b_otel_fastapi": _app.build(False, fastapi_telemetry=True),
        "c_mltrace": _app.build(True, fastapi_telemetry=True),
        "d_mltrace_sampled_out": _app.build(True, fastapi_telemetry=True),
        "n1_fastapi_native": _app.build(False, fastapi_telemetry=True, operation_spans=False),
        "n0_fastapi_native_sampled_out": _app.build(False, fastapi_telemetry=True, operation_spans=False),
        "c0_mltrace_no_summaries": _app.build(True, fastapi_telemetry=True),
        "f0_floor_sampled_out": _app.build_floor(),
    }
    FastAPIInstrumentor.instrument_app(apps["b_otel_fastapi"], tracer_provider=handle.provider)
    for app in apps.values():  # warm up (route compilation, first-call imports)
        for _ in range(200):
            assert await call(app) == 200
    results: dict[str, list[float]] = {k: [] for k in apps}
    order = list(apps.items())
    shuffle = random.Random(11).shuffle
    for _ in range(rounds):
        shuffle(order)  # no case always runs right after the same neighbour
        for name, app in order:
            sampler.on = "sampled_out" not in name
            SETTINGS.summaries = name != "c0_mltrace_no_summaries"
            results[name].append(await time_case(app, n))
    SETTINGS.summaries = True
    handle.shutdown()
    return results


def summarize_cost() -> dict[str, float]:
    import timeit

    import numpy as np

    from mltrace.summaries import _memo

    def once(a: np.ndarray) -> None:
        _memo.clear()  # the same array again would be a memo hit: time the statistics, not the memo
        mltrace.summarize(a)

    small = np.random.default_rng(1).normal(size=1000)
    big = np.random.default_rng(2).normal(size=1_000_000)
    out = {}
    for label, arr in (("summarize_1k_floats_us", small), ("summarize_1M_floats_us", big)):
        reps = 2000 if arr.size < 10_000 else 50
        t = timeit.repeat(lambda a=arr: once(a), number=reps, repeat=5)
        out[label] = min(t) / reps * 1e6
    return out


def report(results: dict[str, list[float]]) -> None:
    """Median and fastest round per case. This VM's neighbours add noise that only ever slows a
    round, so the fastest of many short rounds is the steadier estimate; both are printed."""
    med = {name: statistics.median(values) for name, values in results.items()}
    low = {name: min(values) for name, values in results.items()}
    print(f"{'case':<32}{'median µs/req':>14}{'added':>8}{'ratio':>7}{'fastest':>10}{'added':>8}{'ratio':>7}")
    for name in results:
        m, f = med[name], low[name]
        print(f"{name:<32}{m:>14.1f}{m - med['a_none']:>8.1f}{m / med['a_none']:>7.2f}"
              f"{f:>10.1f}{f - low['a_none']:>8.1f}{f / low['a_none']:>7.2f}")
    for label, v in (("median", med), ("fastest", low)):
        line = f"{label}: (c)/(b) {v['c_mltrace'] / v['b_otel_fastapi']:.2f}"
        if "n1_fastapi_native" in v:
            line += (f"; mltrace's own share: sampled {v['c_mltrace'] - v['n1_fastapi_native']:.1f} µs, "
                     f"sampled out {v['d_mltrace_sampled_out'] - v['n0_fastapi_native_sampled_out']:.1f} µs")
        if "c0_mltrace_no_summaries" in v:
            line += f"; summaries (8 per request) {v['c_mltrace'] - v['c0_mltrace_no_summaries']:.1f} µs"
        print(line)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--http", action="store_true", help="also measure over HTTP with uvicorn")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = asyncio.run(in_process(args.rounds, args.requests))
    print(f"in-process raw ASGI, {args.rounds} interleaved rounds x {args.requests} requests")
    report(results)
    costs = summarize_cost()
    for k, v in costs.items():
        print(f"{k}: {v:.1f}")
    if args.http:
        from _http import http_cases

        http = http_cases()
        print("\nover HTTP (uvicorn, loopback, load generator in a separate process)")
        report(http)
    if args.json:
        print(json.dumps({"in_process": results, **costs}))


if __name__ == "__main__":
    main()
