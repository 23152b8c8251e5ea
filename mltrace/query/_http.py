"""The HTTP plumbing the Jaeger and Zipkin sources share: one client, errors a person can read."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from ._errors import SourceUnavailable, TraceNotFound
from ._model import Trace
from ._protocol import Progress


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
    fetch: Callable[[int, int, int], list[Trace]],
    *,
    start: int,
    end: int,
    limit: int,
    page_size: int,
    unit_us: int,
    progress: Progress | None,
    fanout: int = 4,
) -> list[Trace]:
    """The newest ``limit`` traces in ``[start, end]`` from an API with no cursor and no ordering.

    ``fetch(lo, hi, n)`` returns up to ``n`` traces with spans in ``[lo, hi]`` (in the API's time
    unit, ``unit_us`` microseconds), in whatever order the backend keeps them: Jaeger's memory
    store, for one, does not answer newest first. A window whose page comes back full may hold
    more, so it is split into ``fanout`` parts, newest part first; a page that is not full holds
    its whole window. Fetching stops once the windows known to be complete hold ``limit`` traces.
    """
    found: dict[str, Trace] = {}
    windows = [(start, end)]  # a stack: the newest window is on top
    while windows:
        lo, hi = windows.pop()
        page = fetch(lo, hi, page_size)
        for t in page:
            found.setdefault(t.trace_id, t)
        if progress is not None:
            progress(len(found))
        if len(page) >= page_size and hi - lo >= fanout:
            cuts = [lo + (hi - lo + 1) * i // fanout for i in range(fanout)] + [hi + 1]
            windows.extend((cuts[i], cuts[i + 1] - 1) for i in range(fanout))
            continue
        # Every window newer than this one is complete too (they were taken first).
        if sum(1 for t in found.values() if t.start_us // unit_us >= lo) >= limit:
            break
    return sorted(found.values(), key=lambda t: t.start_us, reverse=True)[:limit]
