"""Jaeger's HTTP query API (``/api/services``, ``/api/traces``, ``/api/traces/{id}``), read into the model.

The only module that knows Jaeger's JSON: ``{"data": [...]}`` envelopes, spans with
``operationName``, ``references``, ``startTime``/``duration`` in µs, typed ``tags`` and a
``processes`` table that holds each span's service. Jaeger's ``/api/traces`` has no cursor and
(with the memory store) no order, so more traces than one page are fetched by splitting the time
window until each part's page comes back less than full (see ``_http.page_back``).
"""

from __future__ import annotations

import json
import time
from typing import Any

from .. import semconv
from .._errors import ConfigurationError
from ._errors import SourceUnavailable, TraceNotFound, UnknownService
from ._http import JsonApi, coerce, page_back
from ._model import Link, Span, Trace
from ._source import Progress

PAGE_SIZE = 500
DEFAULT_LOOKBACK_S = 7 * 86400.0
_STRING_KEYS = frozenset({semconv.ML_MODEL_VERSION, semconv.ML_MODEL_NAME, "service.version"})
_INTERNAL_SERVICES = frozenset({"jaeger", "jaeger-all-in-one", "jaeger-query", "jaeger-collector"})


def _tags(tags: list[dict[str, Any]] | None) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for tag in tags or ():
        key, value = tag.get("key"), tag.get("value")
        if not isinstance(key, str):
            continue
        # OTLP arrays arrive as JSON text in a string tag.
        if isinstance(value, str) and value[:1] == "[" and key not in _STRING_KEYS:
            value = coerce(value)
        out[key] = value
    return out


def _span(raw: dict[str, Any], processes: dict[str, Any]) -> Span:
    trace_id = str(raw["traceID"]).rjust(32, "0")
    tags = _tags(raw.get("tags"))
    refs = [r for r in raw.get("references") or () if str(r.get("traceID", "")).rjust(32, "0") == trace_id]
    parent_ref = next((r for r in refs if r.get("refType") == "CHILD_OF"), refs[0] if refs else None)
    parent = str(parent_ref["spanID"]) if parent_ref else None
    links = tuple(
        Link(str(r.get("traceID", "")).rjust(32, "0"), str(r.get("spanID", "")))
        for r in raw.get("references") or ()
        if r is not parent_ref
    )
    process = processes.get(raw.get("processID", ""), {})
    error = tags.pop("otel.status_code", None) == "ERROR" or tags.get("error") is True
    tags.pop("error", None)
    message = tags.pop("otel.status_description", None)
    kind = str(tags.pop("span.kind", "internal")).upper()
    tags.pop("otel.scope.name", None)
    tags.pop("otel.scope.version", None)
    return Span(
        trace_id=trace_id,
        span_id=str(raw["spanID"]),
        parent_id=parent,
        name=str(raw.get("operationName", "")),
        service=str(process.get("serviceName", "unknown_service")),
        kind=kind,
        start_us=int(raw.get("startTime", 0)),
        duration_us=int(raw.get("duration", 0)),
        attributes=tags,
        error=error,
        status_message=str(message) if message is not None else None,
        links=links,
        resource=_tags(process.get("tags")),
    )


def parse_trace(raw: dict[str, Any]) -> Trace:
    """One element of Jaeger's ``data`` array as a :class:`Trace`."""
    processes = raw.get("processes") or {}
    spans = [_span(s, processes) for s in raw.get("spans") or ()]
    return Trace.of(str(raw.get("traceID", spans[0].trace_id if spans else "")).rjust(32, "0"), spans)


class JaegerSource:
    """Traces from Jaeger's query service (``jaeger://host:16686``)."""

    def __init__(self, base_url: str, *, timeout: float = 10.0, page_size: int = PAGE_SIZE) -> None:
        self.api = JsonApi(base_url, "Jaeger", timeout=timeout)
        self.url = "jaeger://" + base_url.split("://", 1)[1]
        self.page_size = page_size

    def _data(self, path: str, params: dict[str, Any] | None = None, *, not_found: str | None = None) -> Any:
        body = self.api.get(path, params, not_found=not_found)
        if not isinstance(body, dict) or "data" not in body:
            raise SourceUnavailable(f"{self.api.base_url}{path} did not answer like Jaeger's query API")
        errors = body.get("errors") or []
        if errors and not_found is not None and any(e.get("code") == 404 for e in errors):
            raise TraceNotFound(not_found)
        return body["data"] or []

    def services(self) -> list[str]:
        return sorted(str(s) for s in self._data("/api/services"))

    def _check_service(self, service: str) -> None:
        known = self.services()
        if service not in known:
            raise UnknownService(service, [s for s in known if s not in _INTERNAL_SERVICES])

    def _page(self, service: str, start_us: int, end_us: int, limit: int, min_duration: float | None,
              tags: dict[str, str] | None = None) -> list[Trace]:
        params: dict[str, Any] = {"service": service, "start": start_us, "end": end_us, "limit": limit}
        if min_duration is not None:
            params["minDuration"] = f"{int(min_duration * 1e6)}us"
        if tags:
            params["tags"] = json.dumps(tags)
        return [parse_trace(t) for t in self._data("/api/traces", params)]

    def _paged(self, service: str, since: float | None, limit: int, min_duration: float | None,
               progress: Progress | None, tags: dict[str, str] | None = None) -> list[Trace]:
        end = int(time.time() * 1e6)
        start = end - int((since if since is not None else DEFAULT_LOOKBACK_S) * 1e6)
        return page_back(
            lambda lo, hi, n: self._page(service, lo, hi, n, min_duration, tags),
            start=start, end=end, limit=limit, page_size=self.page_size, unit_us=1, progress=progress,
        )

    def find_traces(
        self,
        service: str | None,
        since: float | None = None,
        limit: int = 100,
        min_duration: float | None = None,
        *,
        progress: Progress | None = None,
    ) -> list[Trace]:
        if not service:
            known = ", ".join(s for s in self.services() if s not in _INTERNAL_SERVICES)
            raise ConfigurationError(f"Jaeger searches one service at a time: pass a service (known: {known})")
        self._check_service(service)
        return self._paged(service, since, limit, min_duration, progress)

    def get_trace(self, trace_id: str) -> Trace:
        tid = trace_id.strip().lower()
        data = self._data(f"/api/traces/{tid}", not_found=f"trace {trace_id} is not in Jaeger at {self.api.base_url}")
        if not data:
            raise TraceNotFound(f"trace {trace_id} is not in Jaeger at {self.api.base_url}")
        return parse_trace(data[0])

    def find_by_attribute(self, key: str, value: str, limit: int = 100) -> list[Trace]:
        """Jaeger searches tags within one service at a time, so every service is asked."""
        found: dict[str, Trace] = {}
        for service in self.services():
            if service in _INTERNAL_SERVICES:
                continue
            for t in self._paged(service, None, limit, None, None, tags={key: value}):
                found.setdefault(t.trace_id, t)
        return sorted(found.values(), key=lambda t: t.start_us, reverse=True)[:limit]

    def close(self) -> None:
        self.api.close()
