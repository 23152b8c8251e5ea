"""What passes through the middleware between client and app: body byte counts, the status, a
disconnect (:class:`Exchange`), and the opt-in body summaries (:class:`BodyTap`)."""

from __future__ import annotations

import json

from opentelemetry.trace import Span

from .. import semconv
from ._guarded import note_failure, record_summary


class BodyTap:
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


class Exchange:
    """What passed between client and app: body bytes each way, the status, a disconnect."""

    __slots__ = ("complete", "disconnected", "reads", "received", "sent", "status")

    def __init__(self) -> None:
        self.received = 0
        self.reads = 0
        self.sent = 0
        self.status: int | None = None
        self.complete = False
        self.disconnected = False

    def record_sizes(self, span: Span) -> None:
        """``http.request.body.size`` (bytes the app read) and ``http.response.body.size`` (bytes sent)."""
        if not span.is_recording():
            return
        if self.reads and self.status is not None:
            span.set_attributes(
                {semconv.HTTP_REQUEST_BODY_SIZE: self.received, semconv.HTTP_RESPONSE_BODY_SIZE: self.sent}
            )
        elif self.reads:
            span.set_attribute(semconv.HTTP_REQUEST_BODY_SIZE, self.received)
        elif self.status is not None:
            span.set_attribute(semconv.HTTP_RESPONSE_BODY_SIZE, self.sent)
