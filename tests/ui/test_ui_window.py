"""The overview over a window larger than ``scan`` (issues 14, 17): one page load reads each trace
once for its slow, stats and drift answers and its charts, and the charts stand for the window."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from mltrace.export import LocalStore
from mltrace.query import open_source
from mltrace.ui._data import CachedSource
from mltrace.ui._views import overview


class _Counting:
    """The local source, counting what its ``load`` and ``find_traces`` decode."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.url, self.loaded, self.found = inner, inner.url, [], 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def load(self, trace_ids: list[str], progress: Any = None) -> Any:
        self.loaded.extend(trace_ids)
        return self.inner.load(trace_ids, progress)

    def find_traces(self, *args: Any, **kwargs: Any) -> Any:
        out = self.inner.find_traces(*args, **kwargs)
        self.found += len(out)
        return out


def test_overview_reads_each_trace_once_and_weights_its_charts(tmp_path: Path) -> None:
    rng = random.Random(5)
    resource = Resource.create({"service.name": "ov"})
    store = LocalStore(tmp_path / "t.db")
    now, n, spans = time.time_ns(), 2_000, []
    for i in range(n):
        t0 = now - int(3_000e9) + i * int(3_000e9 / n)
        tid = rng.getrandbits(128) or 1
        root = SpanContext(tid, rng.getrandbits(64) or 1, False, TraceFlags(1))
        ctx = SpanContext(tid, rng.getrandbits(64) or 1, False, TraceFlags(1))
        dur = (30 if i % 13 == 0 else 2) * 1_000_000
        spans.append(ReadableSpan(name="inference", context=ctx, parent=root, resource=resource,
                                  kind=SpanKind.INTERNAL, attributes={"ml.stage": "inference"},
                                  start_time=t0 + 1000, end_time=t0 + 1000 + dur))
        spans.append(ReadableSpan(name="POST /predict", context=root, parent=None, resource=resource,
                                  kind=SpanKind.SERVER, attributes={"http.route": "/predict"},
                                  start_time=t0, end_time=t0 + dur + 2000))
    store.write(spans)
    store.close()
    counting = _Counting(open_source(f"local://{tmp_path / 't.db'}"))
    ctx = overview(CachedSource(counting), {"service": "ov", "since": "1h", "scan": "500"}, {})  # type: ignore[arg-type]
    assert ctx["stats"]["scanned"] == n and ctx["stats"]["sampled"] is True
    assert len(counting.loaded) == len(set(counting.loaded))  # no trace decoded twice
    assert len(counting.loaded) <= 500 + 10 and counting.found == 0  # the sample plus slow's slowest
    assert ctx["count"] == 500
    # The rate chart stands for the window: its bars sum to ~n requests, not the sample's 500.
    total = sum(ctx["bucket_s"] * float(v) for v in _bar_values(ctx["charts"]["rate"]))
    assert abs(total - n) < 0.05 * n


def _bar_values(chart: Any) -> list[float]:
    """Each bar's value, from its tooltip (``"12:00: 0.667/s"``)."""
    return [float(bar["title"].rsplit(": ", 1)[1].removesuffix("/s").replace(",", "")) for bar in chart["bars"]]
