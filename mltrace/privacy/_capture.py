"""``PayloadCapture``: redacted raw payloads, written off the request path, referenced from spans.

The request path only copies bytes (up to ``max_bytes``) and sets ``ml.payload.ref``; parsing,
redaction and the sink write happen on one background thread behind a bounded queue. A full
queue or a failing sink drops the payload and counts it (``payloads_dropped``); it never blocks or
fails the request.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from opentelemetry import trace
from opentelemetry.trace import Span
from starlette.types import Message, Receive, Scope, Send

from .. import semconv
from .._settings import SETTINGS
from ..export import COUNTERS
from ._redact import redact, redact_text
from ._rules import REDACTED, URL_CREDENTIAL_PARAMS, CaptureRules, header_allowed
from ._sinks import LocalStoreSink, PayloadSink

_log = logging.getLogger("mltrace.privacy")
_STOP: Any = object()
Job = tuple[str, str, str, Callable[[], Any], int]
_HTTP_OVERHEAD = 16 * 1024  # an exchange's document: two bodies of up to max_bytes, plus headers


def _ids(span: Span) -> tuple[str, str] | None:
    ctx = span.get_span_context()
    if not ctx.is_valid:
        return None
    return format(ctx.trace_id, "032x"), format(ctx.span_id, "016x")


class PayloadCapture:
    """Captures payloads under ``rules`` into ``sink`` (default: the local store).

    ``configure(capture_payloads=CaptureRules(...))`` makes one and the middleware uses it; use
    :meth:`capture` (or :func:`mltrace.privacy.capture_payload`) to capture a stage's own objects.
    """

    def __init__(
        self,
        rules: CaptureRules | None = None,
        sink: PayloadSink | None = None,
        *,
        queue_size: int = 1024,
    ) -> None:
        self.rules = rules or CaptureRules()
        self.sink: PayloadSink = sink if sink is not None else LocalStoreSink()
        self._queue: queue.Queue[Job] = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._pid = 0
        self._closed = False

    # -- the request path ----------------------------------------------------------------------
    def capture(self, obj: object, *, kind: str = "payload", span: Span | None = None) -> str | None:
        """Redact ``obj`` now (a snapshot), store it later; returns the reference set on the span."""
        span = span if span is not None else trace.get_current_span()
        try:
            ids = _ids(span)
            if ids is None or not span.is_recording():
                return None
            document = redact(obj, self.rules)
            ref = self.sink.reference(*ids)
            if self.submit(ids[0], ids[1], kind, lambda: document, self.rules.max_bytes):
                span.set_attribute(semconv.ML_PAYLOAD_REF, ref)
                return ref
        except Exception:
            COUNTERS.add("instrumentation_errors")
            _log.debug("mltrace: payload capture failed", exc_info=True)
        return None

    def http_tap(self, span: Span, scope: Scope) -> HttpTap | None:
        """A tap for one HTTP exchange, or ``None`` when the span does not record."""
        if not span.is_recording() or _ids(span) is None:
            return None
        return HttpTap(self, span, scope)

    def submit(self, trace_id: str, span_id: str, kind: str, build: Callable[[], Any], limit: int) -> bool:
        """Queue a document (at most ``limit`` bytes once serialised) for the writer.

        ``False`` (and counted in ``payloads_dropped``) when the queue is full.
        """
        if self._closed:
            return False
        self._ensure_worker()
        try:
            self._queue.put_nowait((trace_id, span_id, kind, build, limit))
        except queue.Full:
            COUNTERS.add("payloads_dropped")
            return False
        return True

    # -- the writer ----------------------------------------------------------------------------
    def _ensure_worker(self) -> None:
        if self._thread is not None and self._pid == os.getpid() and self._thread.is_alive():
            return
        with self._lock:
            if self._thread is None or self._pid != os.getpid() or not self._thread.is_alive():
                self._pid = os.getpid()
                self._thread = threading.Thread(target=self._run, name="mltrace-payloads", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            try:
                if job is _STOP:
                    return
                self._write(*job)
            finally:
                self._queue.task_done()

    def _write(self, trace_id: str, span_id: str, kind: str, build: Callable[[], Any], limit: int) -> None:
        try:
            text = json.dumps(build(), ensure_ascii=False, allow_nan=False, separators=(",", ":"))
            size = len(text.encode("utf-8"))
            if size > limit:
                text = json.dumps({"omitted": "larger than max_bytes after redaction", "bytes": size})
            self.sink.write(trace_id, span_id, kind, text)
            COUNTERS.add("payloads_captured")
        except Exception:
            COUNTERS.add("payloads_dropped")
            _log.warning("mltrace: could not store a payload for trace %s", trace_id, exc_info=True)

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until every queued payload is written; ``False`` on timeout."""
        deadline = time.monotonic() + timeout_s
        while self._queue.unfinished_tasks:
            if time.monotonic() >= deadline or self._thread is None or not self._thread.is_alive():
                return not self._queue.unfinished_tasks
            time.sleep(0.005)
        return True

    def close(self, timeout_s: float = 5.0) -> bool:
        """Write what is queued (within ``timeout_s``), stop the writer, close the sink."""
        done = self.flush(timeout_s)
        self._closed = True
        if self._thread is not None and self._thread.is_alive():
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(_STOP)
            self._thread.join(max(0.0, min(timeout_s, 1.0)))
        if done:
            self.sink.close()
        return done


class _Buffer:
    __slots__ = ("chunks", "limit", "size")

    def __init__(self, limit: int) -> None:
        self.chunks: list[bytes] = []
        self.limit = limit
        self.size = 0

    def feed(self, body: bytes) -> None:
        self.size += len(body)
        if self.size <= self.limit:
            self.chunks.append(bytes(body))
        elif self.chunks:
            self.chunks = []  # over the cap: nothing of it is kept

    @property
    def truncated(self) -> bool:
        return self.size > self.limit


class HttpTap:
    """Copies one exchange's bodies (bounded) as they pass; :meth:`finish` hands them to the writer."""

    __slots__ = ("_capture", "_done", "_referenced", "_req", "_res", "_res_headers", "_scope", "_span", "_status")

    def __init__(self, capture: PayloadCapture, span: Span, scope: Scope) -> None:
        rules = capture.rules
        self._capture = capture
        self._span = span
        self._scope = scope
        self._req = _Buffer(rules.max_bytes) if rules.request else None
        self._res = _Buffer(rules.max_bytes) if rules.response else None
        self._status: int | None = None
        self._res_headers: list[tuple[bytes, bytes]] = []
        self._done = False
        self._referenced = False

    def _reference(self) -> None:
        """Put ``ml.payload.ref`` on the span while it still records.

        At the response's start: a server span made by another instrumentation (FastAPI's own)
        may end as soon as the last body chunk has passed, before :meth:`finish` runs.
        """
        if self._referenced or not self._span.is_recording():
            return
        ids = _ids(self._span)
        if ids is not None:
            self._span.set_attribute(semconv.ML_PAYLOAD_REF, self._capture.sink.reference(*ids))
            self._referenced = True

    def wrap_receive(self, receive: Receive) -> Receive:
        buffer = self._req
        if buffer is None:
            return receive

        async def tapped() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                try:
                    buffer.feed(message.get("body", b""))
                except Exception:
                    COUNTERS.add("instrumentation_errors")
            return message

        return tapped

    def wrap_send(self, send: Send) -> Send:
        async def tapped(message: Message) -> None:
            try:
                if message["type"] == "http.response.start":
                    self._status = int(message.get("status", 0))
                    self._res_headers = list(message.get("headers", ()))
                    self._reference()
                elif message["type"] == "http.response.body" and self._res is not None:
                    self._res.feed(message.get("body", b""))
            except Exception:
                COUNTERS.add("instrumentation_errors")
            await send(message)

        return tapped

    def finish(self) -> None:
        """Set ``ml.payload.ref`` and queue the exchange; safe to call more than once, never raises."""
        if self._done:
            return
        self._done = True
        try:
            ids = _ids(self._span)
            if ids is None:
                return
            rules = self._capture.rules
            scope = self._scope
            request = _Snapshot(
                scope.get("method"), scope.get("path"), scope.get("query_string", b""),
                list(scope.get("headers", ())), self._req,
            )
            response = _Snapshot(None, None, b"", self._res_headers, self._res, status=self._status)

            def build() -> dict[str, Any]:
                return _http_document(rules, request, response)

            limit = 2 * rules.max_bytes + _HTTP_OVERHEAD
            if self._capture.submit(ids[0], ids[1], "http", build, limit):
                self._reference()  # no response was started (the app raised): the span still records
        except Exception:
            COUNTERS.add("instrumentation_errors")
            _log.debug("mltrace: payload tap failed", exc_info=True)


class _Snapshot:
    __slots__ = ("body", "headers", "method", "path", "query", "status")

    def __init__(
        self,
        method: str | None,
        path: str | None,
        query: bytes,
        headers: list[tuple[bytes, bytes]],
        body: _Buffer | None,
        status: int | None = None,
    ) -> None:
        self.method, self.path, self.query, self.headers = method, path, query, headers
        self.body, self.status = body, status


def _headers(rules: CaptureRules, raw: list[tuple[bytes, bytes]]) -> tuple[dict[str, str], str]:
    extra = frozenset({SETTINGS.force_trace_header.lower()}) if SETTINGS.force_trace_header else frozenset()
    out: dict[str, str] = {}
    content_type = ""
    for key, value in raw:
        name = key.decode("latin-1").lower()
        text = value.decode("latin-1")
        if name == "content-type":
            content_type = text
        if rules.headers and header_allowed(name, extra):
            out[name] = redact_text(text, rules)
    return out, content_type


def body_document(raw: bytes, content_type: str, rules: CaptureRules) -> Any:
    """A redacted document for one body: parsed JSON or form, else redacted text, else a marker."""
    if not raw:
        return None
    if "application/x-www-form-urlencoded" in content_type.lower():
        try:
            form: dict[str, Any] = {}
            for k, v in parse_qsl(raw.decode("utf-8"), keep_blank_values=True, max_num_fields=10_000):
                form.setdefault(k, []).append(v)
            return redact({k: v[0] if len(v) == 1 else v for k, v in form.items()}, rules)
        except (ValueError, UnicodeDecodeError):
            pass
    try:
        return redact(json.loads(raw), rules)
    except (ValueError, RecursionError):
        pass
    try:
        return {"text": redact_text(raw.decode("utf-8"), rules)}
    except UnicodeDecodeError:
        return {"omitted": "not UTF-8", "bytes": len(raw)}


def _http_document(rules: CaptureRules, request: _Snapshot, response: _Snapshot) -> dict[str, Any]:
    req_headers, req_type = _headers(rules, request.headers)
    res_headers, res_type = _headers(rules, response.headers)
    doc: dict[str, Any] = {
        "request": {"method": request.method, "path": redact_text(request.path or "", rules)},
        "response": {"status": response.status},
    }
    if request.query:
        pairs = parse_qsl(request.query.decode("latin-1"), keep_blank_values=True, max_num_fields=1000)
        # the rules' deny keys apply, and so do the URL credential parameters (sig=, X-Amz-Signature=,
        # key=) that url.query on the span drops: one list of sensitive query keys
        doc["request"]["query"] = redact(
            {k: REDACTED if k.lower() in URL_CREDENTIAL_PARAMS else v for k, v in pairs}, rules
        )
    if rules.headers:
        doc["request"]["headers"] = req_headers
        doc["response"]["headers"] = res_headers
    for part, snap, ctype in (("request", request, req_type), ("response", response, res_type)):
        buf = snap.body
        if buf is None:
            continue
        if buf.truncated:
            doc[part]["body"] = {"omitted": "larger than max_bytes", "bytes": buf.size}
        else:
            doc[part]["body"] = body_document(b"".join(buf.chunks), ctype, rules)
    return doc


def capture_payload(obj: object, *, kind: str = "payload") -> str | None:
    """Capture ``obj`` for the current span when payload capture is on; returns the reference.

    A no-op (``None``) unless ``configure(capture_payloads=...)`` or ``MLTRACE_CAPTURE_PAYLOADS``
    turned capture on.
    """
    capture = SETTINGS.payload_capture
    if not isinstance(capture, PayloadCapture):
        return None
    return capture.capture(obj, kind=kind)
