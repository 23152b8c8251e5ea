"""Where the server span is made: ``MLTraceMiddleware``, a pure ASGI middleware.

Pure ASGI, not ``BaseHTTPMiddleware``: OpenTelemetry keeps its context in contextvars, which
BaseHTTPMiddleware's task boundary breaks. When OpenTelemetry's own FastAPI/ASGI instrumentation
(or FastAPI's native telemetry) already made the request's SERVER span, this middleware enriches
that span instead of making a second one.

A served request's context never outlives it. asyncio copies the current context into every
callback it schedules, and uvicorn (h11 and httptools) re-registers the connection's socket reader
from inside ``receive()`` when it resumes reading a body over its 64 KiB buffer, and starts a
pipelined request's task from inside ``send()``: whatever context is current in those calls becomes
the context of every later request on that keep-alive connection. Bodies 10, 10, 200000, 10, 10, 10
through one client gave 3 trace ids for 6 requests. So the server's ``receive``/``send`` are called
with the context this middleware was entered with, never the request's; and a context that still
carries a request mltrace already finished (or an SDK span that has ended) is recognised as leaked
and ignored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from typing import TYPE_CHECKING

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk import trace as sdk_trace
from opentelemetry.trace import INVALID_SPAN, Span, SpanContext, SpanKind, Status, StatusCode
from starlette.datastructures import Headers
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .. import semconv
from .._settings import SETTINGS
from ..sampling import FORCE_ATTRIBUTE, force_requested
from . import _deferred
from ._bodies import BodyTap, Exchange
from ._guarded import note_failure, record_error
from ._inbound import cap_propagator_logs, inbound_headers, propagated_headers, request_attributes
from ._lifespan import run_lifespan
from ._routes import route_template
from ._tracer import TRACER

if TYPE_CHECKING:
    from ..privacy import HttpTap

_SERVED_KEY = otel_context.create_key("mltrace-served-request")


_SPAN_KEY = _deferred.SPAN_KEY
_NONE_WANTED: frozenset[bytes] = frozenset()
_attach, _detach = otel_context.attach, otel_context.detach  # module globals: one lookup less a call
# What an app raises because its client went away (Starlette's ClientDisconnect, an ASGI 2.4
# server's OSError, a cancelled stream): after a disconnect was seen, not an error of the service.
_GONE = (ClientDisconnect, OSError, asyncio.CancelledError)
# an ASGI scope key (not an attribute): set on the scope, so a nested MLTraceMiddleware (a mounted
# sub-app's) passes through
_SCOPE_KEY = "mltrace_served"
_FASTAPI_KEY = "fastapi.telemetry"  # present in the scope: a mounted FastAPI app adds no telemetry of its own


class _Served:
    """Carried in the context of a request this middleware serves; ``done`` once it is over."""

    __slots__ = ("done",)

    def __init__(self) -> None:
        self.done = False


def _is_server_span(span: Span) -> bool:
    """True for a live SERVER span made by another instrumentation for this request (the caller
    has checked that it records)."""
    return (
        getattr(span, "kind", None) is SpanKind.SERVER
        and getattr(span, "end_time", 1) is None
    )


def _entry_context() -> tuple[Context, Span]:
    """The context to serve the request in and the span to consider current there: the current
    context and span; an empty context when the current one leaked from an earlier request
    (mltrace finished it, or its span has ended); no span (INVALID_SPAN) when the request is
    served in-process inside another one mltrace serves (it gets its own server span, a child
    of the current span there)."""
    ctx = otel_context.get_current()
    if not ctx:
        return ctx, INVALID_SPAN
    served = ctx.get(_SERVED_KEY)
    if isinstance(served, _Served):
        return (Context(), INVALID_SPAN) if served.done else (ctx, INVALID_SPAN)
    current = trace.get_current_span(ctx)
    if getattr(current, "end_time", None) is not None:
        return Context(), INVALID_SPAN
    return ctx, current


def _forced(headers: Mapping[str, str]) -> bool:
    """The force-trace header (off unless ``MLTRACE_FORCE_TRACE_HEADER`` names one) asks to keep this trace."""
    name = SETTINGS.force_trace_header
    return bool(name) and force_requested(headers.get(name.lower()), SETTINGS.force_trace_token)


_HOST_AGENT = (b"host", b"user-agent")


def _wanted_extra() -> tuple[bytes, ...]:
    """Headers read besides the propagators': ``host``, ``user-agent``, the force-trace header."""
    name = SETTINGS.force_trace_header
    if not name:
        return _HOST_AGENT
    return (*_HOST_AGENT, name.lower().encode("latin-1"))


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


def _fastapi_operation_spans_off(scope: Scope) -> None:
    """Switch off FastAPI's per-operation spans (dependencies/endpoint/serialization) for this
    request, unless asked to keep them: they would sit between the server span and our stages and
    cost ~40 µs a request even when the request is sampled out; see docs/fastapi.md."""
    telemetry = scope.get(_FASTAPI_KEY)
    if telemetry is not None and not SETTINGS.fastapi_operation_spans and hasattr(telemetry, "tracer"):
        telemetry.tracer = None


def _mark_disconnected(span: Span, sent: int) -> None:
    """The client went away before the response was complete: an attribute and an event, not an
    error (the service and the model did nothing wrong; see docs/semantic-conventions.md)."""
    if span.is_recording():
        span.set_attribute(semconv.ML_CLIENT_DISCONNECTED, True)
        span.add_event(semconv.ML_CLIENT_DISCONNECTED, {semconv.HTTP_RESPONSE_BODY_SIZE: sent})


class MLTraceMiddleware:
    """One server span per HTTP request, the trace id in the response, ml.* on the span.

    ``app.add_middleware(mltrace.MLTraceMiddleware)``. Response headers: ``traceresponse``
    (W3C Trace Context Level 3 draft) and ``X-Trace-Id`` (name configurable). Websocket and lifespan
    scopes pass straight through (lifespan messages too; span export is flushed before shutdown
    completes). Body summaries (never raw bodies) are opt-in; body sizes are always recorded.
    The outermost MLTraceMiddleware of a request serves it; one on a mounted sub-app passes through.
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
        cap_propagator_logs()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            # Messages pass through unchanged; queued spans are flushed before the server is told
            # shutdown is complete (uvicorn's SIGTERM exit skips atexit).
            await run_lifespan(self.app, scope, receive, send)
            return
        if (
            scope["type"] != "http" or _SCOPE_KEY in scope
            or (self.excluded_paths and scope.get("path") in self.excluded_paths)
        ):
            await self.app(scope, receive, send)
            return
        scope[_SCOPE_KEY] = True
        entry, current = _entry_context()
        if current is not INVALID_SPAN:
            if current.is_recording():
                if _is_server_span(current):
                    _fastapi_operation_spans_off(scope)
                    scope.setdefault(_FASTAPI_KEY, None)  # a mounted FastAPI app makes no second server span
                    await self._enrich(current, scope, receive, send)
                    return
            elif current.get_span_context().is_valid:
                # An instrumentation outside us started this request's span and sampled it out:
                # nothing to record, but the client still learns its trace id.
                _fastapi_operation_spans_off(scope)
                scope.setdefault(_FASTAPI_KEY, None)
                await self.app(scope, receive, self._headers_only(current, send))
                return
        await self._own(scope, receive, send, entry)  # a coroutine of _unrecorded or _record

    # -- helpers shared by both modes ---------------------------------------------------------
    def _response_headers(self, span: Span, message: Message) -> Message:
        ctx = span.get_span_context()
        if not ctx.is_valid:
            return message
        extra: list[tuple[bytes, bytes]] = []
        if self.traceresponse:  # bytes formatting: no str round trip (2.1 -> ~1 µs a response)
            extra.append((b"traceresponse", b"00-%032x-%016x-%02x" % (ctx.trace_id, ctx.span_id, ctx.trace_flags)))
        if self.trace_id_header:
            extra.append((self.trace_id_header, b"%032x" % ctx.trace_id))
        return {**message, "headers": [*message.get("headers", ()), *extra]}

    def _headers_only(self, span: Span, send: Send) -> Send:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = self._response_headers(span, message)
            await send(message)

        return send_with_headers

    def _taps(self, span: Span) -> tuple[BodyTap | None, BodyTap | None]:
        if not span.is_recording():
            return None, None
        req = self.capture_request_body
        res = self.capture_response_body
        req = SETTINGS.capture_request_body if req is None else req
        res = SETTINGS.capture_response_body if res is None else res
        limit = SETTINGS.max_body_bytes
        return (BodyTap(limit) if req else None), (BodyTap(limit) if res else None)

    def _observe(
        self, span: Span, receive: Receive, send: Send, entry: Context | None
    ) -> tuple[Receive, Send, Exchange]:
        """``receive``/``send`` for the app that count body bytes, notice a disconnect, feed the
        body taps, add the trace headers; and, given ``entry``, call the server's own
        ``receive``/``send`` in that context rather than the request's (see the module docstring)."""
        req_tap, res_tap = self._taps(span)
        seen = Exchange()

        async def observed_receive() -> Message:
            if entry is None:
                message = await receive()
            else:
                token = otel_context.attach(entry)
                try:
                    message = await receive()
                finally:
                    otel_context.detach(token)
            kind = message["type"]
            if kind == "http.request":
                body = message.get("body", b"")
                seen.reads += 1
                seen.received += len(body)
                if req_tap is not None:
                    req_tap.feed(body)
                    if not message.get("more_body", False):
                        req_tap.record(span, semconv.ML_REQUEST_BODY_PREFIX)
            elif kind == "http.disconnect" and not seen.complete and not seen.disconnected:
                seen.disconnected = True
                _mark_disconnected(span, seen.sent)
            return message

        async def observed_send(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                seen.status = message["status"]
                message = self._response_headers(span, message)
            elif kind == "http.response.body":
                body = message.get("body", b"")
                seen.sent += len(body)
                if res_tap is not None:
                    res_tap.feed(body)
                if not message.get("more_body", False):
                    seen.complete = True
                    if res_tap is not None:
                        res_tap.record(span, semconv.ML_RESPONSE_BODY_PREFIX)
                    seen.record_sizes(span)  # before the send: an outer instrumentation ends its span then
            try:
                if entry is None or not seen.complete:
                    await send(message)
                else:  # the last message: uvicorn starts a pipelined request's task from inside it
                    token = otel_context.attach(entry)
                    try:
                        await send(message)
                    finally:
                        otel_context.detach(token)
            except OSError:  # ASGI 2.4 servers raise it when the client has gone
                if not seen.complete and not seen.disconnected:
                    seen.disconnected = True
                    _mark_disconnected(span, seen.sent)
                raise

        return observed_receive, observed_send, seen

    # -- another instrumentation made the server span: enrich it ------------------------------
    async def _enrich(self, span: Span, scope: Scope, receive: Receive, send: Send) -> None:
        if SETTINGS.force_trace_header and span.is_recording() and _forced(Headers(scope=scope)):
            span.set_attribute(FORCE_ATTRIBUTE, True)
        payload = _payload_tap(span, scope)
        app_receive, app_send, seen = self._observe(span, receive, send, None)
        # Deferred: the stages under that span are handed over when the app is done.
        deferred = _deferred.begin_enriched() if _deferred._enabled else None
        try:
            if payload is None:
                await self.app(scope, app_receive, app_send)
            else:
                await self.app(scope, payload.wrap_receive(app_receive), payload.wrap_send(app_send))
        finally:
            if payload is not None:
                payload.finish()
            if not seen.complete:
                seen.record_sizes(span)  # the owner's span may still be open (a disconnect, an error)
            if deferred is not None:
                _deferred.leave(*deferred)

    # -- no server span yet: make one ---------------------------------------------------------
    def _own(self, scope: Scope, receive: Receive, send: Send, entry: Context) -> Awaitable[None]:
        """What serves a request no other instrumentation made a span for: the coroutine of
        ``_unrecorded`` when the sampler dropped it before any attribute was built, else of
        ``_record`` (a plain function: one coroutine frame less on every request)."""
        # One pass over the headers picks out what is read (the propagators' headers, host,
        # user-agent, the force header); with only known propagators and none of their headers
        # there, propagate.extract (~1.5 µs) is skipped: it would return ``entry`` unchanged.
        method = scope.get("method", "HTTP")
        wanted = propagated_headers()
        decided = None
        if _deferred._enabled and not SETTINGS.force_trace_header:
            # The sampler asked before any request attribute is built, when it is one known to
            # ignore them (sample_ratio=, ALWAYS_ON/OFF, ratio-based, ParentBased over those) and
            # no force header could add one: a dropped request builds none (~3 µs).
            tracer = TRACER.get()
            blind = (
                _deferred.blind_sampler(tracer)
                if isinstance(tracer, sdk_trace.Tracer) and tracer._is_enabled() else None
            )
            if blind is not None and isinstance(tracer, sdk_trace.Tracer):
                headers, traced = inbound_headers(scope, wanted, ())
                parent = propagate.extract(headers, context=entry) if traced else entry
                verdict = _deferred.decide_root(tracer, blind, parent, method, SpanKind.SERVER)
                if not isinstance(verdict, _deferred.Decided):
                    return self._unrecorded(verdict, parent, scope, receive, send, entry)
                decided = verdict
                if wanted is not None:  # else ``headers`` holds every header already
                    headers, _ = inbound_headers(scope, _NONE_WANTED, _HOST_AGENT)
        if decided is None:
            headers, traced = inbound_headers(scope, wanted, _wanted_extra())
            parent = propagate.extract(headers, context=entry) if traced else entry
        return self._record(scope, receive, send, entry, method, headers, parent, decided)

    async def _record(
        self, scope: Scope, receive: Receive, send: Send, entry: Context,
        method: str, headers: dict[str, str], parent: Context, decided: _deferred.Decided | None,
    ) -> None:
        attributes = request_attributes(scope, headers)
        if SETTINGS.force_trace_header and _forced(headers):
            attributes[FORCE_ATTRIBUTE] = True  # a start attribute, so ForceTraceSampler sees it
        deferred = None
        if _deferred._enabled:  # light spans now, SDK spans after the response (see _deferred.py)
            span, deferred = _deferred.start_request_span(method, parent, SpanKind.SERVER, attributes, decided)
        else:
            span = TRACER.start_span(
                method,
                context=parent,
                kind=SpanKind.SERVER,
                attributes=attributes,
            )
        if not span.is_recording():
            await self._unrecorded(span, parent, scope, receive, send, entry)
            return
        where = (scope.get("path", ""), scope.get("root_path", ""))  # before routing rewrites them
        served = _Served()
        ctx = otel_context.set_value(_SERVED_KEY, served, trace.set_span_in_context(span, parent))
        token = otel_context.attach(ctx)
        deferred_token = _deferred.enter(deferred) if deferred is not None else None
        fastapi_key = _FASTAPI_KEY not in scope
        if fastapi_key:
            scope[_FASTAPI_KEY] = None  # a mounted FastAPI app makes no second server span (docs/fastapi.md)
        payload = _payload_tap(span, scope)
        app_receive, app_send, seen = self._observe(span, receive, send, entry)
        if payload is not None:
            app_receive, app_send = payload.wrap_receive(app_receive), payload.wrap_send(app_send)
        try:
            await self.app(scope, app_receive, app_send)
        except BaseException as exc:
            if not (seen.disconnected and isinstance(exc, _GONE)):
                record_error(span, exc)
            raise
        finally:
            served.done = True
            try:
                if fastapi_key:
                    scope.pop(_FASTAPI_KEY, None)
                if payload is not None:
                    payload.finish()
                self._finish(span, scope, method, seen, where)
            finally:
                span.end()
                otel_context.detach(token)
                if deferred is not None and deferred_token is not None:
                    _deferred.leave(deferred, deferred_token)

    async def _unrecorded(
        self, span: Span, parent: Context, scope: Scope, receive: Receive, send: Send, entry: Context
    ) -> None:
        """A request whose server span does not record (sampled out): the span is current (its
        trace id reaches children, outgoing calls and the response headers) and nothing else is
        done: no body counting, disconnect bookkeeping, route lookup or attributes, which only a
        recording span would keep. The server's ``receive`` and its last ``send`` (the calls in
        which uvicorn resumes reading or starts a pipelined request's task) run in ``entry``."""
        served = _Served()
        if _SPAN_KEY is not None:  # one dict instead of two Context copies (~0.4 µs)
            ctx = Context({**parent, _SPAN_KEY: span, _SERVED_KEY: served})
        else:  # pragma: no cover - an API whose set_span_in_context changed
            ctx = otel_context.set_value(_SERVED_KEY, served, trace.set_span_in_context(span, parent))
        token = _attach(ctx)
        fastapi_key = _FASTAPI_KEY not in scope
        if fastapi_key:
            scope[_FASTAPI_KEY] = None
        extra = self._trace_headers(span.get_span_context())

        async def entry_receive() -> Message:
            token = _attach(entry)
            try:
                return await receive()
            finally:
                _detach(token)

        async def entry_send(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                if extra:
                    message = {**message, "headers": [*message.get("headers", ()), *extra]}
                await send(message)
            elif kind == "http.response.body" and message.get("more_body", False):
                await send(message)  # not the last: uvicorn neither resumes reading nor starts a task in it
            else:
                token = _attach(entry)
                try:
                    await send(message)
                finally:
                    _detach(token)

        try:
            await self.app(scope, entry_receive, entry_send)
        finally:
            served.done = True
            if fastapi_key:
                scope.pop(_FASTAPI_KEY, None)
            if type(span) is not trace.NonRecordingSpan:  # its end() does nothing; another provider's may
                span.end()
            _detach(token)

    def _trace_headers(self, ctx: SpanContext) -> list[tuple[bytes, bytes]]:
        """``traceresponse`` and the trace id header for ``ctx``: one bytes formatting, the trace
        id sliced out of it."""
        response = b"00-%032x-%016x-%02x" % (ctx.trace_id, ctx.span_id, ctx.trace_flags)
        if not self.traceresponse:
            return [(self.trace_id_header, response[3:35])] if self.trace_id_header else []
        if not self.trace_id_header:
            return [(b"traceresponse", response)]
        return [(b"traceresponse", response), (self.trace_id_header, response[3:35])]

    @staticmethod
    def _finish(span: Span, scope: Scope, method: str, seen: Exchange, where: tuple[str, str]) -> None:
        if not span.is_recording():
            return
        route = route_template(scope, *where)
        if route:
            span.set_attribute("http.route", route)
            span.update_name(f"{method} {route}")
        if not seen.complete:
            seen.record_sizes(span)
        if seen.status is not None:
            code = seen.status
            span.set_attribute("http.response.status_code", code)
            if code >= 500:
                span.set_attribute("error.type", str(code))
                span.set_status(Status(StatusCode.ERROR))
        elif seen.disconnected:
            pass  # the client left before any response: marked, not an error of the service
        elif not getattr(span, "status", None) or span.status.status_code is not StatusCode.ERROR:  # type: ignore[attr-defined]
            span.set_attribute("error.type", "incomplete_response")
            span.set_status(Status(StatusCode.ERROR))
