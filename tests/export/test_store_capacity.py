"""The local store keeps up with a CPU-bound app (issue 11, item 7), and its loss count is true.

A real uvicorn (1 and 4 workers: 4 processes writing one SQLite file in WAL mode) serves a
FastAPI app shaped like the README's example whose inference holds the CPU and the GIL for ~3 ms
per request in one C call (a compiled model that does not release the GIL: the case that starved
the old per-row writer). Keep-alive clients drive it at its own capacity for a bounded time; the
workers are then stopped with SIGTERM and write their export counters. Every answered request's
trace must be in the store, and the counters must agree with the store: nothing dropped, every
span counted as exported is a row. The app runs with the SDK's 2,048-span queue, not the store's
32,768, so that the queue cannot hide a writer that falls behind for the run's 12 s.

The other tests check the store's writer thread in-process: spans counted exported only once
written, flush waiting for the writer, waiting batches joined into one statement, a failure in the
writer thread counted, a SimpleSpanProcessor still writing synchronously, SDK spans round-tripping.
"""

from __future__ import annotations

import json
import random
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from _servers import ServerProcess, free_port, server_env
from opentelemetry.sdk.trace import TracerProvider

from mltrace.export._counters import COUNTERS
from mltrace.export._counting import CountingBatchSpanProcessor, CountingExporter
from mltrace.export._local_store import LocalStore, LocalStoreExporter

APP = '''
import json, os, time
from contextlib import asynccontextmanager
from pathlib import Path

import mltrace
from fastapi import FastAPI
from opentelemetry import trace

mltrace.configure(service_name="capacity-test", exporter="local", local_path=os.environ["APP_DB"])


def _calibrate(ms):
    n, best = 100_000, float("inf")
    for _ in range(5):
        t = time.perf_counter()
        sum(range(n))
        best = min(best, time.perf_counter() - t)
    return max(1, int(n * ms / 1000 / best))


N = _calibrate(3.0)


@asynccontextmanager
async def lifespan(app):
    yield
    trace.get_tracer_provider().force_flush(30_000)
    Path(os.environ["APP_STATS"], f"{os.getpid()}.json").write_text(json.dumps(mltrace.export_stats()))


app = FastAPI(lifespan=lifespan)
app.add_middleware(mltrace.MLTraceMiddleware)


@app.get("/health")
async def health():
    return {"status": "ok"}


@app.post("/predict")
async def predict(body: dict[str, list[float]]):
    with mltrace.stage("preprocess"):
        values = [v * 2 for v in body["values"]]
    with mltrace.stage("inference"):
        total = float(sum(range(N)))  # ~3 ms in one C call: the GIL is not let go
    with mltrace.stage("postprocess"):
        return {"score": sum(values) / len(values), "work": total}
'''


def _drive(url: str, seconds: float, clients: int) -> list[str]:
    """``clients`` keep-alive clients posting back to back for ``seconds``: the app's capacity."""
    stop_at = time.monotonic() + seconds

    def client(_: int) -> list[str]:
        ids = []
        with httpx.Client(base_url=url, timeout=30) as c:
            while time.monotonic() < stop_at:
                r = c.post("/predict", json={"values": [random.random() for _ in range(32)]})
                assert r.status_code == 200, r.text
                ids.append(r.headers["x-trace-id"])
        return ids

    with ThreadPoolExecutor(clients) as pool:
        return [t for ids in pool.map(client, range(clients)) for t in ids]


# The SDK's default queue (2,048 spans) instead of the local store's 32,768: a writer that falls
# behind the app for the run's length would overflow it (counted, and failing the test), where a
# deep queue could hide it for half a minute. The per-row writer of issue 11 fell behind here.
TEST_QUEUE = 2_048


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 4])
def test_no_span_lost_at_capacity_under_uvicorn(tmp_path: Path, workers: int) -> None:
    (tmp_path / "capacity_app.py").write_text(APP)
    db, stats = tmp_path / "traces.db", tmp_path / "stats"
    stats.mkdir()
    port = free_port()
    server = ServerProcess(
        ["uvicorn", "capacity_app:app", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
         "--log-level", "warning", "--no-access-log"],
        port=port,
        env=server_env(
            {"APP_DB": str(db), "APP_STATS": str(stats), "OTEL_BSP_MAX_QUEUE_SIZE": str(TEST_QUEUE)},
            pythonpath=[tmp_path],
        ),
        log=tmp_path / "server.log",
        cwd=tmp_path,
    )
    with server:
        answered = _drive(server.url, seconds=12.0, clients=4 * workers + 4)
        server.stop(timeout=60)  # SIGTERM: each worker flushes, then writes its counters
    assert len(answered) > 200, f"only {len(answered)} requests answered:\n{server.output()}"
    counters = [json.loads(p.read_text()) for p in stats.glob("*.json")]
    assert len(counters) == workers, f"{len(counters)} of {workers} workers wrote counters:\n{server.output()}"
    with sqlite3.connect(db) as conn:
        servers = {r[0] for r in conn.execute("SELECT trace_id FROM spans WHERE kind = 'SERVER'")}
        (rows,) = conn.execute("SELECT COUNT(*) FROM spans").fetchone()
        per_trace = dict(conn.execute("SELECT trace_id, COUNT(*) FROM spans GROUP BY trace_id").fetchall())
    missing = set(answered) - servers
    dropped = sum(c["spans_dropped_total"] for c in counters)
    assert not missing, (
        f"{len(missing)} of {len(answered)} answered requests have no trace in the store "
        f"({dropped} spans counted as dropped; counters {counters})"
    )
    assert all(per_trace[t] == 4 for t in answered), "each request: a server span and three stages"
    assert dropped == 0
    assert sum(c["spans_exported"] for c in counters) == rows  # the count is true: exported == stored


def test_queue_full_is_counted_and_the_count_matches_the_store(tmp_path: Path) -> None:
    """A queue too small for a burst drops spans; every one is counted, and queued + dropped are
    exactly the spans ended, exported exactly the rows stored."""
    exporter = LocalStoreExporter(tmp_path / "burst.db")
    processor = CountingBatchSpanProcessor(
        CountingExporter(exporter, "local"), max_queue_size=64, max_export_batch_size=32, schedule_delay_millis=60_000
    )
    provider = TracerProvider()
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("burst")
    before = COUNTERS.snapshot()
    n = 5_000
    for i in range(n):
        with tracer.start_as_current_span(f"s{i}"):
            pass
    provider.shutdown()
    after = COUNTERS.snapshot()
    delta = {k: after[k] - before[k] for k in ("spans_queued", "spans_dropped_queue_full", "spans_exported")}
    (rows,) = LocalStore(tmp_path / "burst.db", readonly=True)._conn.execute("SELECT COUNT(*) FROM spans").fetchone()
    assert delta["spans_dropped_queue_full"] > 0, "the burst should overflow a 64-span queue"
    assert delta["spans_queued"] + delta["spans_dropped_queue_full"] == n
    assert delta["spans_exported"] == rows == delta["spans_queued"]


def test_a_batch_over_512_spans_is_one_transaction(tmp_path: Path) -> None:
    """Batches larger than one statement's rows (OTEL_BSP_MAX_EXPORT_BATCH_SIZE=100000) are written
    whole, and attribute values (tuples, NaN) read back as before."""
    provider = TracerProvider()
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("big")
    for i in range(1_300):
        with tracer.start_as_current_span(f"s{i}", attributes={"i": i, "t": (1, 2), "nan": float("nan")}):
            pass
    spans = memory.get_finished_spans()
    store = LocalStore(tmp_path / "big.db")
    store.write(spans)
    (rows,) = store._conn.execute("SELECT COUNT(*) FROM spans").fetchone()
    assert rows == 1_300
    row = store.trace(format(spans[7].context.trace_id, "032x"))[0]
    assert row["attributes"]["i"] == 7 and row["attributes"]["t"] == [1, 2]
    assert row["attributes"]["nan"] != row["attributes"]["nan"]  # NaN survives, as before


def test_the_store_is_pruned_to_its_bound_oldest_first_and_counted(tmp_path: Path) -> None:
    """``max_spans`` holds: the oldest spans go (with their traces' payloads), in one transaction,
    and every pruned span is counted."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("prune")
    for i in range(3_000):
        with tracer.start_as_current_span(f"s{i}"):
            pass
    spans = sorted(memory.get_finished_spans(), key=lambda s: s.start_time or 0)
    exporter = LocalStoreExporter(tmp_path / "p.db", max_spans=1_000)
    first = format(spans[0].context.trace_id, "032x")
    exporter.store.put_payload(first, format(spans[0].context.span_id, "016x"), "input", "{}", 1)
    before = COUNTERS.snapshot()["spans_pruned_local"]
    for i in range(0, 3_000, 500):
        exporter.export(spans[i : i + 500])
    conn = exporter.store._conn
    (rows,) = conn.execute("SELECT COUNT(*) FROM spans").fetchone()
    (oldest,) = conn.execute("SELECT MIN(start_ns) FROM spans").fetchone()
    assert rows == 1_000 and oldest == spans[2_000].start_time
    assert COUNTERS.snapshot()["spans_pruned_local"] - before == 2_000
    assert exporter.store.payloads(first) == []
    assert not conn.in_transaction
    exporter.shutdown()


def _sdk_spans(n: int) -> list[Any]:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("writer")
    for i in range(n):
        with tracer.start_as_current_span(f"s{i}", attributes={"i": i, "ml.stage": "inference"}):
            pass
    return list(memory.get_finished_spans())


def _rows(path: Path) -> int:
    with sqlite3.connect(path) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM spans").fetchone()[0])


def test_writer_thread_counts_spans_when_written_and_flush_waits_for_it(tmp_path: Path) -> None:
    """Under the batch processor the store writes in its own thread: ``export`` returns once the
    batch is encoded and handed over, ``force_flush`` returns once it is written, and the spans are
    counted exported when they are rows (not when handed over)."""
    exporter = LocalStoreExporter(tmp_path / "w.db")
    processor = CountingBatchSpanProcessor(CountingExporter(exporter, "local"), schedule_delay_millis=60_000)
    assert exporter.counts_exports  # the processor started the writer thread
    spans = _sdk_spans(3_000)
    before = COUNTERS.snapshot()
    exporter.store._lock.acquire()  # hold the writer at its statement
    try:
        assert exporter.export(spans[:1_000]).name == "SUCCESS"
        mid = COUNTERS.snapshot()
        assert mid["spans_exported"] == before["spans_exported"]  # handed over, not yet written
    finally:
        exporter.store._lock.release()
    for span in spans[1_000:]:
        processor.on_end(span)
    assert processor.force_flush(30_000)
    after = COUNTERS.snapshot()
    assert after["spans_exported"] - before["spans_exported"] == 3_000 == _rows(tmp_path / "w.db")
    processor.shutdown()
    assert exporter.export(spans[:10]).name == "FAILURE"  # closed: refused and counted
    assert COUNTERS.snapshot()["spans_dropped_after_shutdown"] - after["spans_dropped_after_shutdown"] == 10


def test_batches_waiting_for_the_writer_are_joined_into_one_statement(tmp_path: Path) -> None:
    """When the writer falls behind, the 512-span batches waiting for it go into one statement of
    up to 2,048 rows: more spans per GIL hand-off the further behind it is."""
    exporter = LocalStoreExporter(tmp_path / "j.db")
    exporter.start_writer_thread()
    inserts: list[int] = []
    exporter.store._conn.set_trace_callback(
        lambda sql: inserts.append(sql.count("),(") + 1) if sql.startswith("INSERT OR REPLACE INTO spans") else None
    )
    spans = _sdk_spans(1 + 4 * 512)
    writer = exporter._writer
    assert writer is not None
    exporter.store._lock.acquire()
    try:
        exporter.export(spans[:1])  # the writer takes this one and waits for the store...
        deadline = time.monotonic() + 30
        while not writer._busy and time.monotonic() < deadline:
            time.sleep(0.01)
        for i in range(1, len(spans), 512):  # ... while four batches queue behind it
            exporter.export(spans[i : i + 512])
    finally:
        exporter.store._lock.release()
    assert exporter.force_flush(30_000)
    assert _rows(tmp_path / "j.db") == 2_049
    assert inserts == [1, 2_048], inserts
    exporter.shutdown()


def test_a_failed_write_in_the_writer_thread_is_counted(tmp_path: Path) -> None:
    """A statement that fails in the writer thread (here: the table is gone) counts its spans as
    export failures; nothing is counted exported."""
    exporter = LocalStoreExporter(tmp_path / "f.db")
    exporter.start_writer_thread()
    with sqlite3.connect(tmp_path / "f.db") as conn:
        conn.execute("DROP TABLE spans")
    before = COUNTERS.snapshot()
    assert exporter.export(_sdk_spans(100)).name == "SUCCESS"  # handed over
    assert exporter.force_flush(30_000)
    after = COUNTERS.snapshot()
    assert after["spans_export_failed"] - before["spans_export_failed"] == 100
    assert after["spans_exported"] == before["spans_exported"]
    exporter.shutdown()


def test_without_a_batch_processor_export_writes_before_returning(tmp_path: Path) -> None:
    """``configure(batch=False)``: a SimpleSpanProcessor calls ``export`` per span and expects it
    written when it returns (no writer thread)."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor

    exporter = LocalStoreExporter(tmp_path / "s.db")
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(CountingExporter(exporter, "local")))
    with provider.get_tracer("s").start_as_current_span("one"):
        pass
    assert not exporter.counts_exports
    assert _rows(tmp_path / "s.db") == 1
    provider.shutdown()


def test_sdk_spans_round_trip_with_events_links_and_resource(tmp_path: Path) -> None:
    """The encoder reads an SDK span's own attribute dict, events and links (not the copying public
    properties): what it stores must be what those properties say."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode

    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "rt", "k": 1}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("rt")
    with tracer.start_as_current_span("a") as a:
        pass
    with tracer.start_as_current_span(
        "b", kind=SpanKind.SERVER, links=[Link(a.get_span_context(), {"why": "batch"})], attributes={"n": 1}
    ) as b:
        b.add_event("e", {"x": 1, "t": (1, 2)})
        b.set_attribute("later", "set after start")
        b.set_status(Status(StatusCode.ERROR, "boom"))
    store = LocalStore(tmp_path / "rt.db")
    store.write(memory.get_finished_spans())
    (row,) = store.trace(format(b.get_span_context().trace_id, "032x"))
    assert row["attributes"] == {"n": 1, "later": "set after start"}
    assert row["events"] == [{"name": "e", "time_ns": b.events[0].timestamp, "attributes": {"x": 1, "t": [1, 2]}}]
    assert row["links"] == [{"trace_id": format(a.get_span_context().trace_id, "032x"),
                             "span_id": format(a.get_span_context().span_id, "016x"), "attributes": {"why": "batch"}}]
    assert (row["kind"], row["status_code"], row["status_message"]) == ("SERVER", "ERROR", "boom")
    assert row["service_name"] == "rt" and row["resource"]["k"] == 1
    assert row["span_id"] == format(b.get_span_context().span_id, "016x") and row["parent_span_id"] is None
