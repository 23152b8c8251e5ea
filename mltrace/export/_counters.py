"""Process-wide counters of what happened to spans after they ended.

Nothing is dropped silently: a full queue, a failed export and a pruned local store each count
here, readable with :func:`mltrace.export_stats` (and, when metrics are on, as OpenTelemetry
metrics registered by the reliability layer).
"""

from __future__ import annotations

import logging
import threading
import time

_log = logging.getLogger("mltrace.export")

KEYS = (
    "spans_queued",
    "spans_exported",
    "spans_export_failed",
    "spans_dropped_queue_full",
    "spans_dropped_after_shutdown",
    "spans_pruned_local",
    "export_errors",
    "instrumentation_errors",
    # the tail sampler (mltrace.sampling): a choice, and what its bounded buffer could not hold
    "spans_sampled_out",
    "traces_sampled_out",
    "traces_kept_error",
    "traces_kept_slow",
    "traces_kept_p99",
    "traces_kept_drift",
    "traces_kept_forced",
    "traces_kept_ratio",
    "spans_dropped_tail_overflow",
    "tail_traces_evicted",
    # raw payload capture (mltrace.privacy)
    "payloads_captured",
    "payloads_dropped",
)


class Counters:
    """Thread-safe named counters with a rate-limited warning when spans are lost."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values = dict.fromkeys(KEYS, 0)
        self._last_warning = 0.0

    def add(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._values[key] = self._values.get(key, 0) + n

    def lost(self, key: str, n: int, why: str) -> None:
        """Count ``n`` lost spans and log at most one warning every 10 seconds."""
        self.add(key, n)
        now = time.monotonic()
        if now - self._last_warning >= 10.0:
            self._last_warning = now
            snap = self.snapshot()
            _log.warning(
                "mltrace: %d spans lost (%s); totals: dropped_queue_full=%d export_failed=%d",
                n,
                why,
                snap["spans_dropped_queue_full"],
                snap["spans_export_failed"],
            )

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            snap = dict(self._values)
        snap["spans_dropped_total"] = (
            snap["spans_dropped_queue_full"]
            + snap["spans_export_failed"]
            + snap["spans_dropped_after_shutdown"]
            + snap["spans_dropped_tail_overflow"]
        )
        # Handed to a batch processor and not yet exported or failed: in its queue or in flight.
        # A shutdown that gives up at its bound leaves these behind (they are lost at exit).
        snap["spans_pending"] = max(
            0, snap["spans_queued"] - snap["spans_exported"] - snap["spans_export_failed"]
        )
        return snap

    def reset(self) -> None:
        with self._lock:
            self._values = dict.fromkeys(KEYS, 0)


COUNTERS = Counters()


def export_stats() -> dict[str, int]:
    """What happened to this process's spans: queued, exported, failed, dropped (totals)."""
    return COUNTERS.snapshot()
