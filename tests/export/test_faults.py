"""Backend faults never reach the served request: refused, hanging, slow and failing backends.

Each fault is a real socket server on 127.0.0.1 (tests/_loopback.py), for each exporter that
speaks to a network backend: OTLP/HTTP, OTLP/gRPC and Zipkin. Latency is measured in
benchmarks/bench_faults.py, not asserted here; the bounds asserted are the guarantees themselves
(a bounded queue, a bounded shutdown) with generous slack.
"""

from __future__ import annotations

import contextlib
import gc
import json
import os
import subprocess
import sys
import textwrap
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest
from _loopback import GrpcBackend, HangServer, HttpBackend, closed_port
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider

from mltrace._configure import MLTrace
from mltrace.export import COUNTERS, CountingBatchSpanProcessor, CountingExporter, build_exporter
from mltrace.export._metrics import enable_metrics

TESTS = Path(__file__).parents[1]  # _loopback.py
EXPORTERS = ("otlp-http", "otlp-grpc", "zipkin")
FAULTS = ("refused", "hang", "slow", "errors")
EXPORT_TIMEOUT_S = 1  # each export call gives up after this (OTEL_EXPORTER_*_TIMEOUT)
SHUTDOWN_S = 2.0
SLACK_S = 3.0  # generous: the bound is what is asserted, not the speed


@contextlib.contextmanager
def backend(exporter: str, fault: str) -> Iterator[str]:
    """A misbehaving backend for ``exporter``; yields the endpoint URL to export to."""
    if fault == "refused":
        yield f"http://127.0.0.1:{closed_port()}"
        return
    if fault == "hang":
        with HangServer() as hang:
            yield hang.url
        return
    delay = 0.2 if fault == "slow" else 0.0
    if exporter == "otlp-grpc":
        with GrpcBackend(code="UNAVAILABLE" if fault == "errors" else None, delay=delay) as grpc_server:
            yield grpc_server.url
    else:
        with HttpBackend(status=503 if fault == "errors" else 200, delay=delay) as http:
            yield http.url


_workers: list[threading.Thread] = []


@pytest.fixture(autouse=True)
def _no_bleeding() -> Iterator[None]:
    """Counters are process-wide: wait for each test's export threads to end before the next test."""
    yield
    deadline = time.monotonic() + 30
    while _workers:
        _workers.pop().join(max(0.0, deadline - time.monotonic()))


KINDS = {"otlp-http": ("otlp", "http"), "otlp-grpc": ("otlp", "grpc"), "zipkin": ("zipkin", None)}


def make_pipeline(
    exporter: str, url: str, queue: int = 64, batch: int = 16
) -> tuple[MLTrace, CountingBatchSpanProcessor]:
    """The pipeline configure() builds (counting exporter behind a counting BatchSpanProcessor)."""
    name, protocol = KINDS[exporter]
    inner = build_exporter(name, endpoint=url, protocol=protocol)
    assert inner is not None
    bsp = CountingBatchSpanProcessor(
        CountingExporter(inner, exporter), max_queue_size=queue, max_export_batch_size=batch, schedule_delay_millis=50
    )
    provider = TracerProvider()
    provider.add_span_processor(bsp)
    _workers.append(bsp._batch_processor._worker_thread)
    return MLTrace(provider=provider, exporter=exporter, processors=[bsp]), bsp


@pytest.fixture(autouse=True)
def _short_timeouts(monkeypatch: pytest.MonkeyPatch) -> None:
    """Exporters give up after EXPORT_TIMEOUT_S instead of 10 s (read when they are built)."""
    for var in ("OTEL_EXPORTER_OTLP_TIMEOUT", "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_ZIPKIN_TIMEOUT"):
        monkeypatch.setenv(var, str(EXPORT_TIMEOUT_S))


def delta(before: dict[str, int]) -> dict[str, int]:
    after = COUNTERS.snapshot()
    return {k: after[k] - before.get(k, 0) for k in after}


@pytest.mark.parametrize("fault", FAULTS)
@pytest.mark.parametrize("exporter", EXPORTERS)
def test_fault_is_counted_and_shutdown_is_bounded(exporter: str, fault: str) -> None:
    """Spans the backend does not take are counted as dropped; shutdown returns within its bound."""
    sent = 300
    with backend(exporter, fault) as url:
        handle, bsp = make_pipeline(exporter, url)
        tracer = handle.provider.get_tracer("faults")
        before = COUNTERS.snapshot()
        for i in range(sent):
            tracer.start_span(f"s{i}").end()  # never blocks, whatever the backend does
        assert len(bsp._batch_processor._queue) <= 64
        start = time.monotonic()
        finished = handle.shutdown(timeout_s=SHUTDOWN_S)
        took = time.monotonic() - start
        d = delta(before)
    d["spans_pending"] = d["spans_queued"] - d["spans_exported"] - d["spans_export_failed"]  # unclamped
    keys = ("spans_exported", "spans_export_failed", "spans_dropped_queue_full", "spans_dropped_total", "spans_pending")
    print(json.dumps({"exporter": exporter, "fault": fault, "sent": sent, **{k: d[k] for k in keys},
                      "shutdown_finished": finished, "shutdown_s": round(took, 2)}))  # for docs/reliability.md
    assert took < SHUTDOWN_S + SLACK_S
    assert d["spans_queued"] + d["spans_dropped_queue_full"] == sent  # every span ended was seen
    if fault == "slow":
        assert d["spans_exported"] > 0 and d["spans_export_failed"] == 0
    else:
        assert d["spans_exported"] == 0 and d["spans_dropped_total"] > 0
    assert d["spans_exported"] + d["spans_dropped_total"] + d["spans_pending"] == sent
    if finished:  # nothing in flight any more: every span is exported or counted, none silently lost
        assert d["spans_pending"] == 0
        assert d["spans_exported"] + d["spans_export_failed"] == d["spans_queued"]
        assert d["spans_exported"] + d["spans_dropped_total"] == sent


def test_queue_bounds_memory_while_the_backend_hangs() -> None:
    """12,000 spans against a hung backend: the queue never exceeds its limit and memory stays flat."""
    with HangServer() as hang:
        handle, bsp = make_pipeline("otlp-http", hang.url, queue=256, batch=64)
        tracer = handle.provider.get_tracer("faults")
        before = COUNTERS.snapshot()
        gc.collect()
        tracemalloc.start()
        peak_queue = 0
        for i in range(12_000):
            tracer.start_span("s", attributes={"i": i, "payload": "x" * 100}).end()
            if i == 2_000:
                gc.collect()
                early, _ = tracemalloc.get_traced_memory()
            if i % 100 == 0:
                peak_queue = max(peak_queue, len(bsp._batch_processor._queue))
        gc.collect()
        late, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        d = delta(before)
        handle.shutdown(timeout_s=0.5)
    assert peak_queue <= 256
    assert d["spans_queued"] + d["spans_dropped_queue_full"] == 12_000
    assert d["spans_dropped_queue_full"] > 9_000  # the worker drains a batch per export timeout at best
    assert late - early < 2 * 1024 * 1024  # 10,000 more spans, < 2 MiB more memory (they are dropped)


APP = """
import json, sys, time
sys.path.insert(0, {tests!r})
from fastapi import FastAPI, HTTPException
from starlette.testclient import TestClient
import mltrace
from mltrace.export import COUNTERS
from _loopback import closed_port, HangServer, HttpBackend, GrpcBackend

fault = {fault!r}
servers = []
def url(kind):
    if fault == "refused":
        return f"http://127.0.0.1:{{closed_port()}}"
    delay = 0.2 if fault == "slow" else 0
    if fault == "hang":
        servers.append(HangServer())
    elif kind == "grpc":
        servers.append(GrpcBackend(code="UNAVAILABLE" if fault == "errors" else None, delay=delay))
    else:
        servers.append(HttpBackend(status=503 if fault == "errors" else 200, delay=delay))
    return servers[-1].url

handles = [
    mltrace.configure(service_name="faults", exporter="otlp", protocol="http", endpoint=url("http")),
    mltrace.configure(exporter="otlp", protocol="grpc", endpoint=url("grpc")),
    mltrace.configure(exporter="zipkin", endpoint=url("http")),
]
app = FastAPI()
app.add_middleware(mltrace.MLTraceMiddleware)

@mltrace.inference(model="m")
def predict(x):
    return sum(x)

@app.post("/predict")
def route(body: dict) -> dict:
    with mltrace.stage("preprocess") as s:
        s.record_input(body["x"])
    return {{"y": predict(body["x"])}}

@app.get("/missing")
def missing() -> None:
    raise HTTPException(404)

@app.get("/teapot")
def teapot() -> None:
    raise HTTPException(418, "short and stout")

@app.get("/boom")
def boom() -> None:
    raise RuntimeError("model exploded")

client = TestClient(app, raise_server_exceptions=False)
calls = [("post", "/predict", 200)] * 4 + [("get", "/missing", 404), ("get", "/teapot", 418), ("get", "/boom", 500)]
wrong = []
for i in range(60):
    for method, path, want in calls:
        r = getattr(client, method)(path, **({{"json": {{"x": [1.0, 2.0, i]}}}} if method == "post" else {{}}))
        if r.status_code != want or (path == "/predict" and r.json() != {{"y": 3.0 + i}}):
            wrong.append([path, r.status_code])
start = time.monotonic()
finished = [h.shutdown(timeout_s=2.0) for h in handles[:1]]
took = time.monotonic() - start
print(json.dumps({{"wrong": wrong, "requests": 60 * len(calls), "stats": COUNTERS.snapshot(),
                  "shutdown_s": took, "finished": finished}}))
"""


@pytest.mark.parametrize("fault", FAULTS)
def test_served_requests_keep_status_codes_and_bodies(fault: str, tmp_path: Path) -> None:
    """A FastAPI app exporting to three broken backends answers every request exactly as designed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MLTRACE_"))}
    env.update(
        OTEL_EXPORTER_OTLP_TIMEOUT=str(EXPORT_TIMEOUT_S),
        OTEL_EXPORTER_ZIPKIN_TIMEOUT=str(EXPORT_TIMEOUT_S),
        OTEL_BSP_MAX_QUEUE_SIZE="128",
        OTEL_BSP_MAX_EXPORT_BATCH_SIZE="32",
        OTEL_BSP_SCHEDULE_DELAY="50",
    )
    code = textwrap.dedent(APP.format(tests=str(TESTS), fault=fault))
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["wrong"] == [] and out["requests"] == 420
    assert out["shutdown_s"] < 2.0 + SLACK_S
    stats = out["stats"]
    spans_made = stats["spans_queued"] + stats["spans_dropped_queue_full"]
    assert spans_made >= 3 * 420  # three exporters each saw at least the server span of every request
    if fault != "slow":
        assert stats["spans_dropped_total"] > 0


def test_drop_counters_are_opentelemetry_metrics() -> None:
    """With metrics on, ``mltrace.spans.dropped{reason}`` and friends are observable counters."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    assert enable_metrics(provider) is True
    assert enable_metrics(provider) is False  # once per provider
    before = COUNTERS.snapshot()
    COUNTERS.add("spans_dropped_queue_full", 3)
    COUNTERS.add("spans_exported", 5)
    data = reader.get_metrics_data()
    assert data is not None
    points: dict[tuple[str, str], int] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for p in metric.data.data_points:  # type: ignore[union-attr]
                    points[(metric.name, str((p.attributes or {}).get("reason", "")))] = int(p.value)  # type: ignore[union-attr]
    assert points[("mltrace.spans.dropped", "queue_full")] == before["spans_dropped_queue_full"] + 3
    assert points[("mltrace.spans.exported", "")] == before["spans_exported"] + 5
    reasons = {r for n, r in points if n == "mltrace.spans.dropped"}
    assert {"export_failed", "after_shutdown", "tail_overflow"} <= reasons
    provider.shutdown()


METRICS = """
import json
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
import mltrace
from mltrace.export import COUNTERS
mltrace.configure(exporter="none")  # MLTRACE_METRICS=true, before any MeterProvider exists
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
COUNTERS.add("spans_export_failed", 7)
names = {{}}
for rm in reader.get_metrics_data().resource_metrics:
    for sm in rm.scope_metrics:
        for m in sm.metrics:
            for p in m.data.data_points:
                names[m.name + ":" + str(dict(p.attributes or {{}}).get("reason", ""))] = p.value
print(json.dumps(names))
"""


def test_metrics_env_registers_on_a_provider_set_later(tmp_path: Path) -> None:
    """``MLTRACE_METRICS=true`` works even when the app sets its MeterProvider after configure()."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MLTRACE_"))}
    env["MLTRACE_METRICS"] = "true"
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(METRICS.format())],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    names = json.loads(proc.stdout.strip().splitlines()[-1])
    assert names["mltrace.spans.dropped:export_failed"] == 7
