"""Telling feedback-only traces (``mltrace.feedback()`` outside a request) from served requests."""

from __future__ import annotations

from .. import semconv
from ..query import Trace


def is_feedback_trace(trace: Trace) -> bool:
    """A trace that only records feedback (its root is a ``feedback`` span), not a served request."""
    return bool(trace.spans) and trace.root.stage == semconv.STAGE_FEEDBACK


def without_feedback(traces: list[Trace]) -> list[Trace]:
    """The served requests among ``traces`` (latency analyses leave feedback-only traces out)."""
    return [t for t in traces if not is_feedback_trace(t)]
