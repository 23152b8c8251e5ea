"""Where spans are made: the ASGI middleware (server span) and the stage spans."""

from __future__ import annotations

from ._decorators import feature_lookup, inference, postprocess, preprocess
from ._guarded import record_error
from ._middleware import MLTraceMiddleware
from ._stage import Stage, StageScope, stage
from ._tracer import sampled_out

__all__ = [
    "MLTraceMiddleware",
    "Stage",
    "StageScope",
    "feature_lookup",
    "inference",
    "postprocess",
    "preprocess",
    "record_error",
    "sampled_out",
    "stage",
]
