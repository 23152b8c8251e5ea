"""What the in-process tail decision costs: a 5-span trace with and without ``TailSampler``.

    python benchmarks/bench_sampling.py

Spans go to a processor that discards them, so only the sampler's own work (buffering, the
decision, the running p99) is measured; best of 3 runs of 20,000 traces each.
"""

from __future__ import annotations

import time

from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider

from mltrace.sampling import RunningQuantile, TailSampler, TailSamplingConfig


class Discard(SpanProcessor):
    def on_end(self, span: ReadableSpan) -> None:
        return None


def per_trace_us(tail: bool, n: int = 20_000) -> float:
    provider = TracerProvider()
    provider.add_span_processor(TailSampler(Discard(), TailSamplingConfig(ratio=0.1)) if tail else Discard())
    tracer = provider.get_tracer("bench")
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            root = tracer.start_span("POST /predict")
            ctx = trace.set_span_in_context(root)
            for name in ("preprocess", "feature_lookup", "inference", "postprocess"):
                tracer.start_span(name, context=ctx).end()
            root.end()
        best = min(best, (time.perf_counter() - start) / n * 1e6)
    return best


def main() -> None:
    without, with_tail = per_trace_us(False), per_trace_us(True)
    extra = with_tail - without
    print(f"5-span trace: {without:.1f} µs without, {with_tail:.1f} µs with TailSampler (+{extra:.1f} µs)")
    q = RunningQuantile()
    start = time.perf_counter()
    for i in range(200_000):
        q.observe(float(i % 1000))
    print(f"RunningQuantile.observe (window 1,024): {(time.perf_counter() - start) / 200_000 * 1e6:.2f} µs")


if __name__ == "__main__":
    main()
