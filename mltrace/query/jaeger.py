"""Jaeger's HTTP query API (``/api/v3/traces`` with OTLP JSON, else ``/api/traces``), read into the model.

Searches go to api_v3 first (Jaeger v2, and v1 since 1.35): OTLP JSON, one object per span with
typed attribute values, 4-6x faster to read than the v1 JSON for the same traces
(benchmarks/bench_cli.py jaeger), decoded by :mod:`._otlp_json` and read in slices of the window
(:meth:`JaegerSource._v3_window`). Where api_v3 is not served, or refuses the search depth asked
(a memory store keeping fewer traces than a slice asks for), the v1 API below is used.
:meth:`JaegerSource.trace_window` reads a whole window for ``slow``, ``stats`` and ``drift``.

The only module that knows Jaeger's JSON: ``{"data": [...]}`` envelopes, spans with
``operationName``, ``references``, ``startTime``/``duration`` in µs, typed ``tags`` and a
``processes`` table that holds each span's service. Jaeger's ``/api/traces`` has no cursor and
(with the memory store) no order, so more traces than one page are fetched by splitting the time
window until each part's page comes back less than full (see ``_http.page_back``).
"""

from __future__ import annotations

import base64
import contextlib
import functools
import json
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import numpy as np

from .. import semconv
from .._errors import ConfigurationError
from ._errors import SourceUnavailable, TraceNotFound, UnknownService
from ._http import JsonApi, coerce, page_back
from ._model import Link, Span, Trace
from ._otlp_json import spans_by_trace
from ._protocol import Progress
from .local import TraceWindow

PAGE_SIZE = 500


class _NoV3(Exception):
    """This Jaeger does not serve api_v3 (the v1 API is used instead)."""
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


# -- api_v3: OTLP JSON -------------------------------------------------------------------------
_KINDS = ("INTERNAL", "INTERNAL", "SERVER", "CLIENT", "PRODUCER", "CONSUMER")
# The first request asks for the whole window with this many traces at most: a window that holds
# fewer is one request; one that holds more gives the density the slices are planned from.
_PROBE = 500
# Traces a slice is planned to hold: _SLICE (~4.5 MB of OTLP JSON for the bench's traces) at first,
# then an eighth of what has been read, up to _SLICE_MAX. Each request costs Jaeger's memory store
# a scan of every trace it holds (0.12-0.2 s at 100,000), so a large window takes fewer, larger
# slices: 100,000 traces in ~30 requests instead of ~70.
_SLICE = 1_500
_SLICE_MAX = 5_000
_SLICE_ASK = 2  # traces asked per slice, times the planned ones: a slice this full is split
_AHEAD = 2  # slices downloading while one is decoded (Jaeger and the CLI share the cores)


class _Prefetch:
    """One HTTP request on a daemon thread: a Ctrl-C in the main thread ends the command at once
    (a pool's threads would be joined at exit, waiting for the download to finish)."""

    def __init__(self, fetch: Callable[[], bytes | None]) -> None:
        self._fetch = fetch
        self._done = threading.Event()
        self._value: bytes | None = None
        self._error: BaseException | None = None
        threading.Thread(target=self._run, name="mltrace-jaeger-fetch", daemon=True).start()

    def _run(self) -> None:
        try:
            self._value = self._fetch()
        except BaseException as exc:  # handed to the thread that waits for the result
            self._error = exc
        finally:
            self._done.set()

    def result(self) -> bytes | None:
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value

    def abandon(self) -> None:
        """Not needed after all: its body is dropped when it arrives."""
        self._value = None


def _otlp_id(raw: Any, width: int) -> str:
    text = str(raw or "")
    if len(text) != width and text:  # the proto3 JSON mapping writes bytes as base64
        with contextlib.suppress(ValueError):
            text = base64.b64decode(text).hex()
    return text.lower().rjust(width, "0")


def _otlp_value(v: dict[str, Any]) -> Any:
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "doubleValue" in v:
        return float(v["doubleValue"])
    if "boolValue" in v:
        return bool(v["boolValue"])
    if "arrayValue" in v:
        return [_otlp_value(x) for x in (v["arrayValue"].get("values") or ())]
    if "kvlistValue" in v:
        return json.dumps(_otlp_attrs(v["kvlistValue"].get("values")), separators=(",", ":"))
    if "bytesValue" in v:
        return str(v["bytesValue"])
    return None


def _otlp_attrs(raw: list[dict[str, Any]] | None) -> dict[str, Any]:
    return {a["key"]: _otlp_value(a.get("value") or {}) for a in raw or () if "key" in a}


def _status_error(status: dict[str, Any] | None) -> tuple[bool, str | None]:
    if not status:
        return False, None
    code = status.get("code")
    return code in (2, "STATUS_CODE_ERROR"), status.get("message") or None


def parse_otlp(body: dict[str, Any]) -> dict[str, list[Span]]:
    """Spans of an api_v3 answer (``{"result": {"resourceSpans": [...]}}``), grouped by trace id.

    The straightforward decoder, kept as the reference the search path's faster one
    (:func:`._otlp_json.spans_by_trace`) is tested against over real Jaeger answers
    (tests/e2e/test_jaeger_otlp_json.py): the same spans, field for field."""
    out: dict[str, list[Span]] = {}
    result = body.get("result") or {}
    for rs in result.get("resourceSpans") or ():
        resource = _otlp_attrs((rs.get("resource") or {}).get("attributes"))
        service = str(resource.get("service.name", "unknown_service"))
        for ss in rs.get("scopeSpans") or ():
            for raw in ss.get("spans") or ():
                trace_id = _otlp_id(raw.get("traceId"), 32)
                parent = raw.get("parentSpanId")
                start_ns = int(raw.get("startTimeUnixNano") or 0)
                end_ns = int(raw.get("endTimeUnixNano") or start_ns)
                error, message = _status_error(raw.get("status"))
                kind = raw.get("kind") or 1
                events = tuple(
                    {"name": str(e.get("name", "")), "time_us": int(e.get("timeUnixNano") or 0) // 1000,
                     "attributes": _otlp_attrs(e.get("attributes"))}
                    for e in raw.get("events") or ()
                )
                links = tuple(
                    Link(_otlp_id(x.get("traceId"), 32), _otlp_id(x.get("spanId"), 16),
                         _otlp_attrs(x.get("attributes")))
                    for x in raw.get("links") or ()
                )
                span = Span(
                    trace_id, _otlp_id(raw.get("spanId"), 16), _otlp_id(parent, 16) if parent else None,
                    str(raw.get("name", "")), service,
                    _KINDS[kind] if isinstance(kind, int) and 0 <= kind < len(_KINDS)
                    else str(kind).removeprefix("SPAN_KIND_").replace("UNSPECIFIED", "INTERNAL"),
                    start_ns // 1000, max(0, end_ns - start_ns) // 1000, _otlp_attrs(raw.get("attributes")),
                    error, message, links, resource, events,
                )
                out.setdefault(trace_id, []).append(span)
    return out


def _rfc3339(us: int) -> str:
    seconds, micros = divmod(us, 1_000_000)
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{micros:06d}Z"


def _decode_stream(text: str) -> list[dict[str, Any]]:
    """api_v3 streams: one JSON object per chunk, concatenated (often just one)."""
    decoder = json.JSONDecoder()
    out, i, n = [], 0, len(text)
    while i < n:
        while i < n and text[i].isspace():
            i += 1
        if i >= n:
            break
        obj, i = decoder.raw_decode(text, i)
        if isinstance(obj, dict):
            out.append(obj)
    return out


class JaegerSource:
    """Traces from Jaeger's query service (``jaeger://host:16686``)."""

    def __init__(self, base_url: str, *, timeout: float = 10.0, page_size: int = PAGE_SIZE) -> None:
        self.api = JsonApi(base_url, "Jaeger", timeout=timeout)
        self.url = "jaeger://" + base_url.split("://", 1)[1]
        self.page_size = page_size
        self._window: dict[str, Trace] = {}  # the traces of the last trace_window() read, for load()

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

    _v3: bool | None = None  # api_v3 served? (asked once)

    def _v3_get(self, service: str, lo: int, hi: int, limit: int, min_duration: float | None) -> bytes | None:
        """The body of one api_v3 search (``None``: no traces in the window). Only HTTP: safe to run
        in a worker thread (httpx's client is), so the next window downloads while this one decodes."""
        params: dict[str, Any] = {
            "query.service_name": service,
            "query.start_time_min": _rfc3339(lo),
            "query.start_time_max": _rfc3339(hi),
            "query.num_traces": limit,
        }
        if min_duration is not None:
            params["query.duration_min"] = f"{min_duration:.6f}s"
        self.api.requests += 1
        try:
            response = self.api.client.get("/api/v3/traces", params=params)
        except httpx.HTTPError as exc:
            raise SourceUnavailable(
                f"cannot reach Jaeger at {self.api.base_url} ({type(exc).__name__}: {exc}); is it running?"
            ) from None
        if response.status_code in (404, 405, 501):
            if response.status_code == 404 and "no traces" in response.text.lower():
                return None  # api_v3's answer to an empty window
            raise _NoV3
        if response.status_code == 500 and "search depth" in response.text.lower():
            raise _NoV3  # "search depth must be ... less than max traces": a small memory store
        if response.status_code >= 400:
            raise SourceUnavailable(
                f"Jaeger at {self.api.base_url} answered {response.status_code} to /api/v3/traces: "
                f"{response.text.strip()[:200]}"
            )
        return response.content

    def _v3_traces(self, body: bytes | None) -> list[Trace]:
        """An api_v3 answer's traces (:mod:`._otlp_json`)."""
        if body is None:
            return []
        grouped: dict[str, list[Span]] = {}
        try:
            try:  # one object (the usual answer): json.loads on the bytes, ~40% faster than raw_decode
                chunks = [json.loads(body)]
            except ValueError:
                chunks = _decode_stream(body.decode("utf-8", "replace"))
        except ValueError:
            raise SourceUnavailable(f"{self.api.base_url}/api/v3/traces did not answer with JSON") from None
        for chunk in chunks:
            if "error" in chunk and "result" not in chunk:
                if "no traces" in str(chunk["error"]).lower():
                    continue
                raise SourceUnavailable(f"Jaeger api_v3 error: {str(chunk['error'])[:200]}")
            spans_by_trace(chunk, grouped)
        return [Trace.of(tid, spans) for tid, spans in grouped.items()]

    def _v3_window(self, service: str, start: int, end: int, limit: int, min_duration: float | None,
                   progress: Progress | None) -> list[Trace]:
        """The newest ``limit`` traces in ``[start, end]`` (µs) from api_v3, read in slices of the window.

        One request where the window holds few traces (a page that is not full holds its whole
        window). Else the window is walked back from its end in slices sized from the traces seen
        so far (``_SLICE`` to ``_SLICE_MAX`` traces each), ``_AHEAD`` slices downloading in threads
        while the main thread decodes the previous one: Jaeger serialises and sends the next slice
        while Python decodes this one, and memory holds a few slices' JSON, never the whole
        window's (100,000 traces are ~300 MB of OTLP JSON). A slice that comes back full may hold
        more: it is split in four and its parts read first (``_http.page_back``'s rule), so the
        answer is right whatever order the store answers in; fetching stops once the slices read,
        all newer than any not yet read, hold ``limit`` traces.
        """
        ask = min(limit + 1, _PROBE)
        first = self._v3_traces(self._v3_get(service, start, end, ask, min_duration))
        if progress is not None:
            progress(len(first))
        if len(first) < ask:  # the whole window (limit + 1 asked: exactly ``limit`` is not full)
            return sorted(first, key=lambda t: t.start_us, reverse=True)[:limit]
        # Density from the first page: a store that answers newest first (Jaeger's memory and
        # Badger stores) gives the newest traces' span of time; one that answers in another
        # order gives a lower bound, and full slices are split below.
        found: dict[str, Trace] = {t.trace_id: t for t in first}
        starts = [t.start_us for t in first]
        # Over the page's own span of time, not up to the window's end: a service idle for the
        # last minutes would otherwise look sparse, and its first slice come back full.
        density = len(first) / max(1, max(starts) - min(starts) + 1)  # traces per µs
        # The first slice reaches from the window's end past the first page's oldest trace (it
        # holds the page's traces again, which are cheap to fetch twice: a page of a store that
        # answers newest first holds the newest traces, and the time after them is empty).
        cursor = max(start, min(starts) - int((_SLICE - len(first)) / density))
        # windows to read, newest first: (lo, hi, traces asked)
        pending: deque[tuple[int, int, int]] = deque([(cursor, end, _SLICE_ASK * _SLICE)])
        inflight: dict[tuple[int, int, int], _Prefetch] = {}

        def plan() -> None:
            nonlocal cursor  # every window from cursor to end is planned
            target = min(_SLICE_MAX, max(_SLICE, len(found) // 8))
            lo = max(start, cursor - max(1, int(target / max(density, 1e-12))))
            pending.append((lo, cursor - 1, _SLICE_ASK * target))
            cursor = lo

        try:
            while True:
                while cursor > start and len(pending) <= _AHEAD:
                    plan()
                if not pending:
                    break
                for w in list(pending)[: _AHEAD + 1]:
                    if w not in inflight:
                        inflight[w] = _Prefetch(functools.partial(self._v3_get, service, *w, min_duration))
                lo, hi, asked = window = pending.popleft()
                page = self._v3_traces(inflight.pop(window).result())
                for t in page:
                    found.setdefault(t.trace_id, t)
                if progress is not None:
                    progress(len(found))
                if len(page) >= asked and hi - lo >= 4:
                    cuts = [lo + (hi - lo + 1) * i // 4 for i in range(4)] + [hi + 1]
                    pending.extendleft((cuts[i], cuts[i + 1] - 1, asked) for i in range(4))  # newest ends first
                    continue
                # The next slices' width from this one's density over its traces' span of time
                # (a slice that is half gap is not half as dense); after an empty slice, 4x wider at
                # most: an idle hour before a busy one must not make the next slice the rest.
                if len(page) >= 2:
                    times = [t.start_us for t in page]
                    density = len(page) / max(1, max(times) - min(times) + 1)
                else:
                    density /= 4
                if len(found) >= limit and sum(1 for t in found.values() if t.start_us >= lo) >= limit:
                    break
        finally:
            for fetch in inflight.values():
                fetch.abandon()
        return sorted(found.values(), key=lambda t: t.start_us, reverse=True)[:limit]

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
        if not tags and self._v3 is not False:
            try:
                found = self._v3_window(service, start, end, limit, min_duration, progress)
                self._v3 = True
                return found
            except _NoV3:
                self._v3 = False
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

    def trace_window(
        self,
        service: str | None,
        since: float | None = None,
        min_duration: float | None = None,
        *,
        progress: Progress | None = None,
    ) -> TraceWindow:
        """Every trace of ``service`` in the last ``since`` seconds, so that ``slow``, ``stats`` and
        ``drift`` count and rank the whole window asked for and analyse a uniform sample of it when
        it holds more than ``--scan`` (as over the local store; issue 14), not the newest ``--scan``.

        Jaeger has no cheaper listing than the traces themselves, so the whole window is read (in
        slices, see :meth:`_v3_window`) and kept for :meth:`load`: the cost of the window, not of
        ``--scan`` (100,000 traces: see docs/cli.md for the time and memory)."""
        if not service:
            known = ", ".join(s for s in self.services() if s not in _INTERNAL_SERVICES)
            raise ConfigurationError(f"Jaeger searches one service at a time: pass a service (known: {known})")
        self._check_service(service)
        traces = self._paged(service, since, sys.maxsize, min_duration, progress)
        self._window = {t.trace_id: t for t in traces}
        return TraceWindow(
            [t.trace_id for t in traces],
            np.fromiter((t.start_us for t in traces), dtype=np.int64, count=len(traces)),
            np.fromiter((t.duration_ms for t in traces), dtype=np.float64, count=len(traces)),
        )

    def load(self, trace_ids: list[str], progress: Progress | None = None) -> list[Trace]:
        """These traces in full, in this order: from the last :meth:`trace_window` read, else
        asked for one by one (those no longer in Jaeger left out)."""
        out = []
        for i, tid in enumerate(trace_ids):
            trace = self._window.get(tid)
            if trace is None:
                with contextlib.suppress(TraceNotFound):
                    trace = self.get_trace(tid)
            if trace is not None:
                out.append(trace)
            if progress is not None and i % 1000 == 999:
                progress(i + 1)
        return out

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
