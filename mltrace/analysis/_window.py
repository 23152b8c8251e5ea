"""The traces a window analysis reads: every trace in the window asked for, or a uniform sample.

``stats`` and ``drift`` (from traces) answer for the whole window the user asked for. From a
source that can list its window cheaply (the local store's entry index,
:meth:`mltrace.query.local.LocalSource.trace_window`: a million traces in about 1.5 s without
decoding a span), every trace in the window is counted; at most ``scan`` of them are decoded and
analysed, a uniform random sample across the window when it holds more (fixed seed: the same store
gives the same answer). The sample says so: ``sampled`` and ``sample_weight`` (the window's traces
per analysed trace), so counts can be scaled to the window. Jaeger and Zipkin list their window by
reading all of it (in slices, :meth:`mltrace.query.jaeger.JaegerSource.trace_window`,
:meth:`mltrace.query.zipkin.ZipkinSource.trace_window`), then the same sample is drawn (issue 14);
a source without ``trace_window`` gives its newest ``scan`` traces.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..query import Trace
from ._feedback import without_feedback


@dataclass
class WindowSample:
    """The analysed traces (feedback-only traces left out) and what they stand for."""

    traces: list[Trace]
    scanned: int  # traces in the window (local store), or fetched (other sources)
    sampled: bool  # True when `traces` is a uniform sample of the window
    sample_weight: float  # window traces per analysed trace: 1.0 unless sampled

    def fields(self) -> dict[str, Any]:
        """The report fields every window analysis shares (``scanned`` .. ``sample_weight``)."""
        return {"scanned": self.scanned, "analysed": len(self.traces), "sampled": self.sampled,
                "sample_weight": self.sample_weight}


def sample_indices(n: int, scan: int) -> list[int]:
    """Which of a window's ``n`` traces (in the window's order) are analysed: all of them when
    ``n <= scan``, else a uniform sample of ``scan`` (at least one), ascending. The one place the
    sample is drawn: ``slow`` and the other window analyses must pick the same traces from the
    same window, or the UI's cache, keyed on the traces loaded, misses and a page's panels
    describe different samples."""
    if n <= scan:
        return list(range(n))
    chosen: list[int] = np.sort(np.random.default_rng(0).choice(n, size=max(1, scan), replace=False)).tolist()
    return chosen


def sample_window(
    source: Any, service: str | None, window: float | None, scan: int, progress: Any = None
) -> WindowSample:
    """The traces of ``service`` in the last ``window`` seconds: all of them up to ``scan``, else a
    uniform sample of ``scan`` across the window (see the module docstring)."""
    if not callable(getattr(source, "trace_window", None)):
        traces = source.find_traces(service, window, scan, progress=progress)
        return WindowSample(without_feedback(traces), len(traces), False, 1.0)
    win = source.trace_window(service, window, progress=progress)
    n = len(win)
    ids = [win.trace_ids[i] for i in sample_indices(n, scan)]
    traces = without_feedback(source.load(ids, progress))
    sampled = len(ids) < n
    # Each chosen trace stands for n / len(ids) of the window, feedback-only ones included, so the
    # analysed (served) traces times the weight estimate the window's served requests.
    return WindowSample(traces, n, sampled, round(n / len(ids), 3) if ids else 1.0)
