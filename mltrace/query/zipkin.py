"""Zipkin's v2 API (``/api/v2/services``, ``/api/v2/traces``, ``/api/v2/trace/{id}``), read into the model.

The only module that knows Zipkin's JSON: spans with ``id``/``parentId``, ``timestamp`` and
``duration`` in µs, ``localEndpoint.serviceName``, an optional ``kind`` (absent = internal) and
string-valued ``tags`` (numbers, booleans and arrays are turned back into JSON types here).
Zipkin lower-cases span and service names and keeps no links. OpenTelemetry's Zipkin exporter
copies resource attributes into every span's tags; those go to ``Span.resource``.

:meth:`ZipkinSource.trace_window` reads a whole window for ``slow``, ``stats`` and ``drift`` (issue 14):
``/api/v2/traces`` has no cursor, so the window is walked back from its end in time slices, and a
slice whose answer comes back full is split in four and its parts read, newest first
(``_http.page_back``, the rule Jaeger's v1 reads use), so the answer is right whatever order the
server keeps its traces in.
"""

from __future__ import annotations

import sys
import time
from typing import Any, cast

from .. import semconv
from ._errors import TraceNotFound, UnknownService
from ._http import JsonApi, coerce, page_back
from ._model import Span, Trace
from ._protocol import Progress
from ._windowed import load_kept, window_of
from .local import TraceWindow

PAGE_SIZE = 500
# Traces asked per slice when a whole window is read: Zipkin's answer has no cursor, and a slice
# that comes back this full is split in four. Larger slices mean fewer requests (each one makes
# Zipkin's memory store walk every trace it holds); 2,000 of the toy app's traces are ~6 MB of JSON.
_SLICE = 2_000
DEFAULT_LOOKBACK_S = 7 * 86400.0
_STRING_KEYS = frozenset(
    {semconv.ML_MODEL_VERSION, semconv.ML_MODEL_NAME, "service.version", "ml.input.fingerprint", "ml.drift.reference"}
)
_RESOURCE_PREFIXES = ("service.", "telemetry.", "host.", "process.", "os.", "container.", "k8s.")
_RESOURCE_LIKE = (
    semconv.ML_MODEL_NAME, semconv.ML_MODEL_VERSION, "deployment.environment", "deployment.environment.name",
    "cloud.region", "cloud.provider",
)
_DROPPED = frozenset({"otel.library.name", "otel.library.version", "otel.scope.name", "otel.scope.version"})


def _span(raw: dict[str, Any]) -> Span:
    tags: dict[str, Any] = {}
    resource: dict[str, Any] = {}
    for key, value in (raw.get("tags") or {}).items():
        if key in _DROPPED:
            continue
        typed = value if key in _STRING_KEYS or not isinstance(value, str) else coerce(value)
        (resource if key.startswith(_RESOURCE_PREFIXES) else tags)[key] = typed
    status = tags.pop("otel.status_code", None)
    message = tags.pop("error", None)
    tags.pop("otel.status_description", None)
    return Span(
        trace_id=str(raw.get("traceId", "")).rjust(32, "0"),
        span_id=str(raw.get("id", "")),
        parent_id=raw.get("parentId"),
        name=str(raw.get("name", "")),
        service=str((raw.get("localEndpoint") or {}).get("serviceName", "unknown_service")),
        kind=str(raw.get("kind", "INTERNAL")).upper(),
        start_us=int(raw.get("timestamp", 0)),
        duration_us=int(raw.get("duration", 0)),
        attributes=tags,
        error=status == "ERROR" or message is not None,
        status_message=str(message) if message not in (None, True, "") else None,
        resource=resource,
    )


def _lift_resource(spans: list[Span]) -> None:
    """Move resource-like tags (model name/version, host, ...) that every span of a service carries
    with the same value from the span's attributes to its resource: OpenTelemetry's Zipkin
    exporter copies resource attributes onto every span, and Zipkin keeps no resource."""
    by_service: dict[str, list[Span]] = {}
    for s in spans:
        by_service.setdefault(s.service, []).append(s)
    for group in by_service.values():
        if len(group) < 2:
            continue
        first = group[0].attributes
        shared = [
            k for k in _RESOURCE_LIKE
            if k in first and all(k in s.attributes and s.attributes[k] == first[k] for s in group)
        ]
        for s in group:
            attrs, resource = cast(dict[str, Any], s.attributes), cast(dict[str, Any], s.resource)
            for k in shared:
                resource[k] = attrs.pop(k)


def parse_trace(raw: list[dict[str, Any]]) -> Trace:
    """One Zipkin trace (a list of spans) as a :class:`Trace`; a span reported twice (client
    and server halves sharing an id) keeps its first half."""
    spans: dict[str, Span] = {}
    for item in raw:
        s = _span(item)
        spans.setdefault(s.span_id, s)
    values = list(spans.values())
    _lift_resource(values)
    return Trace.of(values[0].trace_id if values else "", values)


class ZipkinSource:
    """Traces from a Zipkin server (``zipkin://host:9411``)."""

    def __init__(self, base_url: str, *, timeout: float = 10.0, page_size: int = PAGE_SIZE) -> None:
        self.api = JsonApi(base_url, "Zipkin", timeout=timeout)
        self.url = "zipkin://" + base_url.split("://", 1)[1]
        self.page_size = page_size
        self._window: dict[str, Trace] = {}  # the traces of the last trace_window() read, for load()

    def services(self) -> list[str]:
        data = self.api.get("/api/v2/services")
        return sorted(str(s) for s in data) if isinstance(data, list) else []

    def _check_service(self, service: str) -> str:
        known = self.services()
        name = service.lower()  # Zipkin stores service names lower-cased
        if name not in known:
            raise UnknownService(service, known)
        return name

    def _paged(self, params: dict[str, Any], since: float | None, limit: int, progress: Progress | None,
               page_size: int | None = None) -> list[Trace]:
        end_ms = int(time.time() * 1000)
        start_ms = end_ms - int((since if since is not None else DEFAULT_LOOKBACK_S) * 1000)

        def fetch(lo: int, hi: int, n: int) -> list[Trace]:
            # The milliseconds lo..hi, whole: Zipkin keeps a trace whose root timestamp (µs) lies in
            # [(endTs - lookback) * 1000, endTs * 1000], so endTs = hi would leave out a trace that
            # began within millisecond hi, after its first µs, from every slice (3 of 150 lost over a
            # real Zipkin, tests/e2e/test_zipkin_window.py). One at exactly (hi + 1) * 1000 µs comes
            # in twice and is kept once. This also keeps lookback above 0, which Zipkin refuses.
            query = {**params, "endTs": hi + 1, "lookback": hi + 1 - lo, "limit": n}
            return [parse_trace(t) for t in self.api.get("/api/v2/traces", query) or () if t]

        return page_back(fetch, start=start_ms, end=end_ms, limit=limit, page_size=page_size or self.page_size,
                         unit_us=1000, progress=progress)

    def find_traces(
        self,
        service: str | None,
        since: float | None = None,
        limit: int = 100,
        min_duration: float | None = None,
        *,
        progress: Progress | None = None,
    ) -> list[Trace]:
        params: dict[str, Any] = {}
        if service:
            params["serviceName"] = self._check_service(service)
        if min_duration is not None:
            params["minDuration"] = int(min_duration * 1e6)
        return self._paged(params, since, limit, progress)

    def trace_window(
        self,
        service: str | None,
        since: float | None = None,
        min_duration: float | None = None,
        *,
        progress: Progress | None = None,
    ) -> TraceWindow:
        """Every trace of ``service`` (every service when ``None``) in the last ``since`` seconds, so
        that ``slow``, ``stats`` and ``drift`` count and rank the whole window asked for and analyse
        a uniform sample of it when it holds more than ``--scan`` (issue 14), not the newest ``--scan``.

        Zipkin has no cheaper listing than the traces themselves, so the whole window is read, in
        slices of up to ``_SLICE`` traces walked back from its end (``progress`` after each; a
        Ctrl-C between or during requests ends the read), and kept for :meth:`load`: the cost of
        the window, not of ``--scan``."""
        params: dict[str, Any] = {}
        if service:
            params["serviceName"] = self._check_service(service)
        if min_duration is not None:
            params["minDuration"] = int(min_duration * 1e6)
        self._window = {}  # a previous window's traces are not kept while this one is read
        traces = self._paged(params, since, sys.maxsize, progress, page_size=_SLICE)
        self._window = {t.trace_id: t for t in traces}
        return window_of(traces)

    def load(self, trace_ids: list[str], progress: Progress | None = None) -> list[Trace]:
        """These traces in full, in this order: from the last :meth:`trace_window` read, else
        asked for one by one (those no longer in Zipkin left out)."""
        return load_kept(self._window, trace_ids, self.get_trace, progress)

    def get_trace(self, trace_id: str) -> Trace:
        tid = trace_id.strip().lower()
        message = f"trace {trace_id} is not in Zipkin at {self.api.base_url}"
        data = self.api.get(f"/api/v2/trace/{tid}", not_found=message)
        if not data:
            raise TraceNotFound(message)
        return parse_trace(data)

    def find_by_attribute(self, key: str, value: str, limit: int = 100) -> list[Trace]:
        return self._paged({"annotationQuery": f"{key}={value}"}, None, limit, None)

    def close(self) -> None:
        self.api.close()
