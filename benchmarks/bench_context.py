"""Overhead of the context and logging wrappers: ``python benchmarks/bench_context.py``.

Each wrapper against the unwrapped call, in the same process and repeat by repeat, inside a
recording span (as in a traced request):

- ``wrap_executor(pool).submit(f).result()`` vs ``pool.submit(f).result()``;
- ``await mltrace.run_in_executor(pool, f)`` vs ``await loop.run_in_executor(pool, f)`` (and
  ``asyncio.to_thread``, which copies the context itself);
- a ``logger.info`` call with :func:`mltrace.instrument_logging` (ids on every record) vs
  without, to a handler that formats the record.

Prints the median over repeats of µs per call and the ratio to the unwrapped call.
"""

from __future__ import annotations

import asyncio
import io
import logging
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from mltrace.export._logs import instrument_logging, uninstrument_logging
from mltrace.spans._concurrency import run_in_executor, wrap_executor

REPEATS = 15
N = 2_000


def _noop() -> int:
    return 1


def _sync(call: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    for _ in range(N):
        call()
    return (time.perf_counter() - t0) / N * 1e6


async def _async(call: Callable[[], Awaitable[object]]) -> float:
    t0 = time.perf_counter()
    for _ in range(N):
        await call()
    return (time.perf_counter() - t0) / N * 1e6


def _report(title: str, rows: dict[str, list[float]], base: str) -> None:
    ref = statistics.median(rows[base])
    print(title)
    for name, runs in rows.items():
        med = statistics.median(runs)
        print(f"  {name:<44} {med:>8.1f} µs {med / ref:>6.2f}x")


def _executors(pool: ThreadPoolExecutor) -> None:
    traced = wrap_executor(pool)
    rows: dict[str, list[float]] = {"pool.submit(f).result()": [], "wrap_executor(pool).submit(f).result()": []}
    for _ in range(REPEATS):
        rows["pool.submit(f).result()"].append(_sync(lambda: pool.submit(_noop).result()))
        rows["wrap_executor(pool).submit(f).result()"].append(_sync(lambda: traced.submit(_noop).result()))
    _report("executor submit, one worker thread", rows, "pool.submit(f).result()")


async def _loop_executors(pool: ThreadPoolExecutor) -> None:
    loop = asyncio.get_running_loop()
    rows: dict[str, list[float]] = {
        "loop.run_in_executor(pool, f)": [],
        "mltrace.run_in_executor(pool, f)": [],
        "asyncio.to_thread(f) (copies by itself)": [],
    }
    for _ in range(REPEATS):
        rows["loop.run_in_executor(pool, f)"].append(await _async(lambda: loop.run_in_executor(pool, _noop)))
        rows["mltrace.run_in_executor(pool, f)"].append(await _async(lambda: run_in_executor(pool, _noop)))
        rows["asyncio.to_thread(f) (copies by itself)"].append(await _async(lambda: asyncio.to_thread(_noop)))
    _report("from the event loop", rows, "loop.run_in_executor(pool, f)")


def _logging() -> None:
    logger = logging.getLogger("bench")
    logger.propagate = False
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    rows: dict[str, list[float]] = {"logger.info, plain": [], "logger.info, instrument_logging()": []}
    for _ in range(REPEATS):
        rows["logger.info, plain"].append(_sync(lambda: logger.info("request %d", 7)))
        instrument_logging()
        rows["logger.info, instrument_logging()"].append(_sync(lambda: logger.info("request %d", 7)))
        uninstrument_logging()
    _report("one log record (formatted to a StringIO)", rows, "logger.info, plain")


def main() -> None:
    trace.set_tracer_provider(TracerProvider())
    tracer = trace.get_tracer("bench")
    print(f"Python {sys.version.split()[0]}; median of {REPEATS} repeats of {N} calls, inside a recording span")
    with ThreadPoolExecutor(max_workers=1) as pool, tracer.start_as_current_span("request"):
        pool.submit(_noop).result()
        _executors(pool)
        asyncio.run(_loop_executors(pool))
        _logging()


if __name__ == "__main__":
    main()
