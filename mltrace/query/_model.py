"""The normalized trace model every source returns: backends differ, analysis sees one shape."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from .. import semconv


@dataclass(frozen=True, slots=True)
class Link:
    """A span link (e.g. from a batched inference span to each request's span)."""

    trace_id: str
    span_id: str
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Span:
    """One span, in microseconds since the epoch, with its attributes decoded to JSON types.

    ``kind`` is ``SERVER``, ``CLIENT``, ``INTERNAL``, ``PRODUCER`` or ``CONSUMER``. ``resource`` holds
    what the backend keeps of the process (Jaeger's process tags, the local store's resource;
    Zipkin keeps none). Treat it as read-only (it is not frozen only because frozen dataclasses
    are several times slower to build, and sources build tens of thousands at a time).
    """

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    service: str
    kind: str
    start_us: int
    duration_us: int
    attributes: Mapping[str, Any] = field(default_factory=dict)
    error: bool = False
    status_message: str | None = None
    links: tuple[Link, ...] = ()
    resource: Mapping[str, Any] = field(default_factory=dict)
    # Span events as ``{"name", "time_us", "attributes"}`` (exceptions, a stream's first token);
    # filled where the source reads them (the local store's single-trace reads), else empty.
    events: tuple[Mapping[str, Any], ...] = ()

    @property
    def end_us(self) -> int:
        return self.start_us + self.duration_us

    @property
    def duration_ms(self) -> float:
        return self.duration_us / 1000.0

    @property
    def stage(self) -> str | None:
        value = self.attributes.get(semconv.ML_STAGE)
        return str(value) if value is not None else None

    def to_dict(self) -> dict[str, Any]:
        return {
            "trace_id": self.trace_id,
            "span_id": self.span_id,
            "parent_id": self.parent_id,
            "name": self.name,
            "service": self.service,
            "kind": self.kind,
            "start_us": self.start_us,
            "duration_us": self.duration_us,
            "attributes": dict(self.attributes),
            "error": self.error,
            "status_message": self.status_message,
            "links": [
                {"trace_id": x.trace_id, "span_id": x.span_id, "attributes": dict(x.attributes)} for x in self.links
            ],
            "events": [dict(e) for e in self.events],
        }


@dataclass(frozen=True)
class Trace:
    """The spans of one trace, sorted by start time."""

    trace_id: str
    spans: tuple[Span, ...]

    @classmethod
    def of(cls, trace_id: str, spans: list[Span] | tuple[Span, ...]) -> Trace:
        """A trace of ``spans``; a span reported twice (an exporter's retry) is kept once."""
        unique = {s.span_id: s for s in reversed(spans)}  # the first report of each id wins
        return cls(trace_id, tuple(sorted(unique.values(), key=lambda s: (s.start_us, -s.duration_us))))

    def __iter__(self) -> Iterator[Span]:
        return iter(self.spans)

    def __len__(self) -> int:
        return len(self.spans)

    @cached_property
    def by_id(self) -> dict[str, Span]:
        return {s.span_id: s for s in self.spans}

    @cached_property
    def children(self) -> dict[str | None, list[Span]]:
        """Children per parent id; spans whose parent is missing are listed under ``None``."""
        out: dict[str | None, list[Span]] = {}
        ids = self.by_id
        for s in self.spans:
            parent = s.parent_id if s.parent_id in ids else None
            out.setdefault(parent, []).append(s)
        return out

    @property
    def roots(self) -> list[Span]:
        return self.children.get(None, [])

    @property
    def root(self) -> Span:
        """The entry span: the earliest-starting, longest span with no parent in the trace."""
        return self.roots[0]

    @property
    def start_us(self) -> int:
        return min(s.start_us for s in self.spans)

    @property
    def duration_us(self) -> int:
        """The root's duration; for a broken trace (several roots) the whole extent."""
        if len(self.roots) == 1:
            return self.root.duration_us
        return max(s.end_us for s in self.spans) - self.start_us

    @property
    def duration_ms(self) -> float:
        return self.duration_us / 1000.0

    @property
    def error(self) -> bool:
        return any(s.error for s in self.spans)

    @property
    def services(self) -> list[str]:
        return sorted({s.service for s in self.spans})

    def attribute(self, key: str) -> Any:
        """The first value of ``key`` on any span (in start order), else ``None``."""
        for s in self.spans:
            if key in s.attributes:
                return s.attributes[key]
        return None
