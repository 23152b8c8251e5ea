"""Sampling that keeps what matters: a tail decision in process, a force-trace header.

Head sampling stays the SDK's (``OTEL_TRACES_SAMPLER``/``_ARG`` or ``configure(sample_ratio=)``);
:class:`TailSampler` then keeps every recorded trace that errored, was slow, carried a drift alert
or was forced, and a ``ratio`` of the rest. See docs/sampling.md.
"""

from __future__ import annotations

from ._config import TailSamplingConfig
from ._consistent import (
    ConsistentProbabilitySampler,
    adjusted_count,
    encode_threshold,
    parse_threshold,
    threshold_for,
    threshold_of,
)
from ._force import FORCE_ATTRIBUTE, ForceTracePropagator, ForceTraceSampler, force_requested, forced_in
from ._quantile import RunningQuantile
from ._tail import TailSampler, trace_fraction

__all__ = [
    "FORCE_ATTRIBUTE",
    "ConsistentProbabilitySampler",
    "ForceTracePropagator",
    "ForceTraceSampler",
    "RunningQuantile",
    "TailSampler",
    "TailSamplingConfig",
    "adjusted_count",
    "encode_threshold",
    "force_requested",
    "forced_in",
    "parse_threshold",
    "threshold_for",
    "threshold_of",
    "trace_fraction",
]
