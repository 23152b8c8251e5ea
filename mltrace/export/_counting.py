"""A BatchSpanProcessor and exporter wrapper that count every span they cannot deliver."""

from __future__ import annotations

import collections
import inspect
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

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
        if getattr(self.inner, "counts_exports", False):
            # The exporter finishes its work later (the local store's writer thread) and counts
            # each span exported or failed itself, when it knows; a raised exception (above) means
            # nothing of the batch was handed on.
            return result
        if result is SpanExportResult.SUCCESS:
            COUNTERS.add("spans_exported", len(spans))
        else:
            COUNTERS.lost("spans_export_failed", len(spans), f"{self.name} export failed")
        return result

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        # The batch processor passes what is left of its shutdown timeout to an exporter whose
        # shutdown takes one; pass it on to an inner exporter that takes one too.
        if "timeout_millis" in inspect.signature(self.inner.shutdown).parameters:
            self.inner.shutdown(timeout_millis=timeout_millis)  # type: ignore[call-arg]
        else:
            self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)


class _CountingQueue(collections.deque[ReadableSpan]):
    """The batch processor's bounded deque, counting exactly what a full queue throws away.

    The SDK appends with ``appendleft`` (evicting the oldest span when full) and its worker takes
    with ``pop``; one lock around both makes "was it full?" and the append a single step, so a
    span is counted as queued or as dropped, never both, even while the worker drains.
    """

    def __init__(self, maxlen: int) -> None:
        super().__init__((), maxlen)
        self._lock = threading.Lock()

    def appendleft(self, span: ReadableSpan) -> None:
        with self._lock:
            full = len(self) == self.maxlen
            super().appendleft(span)
        if full:
            COUNTERS.lost("spans_dropped_queue_full", 1, "export queue full (backend slow or down?)")
        else:
            COUNTERS.add("spans_queued")

    def pop(self) -> ReadableSpan:  # type: ignore[override]  # deque.pop takes no index
        with self._lock:
            return super().pop()


DEFAULT_EXPORT_BATCH_SIZE = 128


class CountingBatchSpanProcessor(BatchSpanProcessor):
    """The SDK's BatchSpanProcessor, plus a count of spans its full queue throws away.

    The SDK logs "Queue full" but offers no counter unless its internal metrics are enabled;
    the processor's deque is swapped for :class:`_CountingQueue`, which counts each span as
    queued or dropped atomically with the append.
    """

    def __init__(self, span_exporter: SpanExporter, *args: Any, **kwargs: Any) -> None:
        if not args and "max_export_batch_size" not in kwargs and not os.environ.get(
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"
        ):
            # Encoding a batch holds the GIL: a 512-span batch of the example's spans took 45-55 ms
            # to turn into protobuf, a stall served requests feel at p99. Smaller batches spread it.
            kwargs["max_export_batch_size"] = DEFAULT_EXPORT_BATCH_SIZE
            # An exporter may ask for larger batches (the local store: one statement per batch,
            # one GIL hand-off each, so its rate beside a busy thread grows with the batch).
            inner = getattr(span_exporter, "inner", span_exporter)
            preferred = getattr(inner, "preferred_batch_size", None)
            if isinstance(preferred, int) and preferred > 0:
                kwargs["max_export_batch_size"] = preferred
        if not args and "max_queue_size" not in kwargs and not os.environ.get("OTEL_BSP_MAX_QUEUE_SIZE"):
            # An in-process store can take a deeper queue than a network exporter (the spans are in
            # this process's memory either way): the local store's writer is starved of the GIL
            # while a CPU-bound handler holds it, and a 2,048-span queue overflowed within seconds
            # at a served app's capacity (tests/export/test_store_capacity.py).
            inner = getattr(span_exporter, "inner", span_exporter)
            queue = getattr(inner, "preferred_queue_size", None)
            if isinstance(queue, int) and queue > 0:
                kwargs["max_queue_size"] = max(queue, kwargs.get("max_export_batch_size", 0))
        super().__init__(span_exporter, *args, **kwargs)
        # An exporter that can work in a thread of its own does so under a batch processor (the
        # local store: SQLite's statement overlaps the encoding of the next batch).
        start = getattr(getattr(span_exporter, "inner", span_exporter), "start_writer_thread", None)
        if callable(start):
            start()
        bp = getattr(self, "_batch_processor", None)
        queue = getattr(bp, "_queue", None)
        if bp is not None and isinstance(queue, collections.deque) and queue.maxlen and not queue:
            bp._queue = _CountingQueue(queue.maxlen)
        else:  # pragma: no cover - an SDK without the attributes this relies on: count what we can
            self._counting = False

    _counting = True

    def force_flush(self, timeout_millis: int | None = None) -> bool:
        """Export what is queued, then wait for the exporter to finish it (the SDK's flush stops
        at handing the spans over: the local store writes them in its own thread)."""
        deadline = time.monotonic() + (30_000 if timeout_millis is None else timeout_millis) / 1000
        if not super().force_flush(timeout_millis):
            return False
        exporter = getattr(getattr(self, "_batch_processor", None), "_exporter", None)
        if exporter is None:  # pragma: no cover - an SDK without the attribute
            return True
        remaining = max(0, int((deadline - time.monotonic()) * 1000))
        return bool(exporter.force_flush(remaining))

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        if not span.context.trace_flags.sampled:
            return
        bp = getattr(self, "_batch_processor", None)
        if bp is not None and getattr(bp, "_shutdown", False):
            COUNTERS.lost("spans_dropped_after_shutdown", 1, "span ended after shutdown")
            return
        if not self._counting:  # pragma: no cover
            COUNTERS.add("spans_queued")
        super().on_end(span)
