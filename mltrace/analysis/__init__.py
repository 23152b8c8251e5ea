"""Answers from traces: where time went (per stage), why the slow ones were slow, latency
percentiles, the lineage of a prediction, drift over time, and accuracy against late feedback.
Each function takes a trace source (:func:`mltrace.query.open_source`) and returns plain data
(what ``mltrace ... --json`` prints).
"""

from __future__ import annotations

from ._accuracy import accuracy
from ._breakdown import NETWORK, UNACCOUNTED, dominant_stage, stage_breakdown
from ._drift import drift_history
from ._errors import UnknownStage
from ._lineage import lineage, predictions_for_input, trace_lineage
from ._reports import (
    AccuracyReport,
    DiffReport,
    DriftReport,
    FingerprintReport,
    LineageReport,
    ShowReport,
    SlowReport,
    StatsReport,
)
from ._show import show_trace, trace_tree
from ._slow import analyze_slow, slow_traces
from ._stats import summarize_traces, trace_stats

__all__ = [
    "NETWORK",
    "UNACCOUNTED",
    "AccuracyReport",
    "DiffReport",
    "DriftReport",
    "FingerprintReport",
    "LineageReport",
    "ShowReport",
    "SlowReport",
    "StatsReport",
    "UnknownStage",
    "accuracy",
    "analyze_slow",
    "dominant_stage",
    "drift_history",
    "lineage",
    "predictions_for_input",
    "show_trace",
    "slow_traces",
    "stage_breakdown",
    "summarize_traces",
    "trace_lineage",
    "trace_stats",
    "trace_tree",
]
