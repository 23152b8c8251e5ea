"""The api_v3 window walk (:meth:`JaegerSource._v3_window`) against a stand-in for api_v3 that answers
in any order, with a search-depth limit like Jaeger's memory store: every trace of the window,
the newest ``limit`` when asked for fewer, and the v1 API when api_v3 refuses the depth asked.
(The same walk over a real Jaeger: tests/e2e/test_jaeger_otlp_json.py.)"""

from __future__ import annotations

import random
import time
from datetime import datetime

import httpx
import pytest

from mltrace.query import jaeger
from mltrace.query.jaeger import JaegerSource


def _us(text: str) -> int:
    head, frac = text.rstrip("Z").split(".")
    return int(datetime.fromisoformat(head + "+00:00").timestamp()) * 1_000_000 + int(frac.ljust(6, "0")[:6])


def _store(starts: list[int], order: str, max_traces: int, asked: list[int]) -> httpx.MockTransport:
    rng = random.Random(7)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/services":
            return httpx.Response(200, json={"data": ["svc"]})
        if request.url.path == "/api/traces":  # v1
            p = request.url.params
            lo, hi, n = int(p["start"]), int(p["end"]), int(p["limit"])
            chosen = sorted((s for s in starts if lo <= s <= hi), reverse=True)[:n]
            return httpx.Response(200, json={"data": [
                {"traceID": f"{s:032x}", "processes": {"p": {"serviceName": "svc"}},
                 "spans": [{"traceID": f"{s:032x}", "spanID": "1", "operationName": "GET", "startTime": s,
                            "duration": 5, "references": [], "tags": [], "processID": "p"}]} for s in chosen]})
        p = request.url.params
        n = int(p["query.num_traces"])
        asked.append(n)
        if n >= max_traces:
            return httpx.Response(500, json={"error": {"httpCode": 500, "message":
                                                       "search depth must be greater than 0 and less than max traces"}})
        inside = [s for s in starts if _us(p["query.start_time_min"]) <= s <= _us(p["query.start_time_max"])]
        if order == "newest first":
            inside.sort(reverse=True)
        elif order == "oldest first":
            inside.sort()
        else:
            rng.shuffle(inside)
        chosen = inside[:n]
        if not chosen:
            return httpx.Response(404, json={"error": {"httpCode": 404, "message": "No traces found"}})
        spans = [{"traceId": f"{s:032x}", "spanId": "0000000000000001", "name": "GET", "kind": 2,
                  "startTimeUnixNano": str(s * 1000), "endTimeUnixNano": str(s * 1000 + 5000)} for s in chosen]
        return httpx.Response(200, json={"result": {"resourceSpans": [{"resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "svc"}}]}, "scopeSpans": [{"spans": spans}]}]}})

    return httpx.MockTransport(handler)


def _source(starts: list[int], order: str, asked: list[int], max_traces: int = 100_000) -> JaegerSource:
    source = JaegerSource("http://jaeger.test")
    source.api.client = httpx.Client(base_url="http://jaeger.test", transport=_store(starts, order, max_traces, asked))
    return source


@pytest.mark.parametrize("order", ["newest first", "oldest first", "random"])
def test_walk_reads_every_trace_and_the_newest(order: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """A bursty window (a quiet hour, a busy ten minutes, a gap to now): all of it, and the newest N."""
    monkeypatch.setattr(jaeger, "_PROBE", 50)
    monkeypatch.setattr(jaeger, "_SLICE", 100)
    monkeypatch.setattr(jaeger, "_SLICE_MAX", 300)
    now = int(time.time() * 1e6)
    rng = random.Random(1)
    starts = sorted({now - rng.randrange(600_000_000, 3_000_000_000) for _ in range(300)}
                    | {now - rng.randrange(60_000_000, 660_000_000) for _ in range(3000)})
    asked: list[int] = []
    source = _source(starts, order, asked)
    seen: list[int] = []
    everything = source.find_traces("svc", since=3600, limit=10**9, progress=seen.append)
    assert [t.start_us for t in everything] == sorted(starts, reverse=True)
    assert seen == sorted(seen) and seen[-1] == len(starts) and source._v3 is True
    assert max(asked) <= 2 * 300 and len(asked) < 200
    newest = source.find_traces("svc", since=3600, limit=777)
    assert [t.start_us for t in newest] == sorted(starts, reverse=True)[:777]
    window = source.trace_window("svc", 3600.0)
    assert sorted(window.trace_ids) == sorted(f"{s:032x}" for s in starts)
    assert [t.trace_id for t in source.load(window.trace_ids[:5])] == window.trace_ids[:5]
    source.close()


def test_a_store_smaller_than_a_slice_falls_back_to_v1(monkeypatch: pytest.MonkeyPatch) -> None:
    """Jaeger refuses a search depth at or above its memory store's max_traces (HTTP 500): the v1
    API, which pages 500 at a time, reads the window instead of the command failing."""
    now = int(time.time() * 1e6)
    starts = [now - 1_000_000 * i for i in range(1, 1201)]
    asked: list[int] = []
    source = _source(starts, "newest first", asked, max_traces=1000)
    found = source.find_traces("svc", since=3600, limit=10**9)
    assert [t.start_us for t in found] == sorted(starts, reverse=True)
    assert source._v3 is False and max(asked) >= 1000
    source.close()
