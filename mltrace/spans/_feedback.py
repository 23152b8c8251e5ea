"""``mltrace.feedback()``: the true outcome of a prediction, recorded when it arrives (often much later).

Spans are immutable once exported, so ground truth cannot be added to the prediction's span.
It becomes a new span, ``feedback`` (``ml.stage = "feedback"``), carrying the label and the
prediction's trace id, with a span link to the prediction. ``mltrace accuracy`` (and
:func:`mltrace.analysis.accuracy`) join the two.
"""

from __future__ import annotations

import math
import re
from typing import Any

from opentelemetry.trace import INVALID_SPAN_ID, Link, SpanContext, TraceFlags

from .. import semconv
from .._errors import InvalidArgumentError
from ._tracer import TRACER

#: ``traceparent`` (request) and ``traceresponse`` (response; a W3C Trace Context Level 3 draft) share a format
_CONTEXT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_SPAN_ID = re.compile(r"^[0-9a-f]{16}$")
MAX_LABEL_LENGTH = 256

Label = str | bool | int | float


def parse_reference(text: str) -> tuple[str, str | None]:
    """``(trace id, span id or None)`` from 32 hex digits (``X-Trace-Id``) or a ``traceparent`` /
    ``traceresponse`` value (``00-<trace id>-<span id>-<flags>``)."""
    if not isinstance(text, str):
        raise TypeError(f"trace_id must be a string; got {type(text).__name__}")
    value = text.strip().lower()
    match = _CONTEXT.match(value)
    if match:
        trace_id, span_id = match.group(2), match.group(3)
    elif _TRACE_ID.match(value):
        trace_id, span_id = value, None
    else:
        raise InvalidArgumentError(
            f"not a trace id: {text!r}; expected 32 hex digits (the X-Trace-Id header) or a "
            "traceparent/traceresponse value 00-<32 hex>-<16 hex>-<2 hex>"
        )
    if int(trace_id, 16) == 0:
        raise InvalidArgumentError(f"the all-zero trace id is invalid: {text!r}")
    if span_id is not None and int(span_id, 16) == 0:
        span_id = None
    return trace_id, span_id


def _span_id(span_id: str) -> str:
    if not isinstance(span_id, str) or not _SPAN_ID.match(span_id.strip().lower()) or int(span_id, 16) == 0:
        raise InvalidArgumentError(f"span_id must be 16 hex digits, not all zero; got {span_id!r}")
    return span_id.strip().lower()


def _label(label: object) -> Label:
    value: Any = label
    if hasattr(value, "item") and type(value).__module__ == "numpy":  # numpy scalars, 0-d arrays
        value = value.item()
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidArgumentError(f"label must be finite; got {value!r}")
        return value
    if isinstance(value, str):
        return value[:MAX_LABEL_LENGTH]
    raise TypeError(f"label must be a str, bool, int or float (a class or a number); got {type(label).__name__}")


def feedback(
    trace_id: str,
    label: Label,
    *,
    span_id: str | None = None,
    model: str | None = None,
    version: str | None = None,
) -> str | None:
    """Record the true outcome (``label``) of the prediction made in trace ``trace_id``.

    ``trace_id`` is 32 hex digits (the ``X-Trace-Id`` response header) or a ``traceparent`` /
    ``traceresponse`` value. The new span ``feedback`` carries ``ml.feedback.label`` and
    ``ml.feedback.trace_id`` and links to the prediction's span: ``span_id`` if given, else the
    span named in a ``traceparent``/``traceresponse`` value (the request's server span, the trace's
    root), else the trace itself (a link with an all-zero span id, which OpenTelemetry records
    because it has attributes). ``model`` and ``version`` name the model that predicted, where the
    caller knows it. The span starts under the current span, if any (a ``/feedback`` request).

    Returns the feedback span's trace id, or ``None`` when it was not recorded (no tracer
    provider, or sampled out). Raises ``ValueError``/``TypeError`` for an unreadable trace id,
    span id or label.
    """
    target, parsed_span = parse_reference(trace_id)
    linked_span = _span_id(span_id) if span_id is not None else parsed_span
    value = _label(label)
    attributes: dict[str, Any] = {
        semconv.ML_STAGE: semconv.STAGE_FEEDBACK,
        semconv.ML_FEEDBACK_LABEL: value,
        semconv.ML_FEEDBACK_TRACE_ID: target,
    }
    if linked_span is not None:
        attributes[semconv.ML_FEEDBACK_SPAN_ID] = linked_span
    if model is not None:
        attributes[semconv.ML_MODEL_NAME] = str(model)
    if version is not None:
        attributes[semconv.ML_MODEL_VERSION] = str(version)
    context = SpanContext(
        int(target, 16),
        int(linked_span, 16) if linked_span is not None else INVALID_SPAN_ID,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    link = Link(context, {semconv.ML_FEEDBACK_TRACE_ID: target})
    span = TRACER.start_span("feedback", attributes=attributes, links=[link])
    try:
        ctx = span.get_span_context()
        return format(ctx.trace_id, "032x") if span.is_recording() else None
    finally:
        span.end()
