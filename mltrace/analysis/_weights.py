"""What each stored trace stands for: its adjusted count, and statistics weighted by it.

A trace kept by a ratio (mltrace's consistent sampler, or a Collector gateway's ratio policy) stands
for ``1 / p`` requests; one kept because it errored, was slow, drifted or was forced stands for one.
Spans say so in ``mltrace.sampling.adjusted_count`` (or in ``ot=th`` of their ``tracestate``, which
Jaeger keeps as the tag ``w3c.tracestate``). Without either, a trace counts once: an unsampled store
gives exactly the unweighted figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .. import semconv
from ..query import Trace
from ..sampling import adjusted_count, parse_threshold

FloatArray = npt.NDArray[np.float64]
_TRACESTATE_TAG = "w3c.tracestate"


def _from_tracestate(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    for member in value.split(","):
        key, _, ot = member.strip().partition("=")
        if key != "ot":
            continue
        for part in ot.split(";"):
            name, _, th = part.partition(":")
            threshold = parse_threshold(th) if name == "th" else None
            if threshold is not None:
                return adjusted_count(threshold)
    return None


def trace_weight(trace: Trace) -> float:
    """The adjusted count of ``trace``: the largest any of its spans declares, else 1 (kept on the
    Trace, which is immutable: the ui's overview asks for it from slow, stats and drift)."""
    cached: float | None = trace.__dict__.get("_adjusted_count")
    if cached is None:
        cached = trace.__dict__["_adjusted_count"] = _trace_weight(trace)
    return cached


def _trace_weight(trace: Trace) -> float:
    best: float | None = None
    for span in trace.spans:
        attrs = span.attributes
        value = attrs.get(semconv.MLTRACE_SAMPLING_ADJUSTED_COUNT)
        if not (isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)):
            value = _from_tracestate(attrs.get(_TRACESTATE_TAG))
        if value is not None and value >= 1.0 and (best is None or value > best):
            best = float(value)
    return best if best is not None else 1.0


def trace_weights(traces: Sequence[Trace]) -> FloatArray | None:
    """Each trace's adjusted count, or ``None`` when all are 1 (unsampled: use the plain figures)."""
    weights = np.array([trace_weight(t) for t in traces], dtype=np.float64)
    return weights if bool((weights != 1.0).any()) else None


def weighted_quantile(values: npt.ArrayLike, weights: npt.ArrayLike, q: float) -> float:
    """The ``q`` quantile (0-1) of ``values`` where each value counts ``weight`` times.

    The inverted-CDF rule (the smallest value whose cumulative weight reaches ``q`` of the total),
    as ``numpy.percentile(..., weights=, method="inverted_cdf")``.
    """
    v = np.asarray(values, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if v.size == 0:
        return math.nan
    order = np.argsort(v, kind="stable")
    cum = np.cumsum(w[order])
    i = int(np.searchsorted(cum, q * cum[-1], side="left"))
    return float(v[order][min(i, v.size - 1)])
