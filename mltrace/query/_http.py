"""The HTTP plumbing the Jaeger and Zipkin sources share: one client, errors a person can read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from ._errors import SourceUnavailable, TraceNotFound
from ._model import Trace
from ._source import Progress


class JsonApi:
    """GET JSON from one backend; network failures become :class:`SourceUnavailable`."""

    def __init__(self, base_url: str, backend: str, *, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.backend = backend
        self.client = httpx.Client(base_url=self.base_url, timeout=timeout)
        self.requests = 0  # counted for benchmarks: paging is what costs over HTTP

    def get(self, path: str, params: dict[str, Any] | None = None, *, not_found: str | None = None) -> Any:
        self.requests += 1
        try:
            response = self.client.get(path, params=params)
        except httpx.TimeoutException:
            raise SourceUnavailable(f"{self.backend} at {self.base_url} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise SourceUnavailable(
                f"cannot reach {self.backend} at {self.base_url} ({type(exc).__name__}: {exc}); is it running?"
            ) from None
        if response.status_code == 404 and not_found is not None:
            raise TraceNotFound(not_found)
        if response.status_code >= 400:
            detail = response.text.strip().replace("\n", " ")[:200]
            raise SourceUnavailable(
                f"{self.backend} at {self.base_url} answered {response.status_code} to {path}: {detail}"
            )
        try:
            return response.json()
        except ValueError:
            raise SourceUnavailable(
                f"{self.base_url}{path} did not answer with JSON; is this really {self.backend}?"
            ) from None

    def close(self) -> None:
        self.client.close()


def coerce(value: str) -> Any:
    """A string tag back to the JSON type it was before a backend stringified it."""
    if value in ("true", "false"):
        return value == "true"
    if value[:1] in "-0123456789" and value:
        try:
            return int(value)
        except ValueError:
            pass
        try:
            return float(value)
        except ValueError:
            return value
    if value[:1] == "[" and value[-1:] == "]":
        import json

        try:
            items = json.loads(value)
        except ValueError:
            return value
        if isinstance(items, list):
            return [coerce(x) if isinstance(x, str) else x for x in items]
    return value


def page_back(
    fetch: Callable[[int, int], list[Trace]],
    *,
    start: int,
    end: int,
    limit: int,
    page_size: int,
    unit_us: int,
    progress: Progress | None,
) -> list[Trace]:
    """Up to ``limit`` traces from an API without a cursor, newest first.

    ``fetch(end, n)`` returns the newest ``n`` traces starting at or before ``end`` (in the API's
    time unit, ``unit_us`` microseconds). Each next page ends at the oldest start seen so far;
    the traces starting exactly there come back again, so the page asks for that many more.
    """
    found: dict[str, Trace] = {}
    while len(found) < limit and end > start:
        boundary = sum(1 for t in found.values() if t.start_us // unit_us == end)
        want = min(page_size, limit - len(found) + boundary)
        page = fetch(end, want)
        fresh = [t for t in page if t.trace_id not in found]
        for t in fresh:
            found[t.trace_id] = t
        if progress is not None:
            progress(len(found))
        if len(page) < want:
            break  # the window holds no more
        oldest = min(t.start_us for t in page) // unit_us
        end = oldest if fresh and oldest < end else end - 1
    return sorted(found.values(), key=lambda t: t.start_us, reverse=True)[:limit]
