"""Per-request cost of tracing, measured side by side in one run.

    python benchmarks/overhead.py                 # in-process, raw ASGI calls
    python benchmarks/overhead.py --http          # plus uvicorn + a load generator over loopback
    python benchmarks/overhead.py --http --pin    # servers and load generators on separate CPUs
    python benchmarks/overhead.py --pause-ms 2    # in-process, idle 2 ms before each request

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
  (e) mltrace deferred             (c) with deferred spans (MLTRACE_DEFERRED_SPANS=1) and FastAPI's
                                   tracing off: mltrace makes the one server span (docs/performance.md)
  (e0) mltrace deferred, sampled out
  (g) mltrace deferred under FastAPI's native server span (its telemetry left on: mltrace enriches
      that span and defers the stages)
(a)-(f0) run with deferred spans off (MLTRACE_DEFERRED_SPANS=0): (c) is mltrace before.
Per case: mean µs per request (everything, the spans handed to the processors included), the
latency to the response's last body message (p50, p99 over every request of every round), and
CPU per request (``time.process_time``, all threads: the export thread too).
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
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes

sys.path.insert(0, str(Path(__file__).parent))
import _app
from _asgi import bodies, call

import mltrace
from mltrace._settings import SETTINGS
from mltrace.spans._deferred import set_deferred


class Toggle(Sampler):
    """ALWAYS_ON or ALWAYS_OFF, switched between measurement rounds: a custom sampler, asked for
    every span (``--custom-sampler``; the runs before 2026-12-05 04:45 UTC used it)."""

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


LATENCY: dict[str, list[float]] = {}  # per request: µs to the last body message
CPU: dict[str, list[float]] = {}  # per round: CPU µs per request (process_time, all threads)
PAUSE = 0.0  # seconds the event loop idles before each request (--pause-ms): caches go cold as
# they do between a server's requests at moderate load; 0 = back to back (caches warm)


async def time_case(app: Any, n: int, name: str = "") -> float:
    """Mean µs per request over ``n`` sequential requests, each with a different body."""
    todo = [BODIES[i % len(BODIES)] for i in range(n)]
    latencies = LATENCY.setdefault(name, [])
    c0 = time.process_time()
    t0 = time.perf_counter()
    for body in todo:
        if PAUSE:
            await asyncio.sleep(PAUSE)
        start = time.perf_counter()
        done = await call_timed(app, body)
        latencies.append((done - start) * 1e6)
    wall = (time.perf_counter() - t0) / n * 1e6
    CPU.setdefault(name, []).append((time.process_time() - c0) / n * 1e6)
    return wall


async def call_timed(app: Any, body: bytes) -> float:
    """One request; returns ``perf_counter()`` at the response's last body message."""
    last = 0.0

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal last
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            last = time.perf_counter()

    await app(_scope(len(body)), receive, send)
    return last


def _scope(size: int) -> dict[str, Any]:
    return {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/predict", "raw_path": b"/predict", "query_string": b"",
        "root_path": "", "headers": [(b"host", b"bench"), (b"content-type", b"application/json"),
                                     (b"content-length", str(size).encode())],
        "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000),
    }


class Standard:
    """The samplers users run, switched between rounds: the SDK's default ``ParentBased(ALWAYS_ON)``
    for sampled cases, ``configure(sample_ratio=0.0)``'s consistent sampler for sampled-out ones
    (swapped inside configure()'s head sampler, as a later ``configure(sample_ratio=...)`` does)."""

    def __init__(self, head: Any) -> None:
        from mltrace.sampling import ConsistentProbabilitySampler

        self.head = head
        self.samplers = {True: ParentBased(ALWAYS_ON), False: ConsistentProbabilitySampler(0.0)}

    @property
    def on(self) -> bool:
        return self.head.delegate is self.samplers[True]

    @on.setter
    def on(self, value: bool) -> None:
        self.head.update(self.samplers[value], False)


async def in_process(rounds: int, n: int, custom_sampler: bool = False) -> dict[str, list[float]]:
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    sampler: Any
    if custom_sampler:
        sampler = Toggle()
        handle = mltrace.configure(service_name="bench", exporter="none", sampler=sampler)
    else:
        handle = mltrace.configure(service_name="bench", exporter="none", sampler=ParentBased(ALWAYS_ON))
        sampler = Standard(handle.provider.sampler)
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
        "e_mltrace_deferred": _app.build(True, fastapi_telemetry=False),
        "e0_mltrace_deferred_sampled_out": _app.build(True, fastapi_telemetry=False),
        "g_mltrace_deferred_native": _app.build(True, fastapi_telemetry=True),
    }
    FastAPIInstrumentor.instrument_app(apps["b_otel_fastapi"], tracer_provider=handle.provider)
    for name, app in apps.items():  # warm up (route compilation, first-call imports)
        set_deferred(name[0] in "eg")
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
            set_deferred(name[0] in "eg")
            results[name].append(await time_case(app, n, name))
    SETTINGS.summaries = True
    set_deferred(None)
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


def report_latency() -> None:
    """Latency to the last body message (what a client waits for) and CPU per request, with
    what each adds to (a) and the ratio of that to what (b) adds."""
    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    p50 = {k: pct(v, 0.5) for k, v in LATENCY.items()}
    p99 = {k: pct(v, 0.99) for k, v in LATENCY.items()}
    cpu = {k: statistics.median(v) for k, v in CPU.items()}
    low = {k: min(v) for k, v in CPU.items()}
    base, contrib = "a_none", "b_otel_fastapi"
    print(f"\n{'case':<32}{'p50 µs':>8}{'added':>8}{'/(b)':>6}{'p99 µs':>9}{'CPU µs':>8}{'added':>8}{'/(b)':>6}"
          f"{'CPU min':>9}{'added':>8}{'/(b)':>6}")
    for k in LATENCY:
        la, lb = p50[k] - p50[base], p50[contrib] - p50[base]
        ca, cb = cpu[k] - cpu[base], cpu[contrib] - cpu[base]
        fa, fb = low[k] - low[base], low[contrib] - low[base]
        print(f"{k:<32}{p50[k]:>8.1f}{la:>8.1f}{la / lb:>6.2f}{p99[k]:>9.1f}{cpu[k]:>8.1f}{ca:>8.1f}{ca / cb:>6.2f}"
              f"{low[k]:>9.1f}{fa:>8.1f}{fa / fb:>6.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=40)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--http", action="store_true", help="also measure over HTTP with uvicorn")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--pause-ms", type=float, default=0.0,
                        help="in-process: idle this long before each request (latency with cold caches, as "
                             "at moderate load over HTTP); the mean and CPU columns then include the idle time")
    parser.add_argument("--pin", action="store_true",
                        help="with --http: servers on CPU 0, load generators on CPU 1 (taskset), as when the "
                             "client is another machine")
    parser.add_argument("--custom-sampler", action="store_true",
                        help="a custom sampler asked for every span (ALWAYS_ON/ALWAYS_OFF behind a wrapper), "
                             "instead of ParentBased(ALWAYS_ON) / configure(sample_ratio=0.0)")
    args = parser.parse_args()
    global PAUSE
    PAUSE = args.pause_ms / 1000
    results = asyncio.run(in_process(args.rounds, args.requests, args.custom_sampler))
    print(f"in-process raw ASGI, {args.rounds} interleaved rounds x {args.requests} requests"
          + (f" ({args.pause_ms:g} ms idle before each)" if PAUSE else "") + ", "
          f"sampler: {'custom (Toggle)' if args.custom_sampler else 'ParentBased(ALWAYS_ON) / sample_ratio=0.0'}")
    print(f"load average at the end: {' '.join(f'{x:.2f}' for x in __import__('os').getloadavg())}")
    report(results)
    report_latency()
    costs = summarize_cost()
    for k, v in costs.items():
        print(f"{k}: {v:.1f}")
    if args.http:
        from _http import CPU as HTTP_CPU
        from _http import PACED, http_cases

        http = http_cases(pin=args.pin)
        print("\nover HTTP (uvicorn, loopback, load generator in a separate process"
              + ("; servers pinned to CPU 0, load generators to CPU 1)" if args.pin else ")"))
        report(http)
        if HTTP_CPU:
            print("server CPU µs per request (median round; added; added / (b)'s added):")
            cpu = {k: statistics.median(v) for k, v in HTTP_CPU.items()}
            for k, v in cpu.items():
                added, contrib = v - cpu["a_none"], cpu["b_otel_fastapi"] - cpu["a_none"]
                print(f"  {k:<32}{v:>8.1f}{added:>8.1f}{added / contrib:>6.2f}")
        if PACED:
            print("latency to the last byte at moderate load (one request / 2 ms): p50, added, / (b), p99")
            p50 = {k: statistics.median(v) for k, v in PACED.items()}
            for k, v in PACED.items():
                added, contrib = p50[k] - p50["a_none"], p50["b_otel_fastapi"] - p50["a_none"]
                p99 = sorted(v)[int(0.99 * (len(v) - 1))]
                print(f"  {k:<32}{p50[k]:>8.1f}{added:>8.1f}{added / contrib:>6.2f}{p99:>9.1f}")
    if args.json:
        print(json.dumps({"in_process": results, **costs}))


if __name__ == "__main__":
    main()
