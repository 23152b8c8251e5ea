"""The Zipkin window walk (:meth:`ZipkinSource.trace_window`) against an in-memory stand-in for
``/api/v2/traces`` that answers in any order: every trace of the window, read in slices walked back
from its end, a full slice split; progress after each slice; Ctrl-C ends the read.
(The same walk over a real Zipkin: tests/e2e/test_zipkin_window.py.)"""

from __future__ import annotations

import random
import time

import httpx
import pytest

from mltrace.query import zipkin
from mltrace.query.zipkin import ZipkinSource


def _store(starts_us: list[int], order: str, asked: list[tuple[int, int, int]]) -> httpx.MockTransport:
    rng = random.Random(7)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v2/services":
            return httpx.Response(200, json=["svc"])
        if request.url.path.startswith("/api/v2/trace/"):
            tid = request.url.path.rsplit("/", 1)[1]
            hit = [s for s in starts_us if f"{s:032x}" == tid]
            return httpx.Response(200, json=[_span(hit[0])]) if hit else httpx.Response(404)
        p = request.url.params
        end, lookback, n = int(p["endTs"]), int(p["lookback"]), int(p["limit"])
        assert lookback > 0 and p["serviceName"] == "svc"  # Zipkin refuses lookback 0
        asked.append((end - lookback, end, n))
        # Zipkin's rule (QueryRequest.test): the root's timestamp in µs within [endTs - lookback, endTs] ms.
        inside = [s for s in starts_us if (end - lookback) * 1000 <= s <= end * 1000]
        if order == "newest first":
            inside.sort(reverse=True)
        elif order == "oldest first":
            inside.sort()
        else:
            rng.shuffle(inside)
        return httpx.Response(200, json=[[_span(s)] for s in inside[:n]])

    return httpx.MockTransport(handler)


def _span(start_us: int) -> dict[str, object]:
    return {"traceId": f"{start_us:032x}", "id": "0000000000000001", "name": "post /predict", "kind": "SERVER",
            "timestamp": start_us, "duration": 1000 + start_us % 997, "localEndpoint": {"serviceName": "svc"}}


def _source(starts_us: list[int], order: str, asked: list[tuple[int, int, int]]) -> ZipkinSource:
    source = ZipkinSource("http://zipkin.test")
    source.api.client = httpx.Client(base_url="http://zipkin.test", transport=_store(starts_us, order, asked))
    return source


def _bursty() -> list[int]:
    """A quiet hour, a busy ten minutes, a gap, a dense second (a trace every ~1.5 ms: a slice's
    boundary falls between traces of the same millisecond), a gap to now (µs, distinct)."""
    now = int(time.time() * 1e6)
    rng = random.Random(1)
    return sorted({now - rng.randrange(600_000_000, 3_000_000_000) for _ in range(300)}
                  | {now - rng.randrange(60_000_000, 660_000_000) for _ in range(3000)}
                  | {now - rng.randrange(30_000_000, 31_000_000) for _ in range(700)})


@pytest.mark.parametrize("order", ["newest first", "oldest first", "random"])
def test_window_walk_reads_every_trace_whatever_the_order(order: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zipkin, "_SLICE", 200)
    starts = _bursty()
    asked: list[tuple[int, int, int]] = []
    source = _source(starts, order, asked)
    seen: list[int] = []
    window = source.trace_window("svc", 3600.0, progress=seen.append)
    assert sorted(window.trace_ids) == sorted(f"{s:032x}" for s in starts)
    assert len(set(window.trace_ids)) == len(window.trace_ids) == len(starts)
    assert sorted(window.start_us.tolist()) == starts
    assert window.duration_ms.tolist() == [(1000 + s % 997) / 1000 for s in window.start_us.tolist()]
    # Progress after every slice, never going back; the slices' requests bounded (no slice of one ms each).
    assert len(seen) == len(asked) and seen == sorted(seen) and seen[-1] == len(starts)
    assert max(n for _, _, n in asked) == 200 and len(asked) < 200
    # Walked back from the window's end: the first slice asked reaches the end; later ones end earlier.
    assert asked[0][1] == max(hi for _, hi, _ in asked)
    # load() answers from the read, in the order asked, without asking Zipkin again.
    before = len(asked)
    ids = window.trace_ids[::-97]
    assert [t.trace_id for t in source.load(ids)] == ids and len(asked) == before
    source.close()


def test_load_asks_for_traces_not_in_the_last_window() -> None:
    starts = _bursty()[:50]
    source = _source(starts, "random", [])
    wanted = [f"{starts[3]:032x}", "f" * 32, f"{starts[0]:032x}"]
    assert [t.trace_id for t in source.load(wanted)] == [wanted[0], wanted[2]]  # the unknown one left out
    source.close()


def test_ctrl_c_ends_the_window_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C (raised from the progress callback, in the main thread, as the signal is) ends the
    read at once: no further slice is asked for."""
    monkeypatch.setattr(zipkin, "_SLICE", 200)
    asked: list[tuple[int, int, int]] = []
    source = _source(_bursty(), "random", asked)
    calls: list[int] = []

    def progress(n: int) -> None:
        calls.append(n)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        source.trace_window("svc", 3600.0, progress=progress)
    assert len(calls) == len(asked) == 3
    source.close()
