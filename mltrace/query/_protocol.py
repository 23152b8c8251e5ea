"""What every trace source is: the :class:`TraceSource` protocol, the ``Progress`` callback, and
:func:`parse_duration` for the ``since`` windows they take.

A leaf module: the sources (``jaeger``, ``zipkin``, ``local``, ``prometheus``, ``_http``) import it,
and :mod:`mltrace.query._source` (which picks a source for a URL) imports the sources lazily, so
there is no import cycle between the factory and what it builds.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from .._errors import ConfigurationError
from ._model import Trace

Progress = Callable[[int], None]
"""Called with the number of traces fetched so far (for a progress display)."""


@runtime_checkable
class TraceSource(Protocol):
    """Where traces are read from. Times are seconds; ``since`` counts back from now."""

    url: str

    def services(self) -> list[str]:
        """Every service name the source has spans for."""
        ...

    def find_traces(
        self,
        service: str | None,
        since: float | None = None,
        limit: int = 100,
        min_duration: float | None = None,
        *,
        progress: Progress | None = None,
    ) -> list[Trace]:
        """Up to ``limit`` complete traces entered through ``service``, newest first."""
        ...

    def get_trace(self, trace_id: str) -> Trace:
        """One complete trace; raises :class:`TraceNotFound`."""
        ...

    def find_by_attribute(self, key: str, value: str, limit: int = 100) -> list[Trace]:
        """Traces with a span carrying ``key == value`` (e.g. an input fingerprint), newest first."""
        ...

    def close(self) -> None: ...


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")


def parse_duration(text: str | float | int | None) -> float | None:
    """``"15m"`` → 900.0 seconds (units ms, s, m, h, d, w; a bare number is seconds)."""
    if text is None or isinstance(text, int | float):
        return None if text is None else float(text)
    match = _DURATION.match(text)
    if not match:
        raise ConfigurationError(f"not a duration: {text!r} (try 30s, 15m, 2h, 7d)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]
