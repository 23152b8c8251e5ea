"""A trace source over traces built in memory: just enough of ``TraceSource`` (services,
find_traces, get_trace, find_by_attribute) for the analysis functions under test to read from."""

from __future__ import annotations

from typing import Any

from mltrace.query import Trace, TraceNotFound, UnknownService


class MemorySource:
    url = "memory://"

    def __init__(self, traces: list[Trace]) -> None:
        self.traces = {t.trace_id: t for t in traces}

    def services(self) -> list[str]:
        return sorted({s for t in self.traces.values() for s in t.services})

    def _newest(self, traces: list[Trace], limit: int) -> list[Trace]:
        return sorted(traces, key=lambda t: -t.start_us)[:limit]

    def find_traces(self, service: str | None, since: float | None = None, limit: int = 100,
                    min_duration: float | None = None, *, progress: Any = None) -> list[Trace]:
        if service is not None and service not in self.services():
            raise UnknownService(service, self.services())
        hits = [t for t in self.traces.values() if service is None or service in t.services]
        return self._newest(hits, limit)

    def get_trace(self, trace_id: str) -> Trace:
        if trace_id not in self.traces:
            raise TraceNotFound(trace_id)
        return self.traces[trace_id]

    def find_by_attribute(self, key: str, value: str, limit: int = 100) -> list[Trace]:
        hits = [t for t in self.traces.values() if any(s.attributes.get(key) == value for s in t.spans)]
        return self._newest(hits, limit)

    def close(self) -> None:
        pass
