"""mltrace's own counters as OpenTelemetry metrics: ``configure(metrics=True)`` / ``MLTRACE_METRICS``.

Observable counters read :data:`COUNTERS` at each collection, so nothing is paid per span. They
are registered on the global MeterProvider (or the one passed), and drift monitors publish on the
same providers (:mod:`._drift_metrics`). mltrace does not choose where metrics go: set a
MeterProvider with a reader (``opentelemetry-instrument`` does, from ``OTEL_METRICS_EXPORTER``),
before or after this call.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation

from .._version import __version__
from ._counters import COUNTERS

# metric name -> (description, unit, {attribute value or "": counter key}, attribute name)
METRICS: dict[str, tuple[str, str, dict[str, str], str]] = {
    "mltrace.spans.dropped": (
        "Spans that ended but will never reach the backend",
        "{span}",
        {
            "queue_full": "spans_dropped_queue_full",
            "export_failed": "spans_export_failed",
            "after_shutdown": "spans_dropped_after_shutdown",
            "tail_overflow": "spans_dropped_tail_overflow",
        },
        "reason",
    ),
    "mltrace.spans.queued": ("Spans put on the export queue", "{span}", {"": "spans_queued"}, ""),
    "mltrace.spans.exported": ("Spans the backend accepted", "{span}", {"": "spans_exported"}, ""),
    "mltrace.spans.sampled_out": (
        "Spans the tail sampler chose not to keep (a decision, not a loss)",
        "{span}",
        {"": "spans_sampled_out"},
        "",
    ),
    "mltrace.spans.pruned": ("Spans pruned from the local store", "{span}", {"": "spans_pruned_local"}, ""),
    "mltrace.export.errors": ("Exporter calls that raised", "{call}", {"": "export_errors"}, ""),
    "mltrace.payloads.captured": ("Redacted payloads stored", "{payload}", {"": "payloads_captured"}, ""),
    "mltrace.payloads.dropped": (
        "Payloads not stored (queue full, sink error)",
        "{payload}",
        {"": "payloads_dropped"},
        "",
    ),
    "mltrace.instrumentation.errors": (
        "Failures inside mltrace's own hooks, recorded instead of raised",
        "{error}",
        {"": "instrumentation_errors"},
        "",
    ),
}

_lock = threading.Lock()
_registered: set[int] = set()


def _callback(keys: dict[str, str], attribute: str) -> Any:
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        snap = COUNTERS.snapshot()
        return [
            Observation(snap.get(key, 0), {attribute: label} if attribute else None) for label, key in keys.items()
        ]

    return observe


def enable_metrics(meter_provider: metrics.MeterProvider | None = None) -> bool:
    """Register the observable counters once per MeterProvider; ``False`` if already registered."""
    provider = meter_provider if meter_provider is not None else metrics.get_meter_provider()
    with _lock:
        if id(provider) in _registered:
            return False
        _registered.add(id(provider))
    meter = provider.get_meter("mltrace", __version__)
    for name, (description, unit, keys, attribute) in METRICS.items():
        meter.create_observable_counter(
            name, callbacks=[_callback(keys, attribute)], unit=unit, description=description
        )
    from ._drift_metrics import watch_drift

    watch_drift(provider)
    return True
