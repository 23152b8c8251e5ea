"""What a trace source raises: each a :class:`mltrace.MLTraceError` with a message fit for a terminal."""

from __future__ import annotations

from .._errors import MLTraceError


class QueryError(MLTraceError):
    """Base class of the errors a trace source raises."""


class SourceUnavailable(QueryError):
    """The backend cannot be reached, or answered with something that is not its API."""


class TraceNotFound(QueryError, LookupError):
    """No trace with this id is stored in the source."""


class UnknownService(QueryError, LookupError):
    """The source has never seen spans from this service."""

    def __init__(self, service: str, known: list[str]) -> None:
        self.service = service
        self.known = known
        hint = f"; known services: {', '.join(known)}" if known else "; the source holds no services yet"
        super().__init__(f"unknown service {service!r}{hint}")
