"""The window read for sources with no cheaper listing than the traces themselves (Jaeger, Zipkin).

Such a source reads every trace of the window in slices, keeps them, and answers ``trace_window``
with :func:`window_of` and ``load`` with :func:`load_kept`, so that ``slow``, ``stats`` and ``drift``
treat it as they treat the local store (issue 14): every trace counted and ranked, a uniform sample
of ``--scan`` analysed.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import numpy as np

from ._errors import TraceNotFound
from ._model import Trace
from ._protocol import Progress
from .local import TraceWindow


def window_of(traces: list[Trace]) -> TraceWindow:
    """The :class:`TraceWindow` of traces read in full: id, start (µs) and duration (ms) each."""
    return TraceWindow(
        [t.trace_id for t in traces],
        np.fromiter((t.start_us for t in traces), dtype=np.int64, count=len(traces)),
        np.fromiter((t.duration_ms for t in traces), dtype=np.float64, count=len(traces)),
    )


def load_kept(
    kept: dict[str, Trace], trace_ids: list[str], get_trace: Callable[[str], Trace], progress: Progress | None
) -> list[Trace]:
    """These traces in full, in this order: from ``kept`` (the last window read), else asked for
    one by one with ``get_trace`` (those no longer in the backend left out)."""
    out = []
    for i, tid in enumerate(trace_ids):
        trace = kept.get(tid)
        if trace is None:
            with contextlib.suppress(TraceNotFound):
                trace = get_trace(tid)
        if trace is not None:
            out.append(trace)
        if progress is not None and i % 1000 == 999:
            progress(i + 1)
    return out
