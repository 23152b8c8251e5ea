"""`show`'s critical path and span events, and `mltrace diff` (issue 14), over a real local store
written by the real SDK and the ``local`` exporter's writer."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from _cli_run import run, run_json
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

from mltrace.analysis._critical_path import critical_path
from mltrace.export import LocalStore
from mltrace.query import open_source

MS = 1_000_000


def _span(name: str, tid: int, sid: int, parent: int | None, start: int, end: int, **attrs: Any) -> ReadableSpan:
    ctx = SpanContext(tid, sid, False, TraceFlags(1))
    par = SpanContext(tid, parent, False, TraceFlags(1)) if parent else None
    return ReadableSpan(name=name, context=ctx, parent=par, resource=Resource.create({"service.name": "pathsvc"}),
                        attributes=attrs, kind=SpanKind.SERVER if parent is None else SpanKind.INTERNAL,
                        start_time=start, end_time=end)


def _trace(tid: int, t0: int, inference_ms: int, size: int) -> list[ReadableSpan]:
    """root 0..total; feature_lookup and a cache warm-up run side by side, then inference."""
    total = 10 + inference_ms + 2
    return [
        _span("POST /predict", tid, 1, None, t0, t0 + total * MS, **{"http.route": "/predict"}),
        _span("feature_lookup", tid, 2, 1, t0 + 1 * MS, t0 + 9 * MS, **{"ml.stage": "feature_lookup"}),
        _span("warm_cache", tid, 3, 1, t0 + 1 * MS, t0 + 5 * MS, **{"ml.stage": "feature_lookup"}),
        _span("inference", tid, 4, 1, t0 + 10 * MS, t0 + (10 + inference_ms) * MS,
              **{"ml.stage": "inference", "ml.input.size": size}),
    ]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("diff") / "traces.db"
    st = LocalStore(path)
    now = time.time_ns() - 60_000 * MS
    spans: list[ReadableSpan] = []
    for i in range(21):  # typical traces: inference 3..5 ms, small inputs
        spans += _trace(0x100 + i, now + i * 100 * MS, 3 + i % 3, 32)
    spans += _trace(0xBAD, now + 30_000 * MS, 80, 4096)  # the slow one
    st.write(spans)
    # a span with an exception event, through the real SDK
    from opentelemetry.sdk.trace import TracerProvider

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "pathsvc"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    with provider.get_tracer("t").start_as_current_span("POST /predict", kind=SpanKind.SERVER) as root:
        root.record_exception(ValueError("bad input row 7"))
    st.write(memory.get_finished_spans())
    st.close()
    return path


def test_critical_path_skips_the_child_running_beside_it(store: Path) -> None:
    source = open_source(f"local://{store}")
    trace = source.get_trace(f"{0xBAD:032x}")
    path = critical_path(trace)
    names = [seg["name"] for seg in path]
    assert "warm_cache" not in names  # ran beside feature_lookup, which ended later
    assert names == ["POST /predict", "feature_lookup", "POST /predict", "inference", "POST /predict"]
    assert sum(seg["duration_ms"] for seg in path) == pytest.approx(trace.duration_ms)
    source.close()


def test_show_prints_the_critical_path_and_events(
    capsys: pytest.CaptureFixture[str], store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "160")
    data = run_json(capsys, "show", f"{0xBAD:032x}", "--source", f"local://{store}")
    assert data["critical_path_by_stage"]["inference"] == pytest.approx(80.0)
    for key in ("trace_id", "name", "services", "duration_ms", "stages", "dominant_stage", "spans"):
        assert key in data  # the existing --json fields
    code, out, _ = run(capsys, "show", f"{0xBAD:032x}", "--source", f"local://{store}")
    assert code == 0 and "Critical path:" in out
    source = open_source(f"local://{store}")
    ids = source.store.trace_ids(service="pathsvc")  # type: ignore[attr-defined]
    with_event = next(t for t in ids if len(source.get_trace(t).spans) == 1)
    source.close()
    data = run_json(capsys, "show", with_event, "--source", f"local://{store}")
    events = data["spans"][0]["events"]
    assert events[0]["name"] == "exception" and events[0]["attributes"]["exception.type"] == "ValueError"
    code, out, _ = run(capsys, "show", with_event, "--source", f"local://{store}")
    assert "exception: ValueError: bad input row 7" in out


def test_diff_lays_the_slow_trace_beside_a_typical_one(capsys: pytest.CaptureFixture[str], store: Path) -> None:
    data = run_json(capsys, "diff", f"{0xBAD:032x}", "--since", "3h", "--source", f"local://{store}")
    assert data["b_chosen"] == "typical"
    assert data["b"]["duration_ms"] == pytest.approx(16.0)  # the median of 15, 16, 17 ms traces
    assert data["largest_stage_delta"] == "inference"
    inference = next(r for r in data["stages"] if r["stage"] == "inference")
    assert inference["delta_ms"] == pytest.approx(76.0) and inference["a_critical_ms"] == pytest.approx(80.0)
    size = next(r for r in data["attributes"] if r["attribute"] == "ml.input.size")
    assert size == {"attribute": "ml.input.size", "a": 4096, "b": 32, "differs": True}
    assert data["attributes"][0]["differs"]  # differing attributes first
    given = run_json(capsys, "diff", f"{0xBAD:032x}", f"{0x101:032x}", "--source", f"local://{store}")
    assert given["b_chosen"] == "given" and given["b"]["trace_id"] == f"{0x101:032x}"
    code, out, _ = run(capsys, "diff", f"{0xBAD:032x}", "--since", "3h", "--source", f"local://{store}")
    assert code == 0 and "a typical trace of the same route" in " ".join(out.split()) and "ml.input.size" in out
