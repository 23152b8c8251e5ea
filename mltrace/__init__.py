"""mltrace: distributed tracing for model serving.

One middleware and a few decorators turn every request into a trace: a server span with child
spans for preprocessing, feature lookup, inference and postprocessing, carrying compact
input/output summaries and drift scores, exported through OpenTelemetry.
"""

from __future__ import annotations

from ._configure import ConfigurationWarning, MLTrace, configure
from ._errors import ConfigurationError, InputDataError, InvalidArgumentError, MLTraceError
from ._version import __version__
from .batching import MicroBatcher, batch_member, record_batch, traced_batch
from .drift import DriftMonitor, DriftThresholds, ProfileFormatError, ProfileMismatchError, ReferenceProfile
from .export import export_stats
from .export._logs import instrument_logging, uninstrument_logging
from .privacy import CaptureRules, PayloadCapture, capture_payload
from .sampling import TailSamplingConfig
from .spans import (
    MLTraceMiddleware,
    Stage,
    feature_lookup,
    inference,
    postprocess,
    preprocess,
    stage,
)
from .spans._concurrency import ContextThreadPoolExecutor, run_in_executor, wrap_executor
from .spans._current import current_stage, current_trace_id, record_lookup
from .spans._feedback import feedback
from .summaries import summarize

__all__ = [
    "CaptureRules",
    "ConfigurationError",
    "ConfigurationWarning",
    "ContextThreadPoolExecutor",
    "DriftMonitor",
    "DriftThresholds",
    "InputDataError",
    "InvalidArgumentError",
    "MLTrace",
    "MLTraceError",
    "MLTraceMiddleware",
    "MicroBatcher",
    "PayloadCapture",
    "ProfileFormatError",
    "ProfileMismatchError",
    "ReferenceProfile",
    "Stage",
    "TailSamplingConfig",
    "__version__",
    "batch_member",
    "capture_payload",
    "configure",
    "current_stage",
    "current_trace_id",
    "export_stats",
    "feature_lookup",
    "feedback",
    "inference",
    "instrument_logging",
    "postprocess",
    "preprocess",
    "record_batch",
    "record_lookup",
    "run_in_executor",
    "stage",
    "summarize",
    "traced_batch",
    "uninstrument_logging",
    "wrap_executor",
]
