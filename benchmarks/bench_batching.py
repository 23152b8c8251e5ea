"""Overhead of batching with tracing: ``OPENBLAS_NUM_THREADS=1 python benchmarks/bench_batching.py``.

For each batch function, in one process and one event loop, interleaved repeat by repeat:

- ``direct``: the unwrapped call, ``fn(inputs[i:i+B])`` over all inputs in batches of B;
- ``MicroBatcher, no trace``: N concurrent ``submit`` calls made outside any trace (only the
  batch span is made);
- ``MicroBatcher, traced``: each submit inside its own request span, so each request also gets a
  ``batch_wait`` and an ``inference`` span and the batch span links to it (the request span's
  own cost is left out: ``direct`` gets the same request spans);
- ``traced_batch``: the user's-own-batcher helper, ``traced_batch(fn)(members)``.

Spans go through a real BatchSpanProcessor to an exporter that drops them (no I/O). Prints the
median over repeats of µs per request and the ratio to ``direct`` in the same run. One BLAS
thread (``OPENBLAS_NUM_THREADS=1``) keeps the numpy model's time from swinging with the load.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

import mltrace
from mltrace.batching import MicroBatcher, batch_member, traced_batch


class _Drop(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def _provider() -> None:
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(_Drop(), max_queue_size=1 << 16))
    trace.set_tracer_provider(provider)


def _functions() -> dict[str, Callable[[list[Any]], list[Any]]]:
    rng = np.random.default_rng(0)
    small = rng.standard_normal((64, 256)), rng.standard_normal((256, 4))
    large = rng.standard_normal((64, 4096)), rng.standard_normal((4096, 16))

    def identity(xs: list[Any]) -> list[Any]:
        return list(xs)

    def mlp(weights: tuple[np.ndarray, np.ndarray]) -> Callable[[list[Any]], list[Any]]:
        w1, w2 = weights

        def forward(xs: list[Any]) -> list[Any]:
            return list(np.maximum(np.stack(xs) @ w1, 0.0) @ w2)

        return forward

    return {"identity": identity, "mlp 64-256-4": mlp(small), "mlp 64-4096-16": mlp(large)}


async def _direct(fn: Callable[[list[Any]], list[Any]], xs: list[Any], b: int, traced: bool) -> float:
    tracer = trace.get_tracer("bench")
    t0 = time.perf_counter()
    if traced:  # the same request spans as the traced batcher, so only the batching cost differs
        for _ in xs:
            with tracer.start_as_current_span("request"):
                pass
    for i in range(0, len(xs), b):
        fn(xs[i : i + b])
    return time.perf_counter() - t0


async def _batched(batcher: MicroBatcher[Any, Any], xs: list[Any], traced: bool) -> float:
    tracer = trace.get_tracer("bench")

    async def request(x: Any) -> Any:
        if not traced:
            return await batcher.submit(x)
        with tracer.start_as_current_span("request"):
            return await batcher.submit(x)

    t0 = time.perf_counter()
    await asyncio.gather(*(request(x) for x in xs))
    return time.perf_counter() - t0


def _traced_batch(fn: Callable[[list[Any]], list[Any]], xs: list[Any], b: int) -> float:
    tracer = trace.get_tracer("bench")
    wrapped = traced_batch(record_input=False, record_output=False)(fn)
    t0 = time.perf_counter()
    members = []
    for x in xs:
        with tracer.start_as_current_span("request"):
            members.append(batch_member(x))
    for i in range(0, len(members), b):
        wrapped(members[i : i + b])
    return time.perf_counter() - t0


async def _run(n: int, b: int, repeats: int) -> None:
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal(64) for _ in range(n)]
    print(f"Python {sys.version.split()[0]}, numpy {np.__version__}; {n} requests, batches of {b}, "
          f"median of {repeats} repeats; µs per request, µs added and ratio to the unwrapped call "
          "(traced rows: to direct + request spans) in the same run")
    print(f"{'batch function':<15} {'variant':<36} {'µs/req':>8} {'added':>7} {'ratio':>7}")
    for name, fn in _functions().items():
        # max_wait_ms high enough that every batch is full, so the batch sizes match `direct`.
        quiet = {"max_batch_size": b, "max_wait_ms": 50, "record_input": False, "record_output": False}
        untraced = MicroBatcher(fn, threaded=False, **quiet)  # type: ignore[arg-type]
        plain = MicroBatcher(fn, threaded=False, **quiet)  # type: ignore[arg-type]
        summaries = MicroBatcher(fn, max_batch_size=b, max_wait_ms=50, threaded=False)
        threaded = MicroBatcher(fn, **quiet)  # type: ignore[arg-type]
        variants: dict[str, Callable[[], Any]] = {
            "direct": lambda fn=fn: _direct(fn, xs, b, traced=False),
            "direct + request spans": lambda fn=fn: _direct(fn, xs, b, traced=True),
            "MicroBatcher, no trace": lambda m=untraced: _batched(m, xs, traced=False),
            "MicroBatcher, traced": lambda m=plain: _batched(m, xs, traced=True),
            "MicroBatcher, traced + summaries": lambda m=summaries: _batched(m, xs, traced=True),
            "MicroBatcher, traced, fn in thread": lambda m=threaded: _batched(m, xs, traced=True),
            "traced_batch (own batcher)": lambda fn=fn: _async(_traced_batch(fn, xs, b)),
        }
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(repeats):
            for key, make in variants.items():
                times[key].append(await make())
        base = {False: statistics.median(times["direct"]), True: statistics.median(times["direct + request spans"])}
        for key, runs in times.items():
            med = statistics.median(runs)
            ref = base[key != "direct" and "no trace" not in key]
            print(f"{name:<15} {key:<36} {med / n * 1e6:>8.1f} {(med - ref) / n * 1e6:>7.1f} {med / ref:>7.2f}")
        for batcher in (untraced, plain, summaries, threaded):
            await batcher.aclose()


async def _async(value: float) -> float:
    return value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=512)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()
    _provider()
    mltrace.configure(exporter="none")  # keeps our provider; sets settings and propagators
    asyncio.run(_run(args.requests, args.batch, args.repeats))


if __name__ == "__main__":
    main()
