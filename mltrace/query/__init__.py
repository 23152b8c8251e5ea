"""Read traces back: one small interface over Jaeger's query API, Zipkin's API and the local store.

```python
from mltrace.query import open_source

source = open_source("local://mltrace-traces.db")   # or jaeger://host:16686, zipkin://host:9411
trace = source.get_trace("4bf92f3577b34da6a3ce929d0e0e4736")
print(trace.duration_ms, [span.name for span in trace])
```
"""

from __future__ import annotations

from ._errors import QueryError, SourceUnavailable, TraceNotFound, UnknownService
from ._model import Link, Span, Trace
from ._source import TraceSource, default_source_url, open_source, parse_duration

__all__ = [
    "Link",
    "QueryError",
    "SourceUnavailable",
    "Span",
    "Trace",
    "TraceNotFound",
    "TraceSource",
    "UnknownService",
    "default_source_url",
    "open_source",
    "parse_duration",
]
