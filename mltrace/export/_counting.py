"""A BatchSpanProcessor and exporter wrapper that count every span they cannot deliver."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from ._counters import COUNTERS


class CountingExporter(SpanExporter):
    """Delegates to ``inner``; counts exported and failed spans, never raises into the worker."""

    def __init__(self, inner: SpanExporter, name: str) -> None:
        self.inner = inner
        self.name = name

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            result = self.inner.export(spans)
        except Exception as exc:  # an exporter bug must not kill the export thread
            COUNTERS.add("export_errors")
            COUNTERS.lost("spans_export_failed", len(spans), f"{self.name}: {type(exc).__name__}: {exc}")
            return SpanExportResult.FAILURE
        if result is SpanExportResult.SUCCESS:
            COUNTERS.add("spans_exported", len(spans))
        else:
            COUNTERS.lost("spans_export_failed", len(spans), f"{self.name} export failed")
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class CountingBatchSpanProcessor(BatchSpanProcessor):
    """The SDK's BatchSpanProcessor, plus a count of spans its full queue throws away.

    The SDK logs "Queue full" but offers no counter unless its internal metrics are enabled;
    the check reads the queue length before the SDK's own bounded append.
    """

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        if not span.context.trace_flags.sampled:
            return
        bp = getattr(self, "_batch_processor", None)
        queue = getattr(bp, "_queue", None)
        if bp is not None and getattr(bp, "_shutdown", False):
            COUNTERS.lost("spans_dropped_after_shutdown", 1, "span ended after shutdown")
            return
        if queue is not None and len(queue) >= getattr(bp, "_max_queue_size", 1 << 62):
            COUNTERS.lost("spans_dropped_queue_full", 1, "export queue full (backend slow or down?)")
        else:
            COUNTERS.add("spans_queued")
        super().on_end(span)
