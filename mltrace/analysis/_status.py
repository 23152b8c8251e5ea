"""The HTTP status of a trace, and counting statuses by class (``show`` and ``stats``).

A 422 is not a span error in OpenTelemetry's HTTP conventions (server spans are ERROR only for
5xx), so "errors" alone said "0 errors" over 57 responses with status 422: statuses are counted
apart, 4xx (the client's request was refused) and 5xx (the server failed).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, cast

from ..query import Span, Trace
from ._reports import StatusCounts

STATUS_KEYS = ("http.response.status_code", "http.status_code")  # current semconv, then the pre-1.20 name


def span_status(span: Span) -> int | None:
    for key in STATUS_KEYS:
        value = span.attributes.get(key)
        if value is None:
            continue
        try:
            return int(value)
        except (TypeError, ValueError):
            return None
    return None


def http_status(trace: Trace) -> int | None:
    """The status the server answered: the root's, else the first SERVER span's; None if not HTTP."""
    if not trace.spans:
        return None
    status = span_status(trace.root)
    if status is not None:
        return status
    for span in trace.spans:
        if span.kind == "SERVER" and (status := span_status(span)) is not None:
            return status
    return None


def status_counts(traces: list[Trace]) -> StatusCounts:
    """``{"2xx": n, "3xx": n, "4xx": n, "5xx": n, "none": n, "codes": {"422": n, ...}}``."""
    codes = Counter(http_status(t) for t in traces)
    out: dict[str, Any] = {f"{c}xx": 0 for c in range(2, 6)}
    out["none"] = codes.pop(None, 0)
    for code, n in codes.items():
        assert code is not None
        cls = f"{code // 100}xx"
        out[cls] = out.get(cls, 0) + n
    out["codes"] = {str(code): n for code, n in sorted(codes.items(), key=lambda kv: -kv[1])}
    return cast(StatusCounts, out)  # keys built in a loop; "1xx" only when such a code was seen
