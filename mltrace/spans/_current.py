"""Reach the running stage from inside a decorated function."""

from __future__ import annotations

from opentelemetry import trace

from .. import semconv
from ._stage import Stage


def current_stage() -> Stage:
    """The current span as a :class:`Stage` (a no-op one outside any trace)."""
    return Stage(trace.get_current_span())


def record_lookup(*, hits: int | None = None, misses: int | None = None, keys: int | None = None) -> None:
    """Record a feature-store lookup's outcome on the current span (counts, never key values)."""
    attrs = {
        semconv.ML_FEATURE_STORE_HITS: hits,
        semconv.ML_FEATURE_STORE_MISSES: misses,
        semconv.ML_FEATURE_STORE_KEYS: keys,
    }
    current_stage().set_attributes({k: v for k, v in attrs.items() if v is not None})


def current_trace_id() -> str | None:
    """The current trace id as 32 hex digits, or ``None`` outside a trace."""
    ctx = trace.get_current_span().get_span_context()
    return format(ctx.trace_id, "032x") if ctx.is_valid else None
