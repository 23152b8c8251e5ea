"""Stage decorator cost, side by side: today's wrappers against an earlier commit's.

    python benchmarks/bench_stages.py [--rounds 30] [--before REV]

The earlier ``mltrace/spans/_decorators.py`` and ``_stage.py`` (``--before``, default 8f7c346:
before issue 11 item 4; read with ``git show``) are loaded as second modules in the same process,
so both run in the same rounds, interleaved and shuffled (they import today's helpers, so a REV
whose modules need names that are gone will not load). Cases: a plain call, a method call, an
``async`` call, a 10-item generator and a 10-item async generator, and ``with mltrace.stage()``,
each under a sampled-out parent (the cost every request pays) and a recording one (spans to a
provider with no exporter). Summaries are off (``record_input/record_output=False``): the wrappers are measured,
not the summaries. Reported per case: median and fastest round in µs per call, and the ratio
new / before of each. Then what ``kind="generate"`` adds to a streaming stage, at 1 and 1,000
tokens (per generation and per token).
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

import mltrace

ROOT = Path(__file__).resolve().parent.parent
BEFORE = "8f7c346"


def _load_before(rev: str, name: str) -> ModuleType:
    source = subprocess.run(
        ["git", "show", f"{rev}:mltrace/spans/{name}.py"], cwd=ROOT, capture_output=True, text=True,
        check=True,
    ).stdout
    spec = importlib.util.spec_from_loader(f"mltrace.spans.{name}_before", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "mltrace.spans"
    exec(compile(source, f"{rev}:{name}.py", "exec"), module.__dict__)
    return module


def _cases(deco: Callable[..., Any], scope: Callable[..., Any]) -> dict[str, Callable[[], Any]]:
    stage = deco(record_input=False, record_output=False)

    @stage
    def f(x: int) -> int:
        return x

    @stage
    async def af(x: int) -> int:
        return x

    @stage
    def gen(n: int) -> Any:
        yield from range(n)

    @stage
    async def agen(n: int) -> Any:
        for i in range(n):
            yield i

    class Model:
        @stage
        def predict(self, x: int) -> int:
            return x

    model = Model()
    loop = asyncio.new_event_loop()

    async def ten_async() -> None:
        for _ in range(10):
            await af(1)

    async def drain() -> None:
        async for _ in agen(10):
            pass

    def with_scope() -> None:
        with scope("postprocess"):
            pass

    return {
        "call": lambda: f(1),
        "method call": lambda: model.predict(1),
        "async call (x10 in one task)": lambda: loop.run_until_complete(ten_async()),
        "generator, 10 items": lambda: sum(gen(10)),
        "async generator, 10 items": lambda: loop.run_until_complete(drain()),
        "with stage()": with_scope,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=30)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--before", default=BEFORE, help="the commit to compare with (default %(default)s)")
    args = ap.parse_args()
    mltrace.configure(exporter="none")
    before, before_stage = _load_before(args.before, "_decorators"), _load_before(args.before, "_stage")
    impls = {"new": _cases(mltrace.preprocess, mltrace.stage), "before": _cases(before.preprocess, before_stage.stage)}
    parents = {
        "sampled out": NonRecordingSpan(SpanContext(0xABC, 0xDEF, is_remote=False, trace_flags=TraceFlags(0))),
        "recording": trace.get_tracer("bench").start_span("request"),
    }
    times: dict[tuple[str, str, str], list[float]] = {}
    work = [(p, c, i) for p in parents for c in impls["new"] for i in impls]
    for _ in range(args.rounds):
        random.shuffle(work)
        for parent, case, impl in work:
            fn = impls[impl][case]
            n = args.calls // 10 if "10" in case else args.calls
            with trace.use_span(parents[parent]):
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                elapsed = time.perf_counter() - t0
            times.setdefault((parent, case, impl), []).append(elapsed / n * 1e6)
    print(f"{args.rounds} rounds x {args.calls} calls, shuffled, before = {args.before}; "
          "µs per call (median / fastest round)\n")
    print(f"{'parent':<12} {'case':<30} {'before':>16} {'new':>16} {'new/before (median, fastest)':>30}")
    for parent in parents:
        for case in impls["new"]:
            b, n = times[(parent, case, "before")], times[(parent, case, "new")]
            print(
                f"{parent:<12} {case:<30} {statistics.median(b):7.2f} / {min(b):6.2f} "
                f"{statistics.median(n):7.2f} / {min(n):6.2f} "
                f"{statistics.median(n) / statistics.median(b):>21.2f}, {min(n) / min(b):.2f}"
            )
    generation_cost()


def generation_cost(rounds: int = 20) -> None:
    """What ``kind="generate"`` adds to a streaming stage: per generation and per token."""

    def raw(n: int) -> Any:
        for _ in range(n):
            yield "a"

    stage = mltrace.inference(model="m", record_input=False, record_output=False)(raw)
    generate = mltrace.inference(model="m", kind="generate", record_input=False, record_output=False)(raw)
    print("\nrecording, µs per stream (median / fastest round):")
    with trace.use_span(trace.get_tracer("bench").start_span("request")):
        for n in (1, 1000):
            times: dict[str, list[float]] = {"plain generator": [], "stage": [], 'kind="generate"': []}
            for _ in range(rounds):
                for name, f in (("plain generator", raw), ("stage", stage), ('kind="generate"', generate)):
                    reps = 20
                    t0 = time.perf_counter()
                    for _ in range(reps):
                        for _ in f(n):
                            pass
                    times[name].append((time.perf_counter() - t0) / reps * 1e6)
            row = "  ".join(f"{k} {statistics.median(v):8.1f} / {min(v):8.1f}" for k, v in times.items())
            print(f"  {n:5d} tokens: {row}")


if __name__ == "__main__":
    sys.exit(main())
