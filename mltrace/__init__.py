"""mltrace: distributed tracing for model serving.

One middleware and a few decorators turn every request into a trace: a server span with child
spans for preprocessing, feature lookup, inference and postprocessing, carrying compact
input/output summaries and drift scores, exported through OpenTelemetry.
"""

from __future__ import annotations

from ._configure import MLTrace, configure
from ._current import current_stage, current_trace_id, record_lookup
from ._errors import ConfigurationError, MLTraceError
from ._version import __version__
from .export import export_stats
from .spans import (
    MLTraceMiddleware,
    Stage,
    feature_lookup,
    inference,
    postprocess,
    preprocess,
    stage,
)
from .summaries import summarize

__all__ = [
    "ConfigurationError",
    "MLTrace",
    "MLTraceError",
    "MLTraceMiddleware",
    "Stage",
    "__version__",
    "configure",
    "current_stage",
    "current_trace_id",
    "export_stats",
    "feature_lookup",
    "inference",
    "postprocess",
    "preprocess",
    "record_lookup",
    "stage",
    "summarize",
]
