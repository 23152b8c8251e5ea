"""Guarded attribute recording: summaries and drift on a span, never an exception in the request."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from opentelemetry.trace import Span, Status, StatusCode

from .. import semconv
from .._settings import SETTINGS
from ..export import COUNTERS
from ..privacy import span_safe
from ..privacy._attributes import exception_attributes, safe_text
from ..summaries import summarize
from ..summaries._keys import TOP_LEVEL
from ._deferred import DeferredSpan

_log = logging.getLogger("mltrace")


def note_failure(span: Span, where: str, exc: BaseException) -> None:
    """Record that mltrace itself failed at ``where`` (an event and a counter, never a raise)."""
    COUNTERS.add("instrumentation_errors")
    with contextlib.suppress(Exception):  # a broken span must not break the request either
        span.add_event(semconv.ML_TRACE_ERROR, {"where": where, "error.type": type(exc).__name__})
    _log.debug("mltrace: %s failed", where, exc_info=True)


def _within_budget(summary: dict[str, Any], budget: int) -> dict[str, Any]:
    """At most ``budget`` keys, dropping per-feature keys first and saying so."""
    if len(summary) <= budget:
        return summary
    core = {k: v for k, v in summary.items() if not k.startswith("feature.")}
    kept = dict(list(core.items())[: budget - 1])
    for k, v in summary.items():
        if len(kept) >= budget - 1:
            break
        kept.setdefault(k, v)
    kept["features_truncated"] = True
    return kept


def summary_attributes(prefix: str, obj: object) -> dict[str, Any]:
    """``obj``'s summary as span attributes under ``prefix``, within the per-summary budget.

    Never raises (``summarize`` does not); empty when summaries are switched off.
    """
    if not SETTINGS.summaries:
        return {}
    summary = summarize(obj, max_features=SETTINGS.max_features, sample_size=SETTINGS.sample_size)
    summary = _within_budget(span_safe(summary), SETTINGS.summary_max_attributes)  # privacy rules first
    keys = _PREFIXED.get(prefix)
    if keys is None:
        keys = {k: prefix + k for k in TOP_LEVEL}
        if len(_PREFIXED) < 64:  # a handful of prefixes in practice; bounded whatever callers pass
            _PREFIXED[prefix] = keys
    return {keys.get(k) or prefix + k: v for k, v in summary.items()}


# Prefixed top-level summary keys, built once per prefix: the same string objects every request,
# with their hashes cached, instead of fresh concatenations. Feature keys vary, so are not kept.
_PREFIXED: dict[str, dict[str, str]] = {}


def record_summary(span: Span, prefix: str, obj: object) -> None:
    """Summarise ``obj`` under ``prefix`` (``ml.input.``/``ml.output.``) when the span records."""
    if not SETTINGS.summaries or not span.is_recording():
        return
    if type(span) is DeferredSpan and span.defer_summary(prefix, obj):
        return  # computed after the response (see _deferred.py)
    try:
        span.set_attributes(summary_attributes(prefix, obj))
    except Exception as exc:
        note_failure(span, f"summary {prefix.rstrip('.')}", exc)


def record_attributes(span: Span, attributes: Mapping[str, Any]) -> None:
    if not attributes or not span.is_recording():
        return
    try:
        span.set_attributes({k: v for k, v in attributes.items() if v is not None})
    except Exception as exc:
        note_failure(span, "set_attributes", exc)


def record_drift(span: Span, monitor: Any, obj: object) -> dict[str, Any] | None:
    """Score ``obj`` with a :class:`mltrace.DriftMonitor` and put the result on the span."""
    if monitor is None:
        return None
    try:
        result: dict[str, Any] = monitor.score(obj)
    except Exception as exc:
        note_failure(span, "drift score", exc)
        return None
    if span.is_recording():
        try:
            span.set_attributes(monitor.span_attributes(result))
        except Exception as exc:
            note_failure(span, "drift attributes", exc)
    return result


def record_drift_output(span: Span, monitor: Any, obj: object) -> None:
    observe = getattr(monitor, "observe_output", None)
    if observe is None:
        return
    try:
        observe(obj)
    except Exception as exc:
        note_failure(span, "drift output", exc)


def record_error(span: Span, exc: BaseException, *, repeat_stack: bool = True) -> None:
    """Status ERROR, an ``exception`` event and ``error.type``; the caller re-raises unchanged.

    ``repeat_stack=False`` (the stage decorators): when this exception was recorded on a span
    before, the event leaves its stack trace out. The same exception leaving nested stages (a
    recursive stage, stages calling stages) has its trace on the innermost span already;
    formatting it again per level cost 27 s for a RecursionError through 990 nested stages. The
    server span keeps the default and always gets the trace.
    """
    if not span.is_recording():
        return
    try:
        if _first_record(exc) or repeat_stack:
            redacted = exception_attributes(exc)  # the redact patterns apply to messages too (an email in a ValueError)
            span.record_exception(exc, attributes=redacted)
            message = redacted["exception.message"]
        else:  # an outer stage of the same exception: the stack was formatted once, on the innermost
            message = safe_text(str(exc)[:1024])
            span.add_event("exception", {"exception.type": type(exc).__name__, "exception.message": message})
        span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {message}"[:256]))
        span.set_attribute("error.type", _error_type(exc))
    except Exception as inner:  # pragma: no cover
        note_failure(span, "record_error", inner)


def _first_record(exc: BaseException) -> bool:
    """True the first time an exception object is recorded on a span (marked on the object)."""
    if getattr(exc, "_mltrace_recorded", False):
        return False
    with contextlib.suppress(Exception):  # an exception type that refuses attributes
        exc._mltrace_recorded = True  # type: ignore[attr-defined]
    return True


def _error_type(exc: BaseException) -> str:
    cls = type(exc)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
