"""Drift: reference profiles built from training data, per-request scores and windowed drift.

Pure numpy; nothing here imports OpenTelemetry. ``DriftMonitor.span_attributes`` turns a score
into the handful of ``ml.drift.*`` attributes that stages put on spans.
"""

from __future__ import annotations

from ._errors import ProfileFormatError, ProfileMismatchError
from ._monitor import DriftMonitor
from ._offline import drift_report
from ._profile import ReferenceProfile
from ._scorer import DriftScorer, OutputDriftScorer
from ._thresholds import DriftThresholds

__all__ = [
    "DriftMonitor",
    "DriftScorer",
    "DriftThresholds",
    "OutputDriftScorer",
    "ProfileFormatError",
    "ProfileMismatchError",
    "ReferenceProfile",
    "drift_report",
]
