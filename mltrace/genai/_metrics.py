"""Generation metrics: the GenAI server histograms and mltrace's own, on the global MeterProvider.

Instruments come from the API's global meter, so they start reporting once the application (or
``opentelemetry-instrument``) sets a MeterProvider with a reader, before or after import; without
one, recording is a no-op costing a few hundred nanoseconds. Every generation is counted, sampled
or not: metrics are the unsampled view. Bucket boundaries follow the GenAI conventions' advice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any

from opentelemetry import metrics

from .._version import __version__
from ..export import COUNTERS
from . import _semconv as sc

_log = logging.getLogger("mltrace")

# The GenAI conventions' advised boundaries (seconds).
_TTFT_BUCKETS = (0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0)
_TPOT_BUCKETS = (0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5)
_DURATION_BUCKETS = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)
_TOKEN_BUCKETS = (1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576)


class _Instruments:
    def __init__(self) -> None:
        meter = metrics.get_meter("mltrace", __version__)
        self.ttft = meter.create_histogram(
            sc.GEN_AI_SERVER_TTFT, unit="s", explicit_bucket_boundaries_advisory=_TTFT_BUCKETS,
            description="Time to generate first token for successful responses",
        )
        self.tpot = meter.create_histogram(
            sc.GEN_AI_SERVER_TPOT, unit="s", explicit_bucket_boundaries_advisory=_TPOT_BUCKETS,
            description="Time per output token generated after the first token for successful responses",
        )
        self.duration = meter.create_histogram(
            sc.GEN_AI_SERVER_REQUEST_DURATION, unit="s", explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
            description="Generative AI server request duration such as time-to-last byte or last output token",
        )
        self.queue = meter.create_histogram(
            sc.MLTRACE_GENERATE_QUEUE_TIME, unit="s", explicit_bucket_boundaries_advisory=_TTFT_BUCKETS,
            description="Time a generation waited (a batch, a semaphore) before it started",
        )
        self.max_gap = meter.create_histogram(
            sc.MLTRACE_GENERATE_TPOT_MAX, unit="s", explicit_bucket_boundaries_advisory=_TPOT_BUCKETS,
            description="Longest gap between two output tokens of a generation",
        )
        self.tokens = meter.create_histogram(
            sc.MLTRACE_GENERATE_TOKENS, unit="{token}", explicit_bucket_boundaries_advisory=_TOKEN_BUCKETS,
            description="Input and output tokens per generation (gen_ai.token.type)",
        )
        self.disconnects = meter.create_counter(
            sc.MLTRACE_GENERATE_DISCONNECTS, unit="{generation}",
            description="Generations closed or cancelled before their end (the client went away)",
        )


_lock = threading.Lock()
_instruments: _Instruments | None = None


def _get() -> _Instruments:
    global _instruments
    if _instruments is None:
        with _lock:
            if _instruments is None:
                _instruments = _Instruments()
    return _instruments


def record(
    attrs: Mapping[str, Any],
    *,
    ttft: float | None,
    tpot: float | None,
    max_gap: float | None,
    duration: float,
    queue: float | None,
    input_tokens: int | None,
    output_tokens: int,
    disconnected: bool,
) -> None:
    """One generation's figures; ``ttft``/``tpot`` only for successful responses (the caller decides)."""
    try:
        m = _get()
        if ttft is not None:
            m.ttft.record(ttft, attrs)
        if tpot is not None:
            m.tpot.record(tpot, attrs)
        if max_gap is not None:
            m.max_gap.record(max_gap, attrs)
        m.duration.record(duration, attrs)
        if queue is not None:
            m.queue.record(queue, attrs)
        if input_tokens is not None:
            m.tokens.record(input_tokens, {**attrs, sc.GEN_AI_TOKEN_TYPE: "input"})
        m.tokens.record(output_tokens, {**attrs, sc.GEN_AI_TOKEN_TYPE: "output"})
        if disconnected:
            m.disconnects.add(1, attrs)
    except Exception:  # metrics must never fail a generation
        COUNTERS.add("instrumentation_errors")
        _log.debug("mltrace: could not record generation metrics", exc_info=True)
