"""Sampling that keeps what matters: a tail decision in process, a force-trace header.

Head sampling stays the SDK's (``OTEL_TRACES_SAMPLER``/``_ARG`` or ``configure(sample_ratio=)``);
:class:`TailSampler` then keeps every recorded trace that errored, was slow, carried a drift alert
or was forced, and a ``ratio`` of the rest. See docs/sampling.md.
"""

from __future__ import annotations

from ._config import TailSamplingConfig
from ._force import FORCE_ATTRIBUTE, ForceTracePropagator, ForceTraceSampler, force_requested, forced_in
from ._quantile import RunningQuantile
from ._tail import TailSampler, trace_fraction

__all__ = [
    "FORCE_ATTRIBUTE",
    "ForceTracePropagator",
    "ForceTraceSampler",
    "RunningQuantile",
    "TailSampler",
    "TailSamplingConfig",
    "force_requested",
    "forced_in",
    "trace_fraction",
]
