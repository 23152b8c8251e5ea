"""Per-span cost of the processor layer configure() puts its exporters behind (``_Exporters``).

``python benchmarks/bench_configure.py`` — the same discarding exporter behind a SimpleSpanProcessor,
added to a TracerProvider three ways: directly (the SDK alone), behind ``_Exporters`` with one
exporter (its methods are handed to the SDK, no extra call), and behind ``_Exporters`` with two
exporters (the looping path, two exports per span). 15 rounds of 20,000 empty spans, the cases
shuffled within each round; median and fastest round per case, in µs per span.
"""

from __future__ import annotations

import random
import statistics
import time
from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import Tracer

from mltrace._configure import _Exporters

ROUNDS, SPANS = 15, 20_000


class Discard(SpanExporter):
    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


def tracer(how: str) -> Tracer:
    provider = TracerProvider()
    if how == "direct":
        provider.add_span_processor(SimpleSpanProcessor(Discard()))
    else:
        layer = _Exporters()
        n = 1 if how == "one" else 2
        layer.set({f"d{i}": ((), SimpleSpanProcessor(Discard())) for i in range(n)})
        provider.add_span_processor(layer)
    return provider.get_tracer("bench")


def main() -> None:
    cases = {"SDK, processor added directly": "direct", "_Exporters, one exporter": "one",
             "_Exporters, two exporters": "two"}
    tracers = {name: tracer(how) for name, how in cases.items()}
    results: dict[str, list[float]] = {name: [] for name in cases}
    order = list(cases)
    for _ in range(ROUNDS):
        random.shuffle(order)
        for name in order:
            t = tracers[name]
            start = time.perf_counter()
            for _ in range(SPANS):
                with t.start_as_current_span("s"):
                    pass
            results[name].append((time.perf_counter() - start) / SPANS * 1e6)
    for name, xs in results.items():
        print(f"{name:32s} median {statistics.median(xs):6.2f} µs/span   fastest {min(xs):6.2f}")


if __name__ == "__main__":
    main()
