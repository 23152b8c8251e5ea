"""Where the server span is made: ``MLTraceMiddleware``, a pure ASGI middleware.

Pure ASGI, not ``BaseHTTPMiddleware``: OpenTelemetry keeps its context in contextvars, which
BaseHTTPMiddleware's task boundary breaks. When OpenTelemetry's own FastAPI/ASGI instrumentation
(or FastAPI's native telemetry) already made the request's SERVER span, this middleware enriches
that span instead of making a second one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import semconv
from .._lifespan import run_lifespan
from .._settings import SETTINGS
from ..sampling._force import FORCE_ATTRIBUTE, force_requested
from . import _deferred
from ._record import note_failure, record_error, record_summary
from ._tracer import TRACER

if TYPE_CHECKING:
    from ..privacy import HttpTap

_SENSITIVE_QUERY = frozenset(
    {"sig", "signature", "token", "access_token", "api_key", "apikey", "key", "password", "secret",
     "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token", "X-Goog-Signature"}
)
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _is_server_span(span: Span) -> bool:
    """True for a live SERVER span made by another instrumentation for this request (the caller
    has checked that it records)."""
    return (
        getattr(span, "kind", None) is SpanKind.SERVER
        and getattr(span, "end_time", 1) is None
    )


def _redact_query(raw: bytes) -> str:
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    return urlencode([(k, "REDACTED" if k.lower() in _SENSITIVE_LOWER else v) for k, v in pairs])


_SENSITIVE_LOWER = frozenset(k.lower() for k in _SENSITIVE_QUERY)


def _request_attributes(scope: Scope, headers: Headers) -> dict[str, Any]:
    scheme = scope.get("scheme", "http")
    attrs: dict[str, Any] = {
        "http.request.method": scope.get("method", "_OTHER"),
        "url.path": scope.get("path", ""),
        "url.scheme": scheme,
    }
    if scope.get("query_string"):
        attrs["url.query"] = _redact_query(scope["query_string"])
    if scope.get("http_version"):
        attrs["network.protocol.version"] = scope["http_version"]
    host = headers.get("host")
    if host:
        name, _, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
        attrs["server.address"] = name or host
        attrs["server.port"] = int(port) if port.isdigit() else _DEFAULT_PORTS.get(scheme, 80)
    elif scope.get("server"):
        attrs["server.address"], attrs["server.port"] = scope["server"][0], scope["server"][1]
    client = scope.get("client")
    if client:
        attrs["client.address"] = client[0]
    agent = headers.get("user-agent")
    if agent:
        attrs["user_agent.original"] = agent[:256]
    return attrs


def _forced(headers: Headers) -> bool:
    """The force-trace header (off unless ``MLTRACE_FORCE_TRACE_HEADER`` names one) asks to keep this trace."""
    name = SETTINGS.force_trace_header
    return bool(name) and force_requested(headers.get(name), SETTINGS.force_trace_token)


def _payload_tap(span: Span, scope: Scope) -> HttpTap | None:
    """A raw-payload tap when ``configure(capture_payloads=...)`` turned capture on (redacted, by reference)."""
    capture = SETTINGS.payload_capture
    if capture is None:
        return None
    try:
        tap: HttpTap | None = capture.http_tap(span, scope)
    except Exception as exc:
        note_failure(span, "payload tap", exc)
        return None
    return tap


def _route_of(scope: Scope) -> str | None:
    route = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) else None


def _fastapi_operation_spans_off(scope: Scope) -> None:
    """Switch off FastAPI's per-operation spans (dependencies/endpoint/serialization) for this
    request, unless asked to keep them: they would sit between the server span and our stages and
    cost ~40 µs a request even when the request is sampled out; see docs/fastapi.md."""
    telemetry = scope.get("fastapi.telemetry")
    if telemetry is not None and not SETTINGS.fastapi_operation_spans and hasattr(telemetry, "tracer"):
        telemetry.tracer = None


class _BodyTap:
    """Collects up to ``limit`` bytes of a body passing through, then summarises it."""

    __slots__ = ("chunks", "limit", "size", "truncated")

    def __init__(self, limit: int) -> None:
        self.chunks: list[bytes] = []
        self.size = 0
        self.limit = limit
        self.truncated = False

    def feed(self, body: bytes) -> None:
        self.size += len(body)
        if self.size > self.limit:
            self.truncated = True
            self.chunks.clear()
        elif not self.truncated:
            self.chunks.append(body)

    def record(self, span: Span, prefix: str) -> None:
        if not span.is_recording():
            return
        try:
            span.set_attribute(prefix + "bytes", self.size)
            if self.truncated:
                span.set_attribute(prefix + "truncated", True)
                return
            raw = b"".join(self.chunks)
            if not raw:
                return
            try:
                obj: object = json.loads(raw)
            except (ValueError, UnicodeDecodeError):
                span.set_attribute(prefix + "kind", "unparsed")
                return
            record_summary(span, prefix, obj)
        except Exception as exc:
            note_failure(span, "body summary", exc)


class MLTraceMiddleware:
    """One server span per HTTP request, the trace id in the response, ml.* on the span.

    ``app.add_middleware(mltrace.MLTraceMiddleware)``. Response headers: ``traceresponse``
    (W3C Trace Context Level 3 draft) and ``X-Trace-Id`` (name configurable). Websocket and lifespan
    scopes pass straight through (lifespan messages too; span export is flushed before shutdown
    completes). Body summaries (never raw bodies) are opt-in.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        capture_request_body: bool | None = None,
        capture_response_body: bool | None = None,
        excluded_paths: Sequence[str] = (),
        trace_id_header: str | None = None,
        traceresponse: bool = True,
    ) -> None:
        self.app = app
        self.capture_request_body = capture_request_body
        self.capture_response_body = capture_response_body
        self.excluded_paths = frozenset(excluded_paths)
        header = trace_id_header if trace_id_header is not None else SETTINGS.trace_id_header
        self.trace_id_header = header.lower().encode("latin-1") if header else b""
        self.traceresponse = traceresponse

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            # Messages pass through unchanged; queued spans are flushed before the server is told
            # shutdown is complete (uvicorn's SIGTERM exit skips atexit).
            await run_lifespan(self.app, scope, receive, send)
            return
        if scope["type"] != "http" or scope.get("path") in self.excluded_paths:
            await self.app(scope, receive, send)
            return
        current = trace.get_current_span()
        if current.is_recording():
            if _is_server_span(current):
                _fastapi_operation_spans_off(scope)
                await self._enrich(current, scope, receive, send)
                return
        elif current.get_span_context().is_valid:
            # An instrumentation outside us started this request's span and sampled it out:
            # nothing to record, but the client still learns its trace id.
            _fastapi_operation_spans_off(scope)
            await self.app(scope, receive, self._headers_only(current, send))
            return
        await self._own(scope, receive, send)

    # -- helpers shared by both modes ---------------------------------------------------------
    def _response_headers(self, span: Span, message: Message) -> Message:
        ctx = span.get_span_context()
        if not ctx.is_valid:
            return message
        extra: list[tuple[bytes, bytes]] = []
        trace_id = format(ctx.trace_id, "032x")
        if self.traceresponse:
            value = f"00-{trace_id}-{format(ctx.span_id, '016x')}-{int(ctx.trace_flags):02x}"
            extra.append((b"traceresponse", value.encode("latin-1")))
        if self.trace_id_header:
            extra.append((self.trace_id_header, trace_id.encode("latin-1")))
        return {**message, "headers": [*message.get("headers", ()), *extra]}

    def _headers_only(self, span: Span, send: Send) -> Send:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = self._response_headers(span, message)
            await send(message)

        return send_with_headers

    def _taps(self, span: Span) -> tuple[_BodyTap | None, _BodyTap | None]:
        if not span.is_recording():
            return None, None
        req = self.capture_request_body
        res = self.capture_response_body
        req = SETTINGS.capture_request_body if req is None else req
        res = SETTINGS.capture_response_body if res is None else res
        limit = SETTINGS.max_body_bytes
        return (_BodyTap(limit) if req else None), (_BodyTap(limit) if res else None)

    def _wrap_receive(self, receive: Receive, span: Span, tap: _BodyTap | None) -> Receive:
        if tap is None:
            return receive

        async def tapped_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                tap.feed(message.get("body", b""))
                if not message.get("more_body", False):
                    tap.record(span, semconv.ML_REQUEST_BODY_PREFIX)
            return message

        return tapped_receive

    # -- another instrumentation made the server span: enrich it ------------------------------
    async def _enrich(self, span: Span, scope: Scope, receive: Receive, send: Send) -> None:
        if SETTINGS.force_trace_header and span.is_recording() and _forced(Headers(scope=scope)):
            span.set_attribute(FORCE_ATTRIBUTE, True)
        req_tap, res_tap = self._taps(span)
        payload = _payload_tap(span, scope)

        async def enriched_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = self._response_headers(span, message)
            elif res_tap is not None and message["type"] == "http.response.body":
                res_tap.feed(message.get("body", b""))
                if not message.get("more_body", False):
                    res_tap.record(span, semconv.ML_RESPONSE_BODY_PREFIX)
            await send(message)

        wrapped_receive = self._wrap_receive(receive, span, req_tap)
        # Deferred: the stages under that span are handed over when the app is done.
        deferred = _deferred.begin_enriched() if _deferred._enabled else None
        try:
            if payload is None:
                await self.app(scope, wrapped_receive, enriched_send)
                return
            try:
                await self.app(scope, payload.wrap_receive(wrapped_receive), payload.wrap_send(enriched_send))
            finally:
                payload.finish()
        finally:
            if deferred is not None:
                _deferred.leave(*deferred)

    # -- no server span yet: make one ---------------------------------------------------------
    async def _own(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = Headers(scope=scope)
        parent = propagate.extract(headers)
        method = scope.get("method", "HTTP")
        attributes = _request_attributes(scope, headers)
        if SETTINGS.force_trace_header and _forced(headers):
            attributes[FORCE_ATTRIBUTE] = True  # a start attribute, so ForceTraceSampler sees it
        deferred = None
        if _deferred._enabled:  # light spans now, SDK spans after the response (see _deferred.py)
            span, deferred = _deferred.start_request_span(method, parent, SpanKind.SERVER, attributes)
        else:
            span = TRACER.start_span(
                method,
                context=parent,
                kind=SpanKind.SERVER,
                attributes=attributes,
            )
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        deferred_token = _deferred.enter(deferred) if deferred is not None else None
        req_tap, res_tap = self._taps(span)
        payload = _payload_tap(span, scope)
        status: list[int] = []

        async def traced_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
                message = self._response_headers(span, message)
            elif res_tap is not None and message["type"] == "http.response.body":
                res_tap.feed(message.get("body", b""))
                if not message.get("more_body", False):
                    res_tap.record(span, semconv.ML_RESPONSE_BODY_PREFIX)
            await send(message)

        app_receive = self._wrap_receive(receive, span, req_tap)
        app_send: Send = traced_send
        if payload is not None:
            app_receive, app_send = payload.wrap_receive(app_receive), payload.wrap_send(traced_send)
        try:
            await self.app(scope, app_receive, app_send)
        except BaseException as exc:
            record_error(span, exc)
            raise
        finally:
            try:
                if payload is not None:
                    payload.finish()
                self._finish(span, scope, method, status)
            finally:
                span.end()
                otel_context.detach(token)
                if deferred is not None and deferred_token is not None:
                    _deferred.leave(deferred, deferred_token)

    @staticmethod
    def _finish(span: Span, scope: Scope, method: str, status: list[int]) -> None:
        if not span.is_recording():
            return
        route = _route_of(scope)
        if route:
            span.set_attribute("http.route", route)
            span.update_name(f"{method} {route}")
        if status:
            code = status[0]
            span.set_attribute("http.response.status_code", code)
            if code >= 500:
                span.set_attribute("error.type", str(code))
                span.set_status(Status(StatusCode.ERROR))
        elif not getattr(span, "status", None) or span.status.status_code is not StatusCode.ERROR:  # type: ignore[attr-defined]
            span.set_attribute("error.type", "incomplete_response")
            span.set_status(Status(StatusCode.ERROR))
