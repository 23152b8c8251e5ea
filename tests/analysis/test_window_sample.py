"""The one uniform sample of a window (``_window.sample_indices``): ``slow`` and the other window
analyses (``stats``, ``drift``, the UI's pages) draw the same traces from the same window, so the
UI's per-trace cache serves the second from the first's read, over a real local store."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from mltrace.analysis import slow_traces
from mltrace.analysis._window import sample_indices, sample_window
from mltrace.export import LocalStore
from mltrace.query import Trace, open_source
from mltrace.ui._data import CachedSource

N, SCAN = 400, 60


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("sample") / "traces.db"
    rng = random.Random(5)
    resource = Resource.create({"service.name": "samp"})
    now = time.time_ns() - int(600e9)
    spans: list[ReadableSpan] = []
    for i in range(N):
        tid, t0 = rng.getrandbits(128) or 1, now + i * int(1e9)
        root = SpanContext(tid, rng.getrandbits(64) or 1, False, TraceFlags(1))
        inf = SpanContext(tid, rng.getrandbits(64) or 1, False, TraceFlags(1))
        ms = int((2 + rng.random() * 8) * 1e6)
        spans.append(ReadableSpan(name="inference", context=inf, parent=root, resource=resource,
                                  kind=SpanKind.INTERNAL, attributes={"ml.stage": "inference", "ml.input.size": i % 7},
                                  start_time=t0 + 1000, end_time=t0 + 1000 + ms))
        spans.append(ReadableSpan(name="POST /predict", context=root, parent=None, resource=resource,
                                  kind=SpanKind.SERVER, attributes={"http.route": "/predict"},
                                  start_time=t0, end_time=t0 + ms + 2000))
    st = LocalStore(Path(path))
    st.write(spans)
    st.close()
    return f"local://{path}"


class Recording:
    """The local source, with every ``load`` it is asked for written down."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.url, self.loads = inner, inner.url, []  # type: ignore[var-annotated]

    def trace_window(self, *args: Any, **kwargs: Any) -> Any:
        return self.inner.trace_window(*args, **kwargs)

    def load(self, trace_ids: list[str], progress: Any = None) -> list[Trace]:
        self.loads.append(list(trace_ids))
        return self.inner.load(trace_ids, progress)

    def find_traces(self, *args: Any, **kwargs: Any) -> list[Trace]:
        return self.inner.find_traces(*args, **kwargs)


def test_sample_indices_all_or_a_fixed_uniform_sample() -> None:
    assert sample_indices(0, 10) == [] and sample_indices(5, 5) == [0, 1, 2, 3, 4]
    drawn = sample_indices(1000, 100)
    assert len(set(drawn)) == 100 and drawn == sorted(drawn) and drawn[0] >= 0 and drawn[-1] < 1000
    assert drawn == sample_indices(1000, 100)  # fixed seed: the same store gives the same answer
    assert 250 < sum(drawn) / 100 < 750  # spread across the window, not its head
    assert len(sample_indices(10, 0)) == 1  # at least one trace is analysed


def test_slow_analyses_the_traces_sample_window_draws(store: str) -> None:
    source = Recording(open_source(store))
    report = slow_traces(source, service="samp", since="1h", scan=SCAN)
    assert (report["scanned"], report["analysed"], report["sampled"]) == (N, SCAN, True)
    slow_loaded = source.loads[-1]
    window = sample_window(source, "samp", 3600.0, SCAN)
    drawn = source.loads[-1]
    assert len(drawn) == SCAN and [t.trace_id for t in window.traces] == drawn
    assert slow_loaded[:SCAN] == drawn  # slow loads its sample first, then the window's slowest
    assert window.sample_weight == report["sample_weight"] == round(N / SCAN, 3)
    source.inner.close()


def test_the_ui_cache_serves_the_second_analysis_from_the_first_read(store: str) -> None:
    recording = Recording(open_source(store))
    cached = CachedSource(recording)  # type: ignore[arg-type]
    slow_traces(cached, service="samp", since="1h", scan=SCAN)
    reads = len(recording.loads)
    window = sample_window(cached, "samp", 3600.0, SCAN)
    assert len(window.traces) == SCAN
    assert len(recording.loads) == reads  # every sampled trace was already loaded by slow
    recording.inner.close()
