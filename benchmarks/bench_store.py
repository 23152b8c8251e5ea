"""The local store's writer: spans written per second beside a busy thread, and loss at capacity.

    python benchmarks/bench_store.py write --rounds 5 --budget 1.5 --batch 512
    python benchmarks/bench_store.py serve --workers 1 --seconds 180
    python benchmarks/bench_store.py serve --workers 4 --clients 20 --seconds 150 --queue 2048
    python benchmarks/bench_store.py serve --workers 1 --seconds 12 --queue 2048 --writers "per row,two threads"

``write``: 20,000 spans shaped like a served request's (``bench_cli.synthetic_spans``, re-made by
the OpenTelemetry SDK so they are what an exporter receives) written in batches of ``--batch`` into
a fresh file per case, with nothing beside the writer, a thread spinning Python, or a thread making
back-to-back ~3 ms C calls that never let the GIL go. Three writers: "per row" (the original
per-row ``executemany``, kept here as :func:`legacy_write` only), "one thread" (``LocalStore.write``:
one statement per batch, encoded and executed in the calling thread, the writer before the store had
a thread of its own) and "two threads" (``LocalStoreExporter`` as the batch processor drives it:
encoded in the calling thread, executed in the store's writer thread; timed until ``force_flush``
returns, i.e. every span written). Each round runs every case in shuffled order; a case stops after
``--budget`` seconds. Printed: median and fastest round per case, the load average, the ratios.

``serve``: ``_store_app.py`` under real uvicorn (``--workers N``: N processes writing one SQLite
file in WAL mode), ~3 ms of GIL-holding CPU per request, driven by ``--clients`` keep-alive clients
for ``--seconds``; the workers are then stopped with SIGTERM, flush, and write their export counters.
Printed per writer (``--writers``): requests answered and spans made per second, traces missing from
the store, spans stored / exported / counted dropped; and, sampled every second, the store's rows
against the spans answered requests made: the store's rate, the backlog's maximum and its slope over
the second half (about 0 when the writer keeps up), and how many seconds of the app's spans the
export queues alone could absorb (``--queue`` sets ``OTEL_BSP_MAX_QUEUE_SIZE``; run longer than that
to show the writer keeps up rather than the queue hiding it).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from mltrace.export._local_store import LocalStore  # noqa: E402

# -- the previous commit's writer, for side-by-side runs only --------------------------------------


def _legacy_attrs(attributes: Any) -> str:
    if not attributes:
        return "{}"
    return json.dumps(
        {k: list(v) if isinstance(v, tuple | list) else v for k, v in attributes.items()}, separators=(",", ":")
    )


def _legacy_row(span: ReadableSpan) -> tuple[Any, ...]:
    ctx = span.context
    parent = span.parent
    resource = span.resource.attributes if span.resource is not None else {}
    events = [
        {"name": e.name, "time_ns": e.timestamp, "attributes": json.loads(_legacy_attrs(e.attributes))}
        for e in span.events
    ]
    links = [
        {
            "trace_id": format(link.context.trace_id, "032x"),
            "span_id": format(link.context.span_id, "016x"),
            "attributes": json.loads(_legacy_attrs(link.attributes)),
        }
        for link in span.links
    ]
    start = span.start_time or 0
    return (
        format(ctx.trace_id, "032x") if ctx else "",
        format(ctx.span_id, "016x") if ctx else "",
        format(parent.span_id, "016x") if parent is not None else None,
        span.name,
        span.kind.name,
        str(resource.get("service.name", "unknown_service")),
        start,
        span.end_time or start,
        span.status.status_code.name,
        span.status.description,
        _legacy_attrs(span.attributes),
        json.dumps(events, separators=(",", ":")),
        json.dumps(links, separators=(",", ":")),
        _legacy_attrs(resource),
    )


_LEGACY_COLUMNS = (
    "trace_id, span_id, parent_span_id, name, kind, service_name, start_ns, end_ns, "
    "status_code, status_message, attributes, events, links, resource"
)


def legacy_write(store: LocalStore, spans: Sequence[ReadableSpan]) -> None:
    """The old ``LocalStore.write``: rows built per span, then ``executemany`` and commit.

    The store's connection is in autocommit mode now; BEGIN ... COMMIT around ``executemany`` is
    what the old connection's implicit transaction did, step for step."""
    rows = [_legacy_row(s) for s in spans]
    store._check_fork()
    with store._lock:
        store._conn.execute("BEGIN")
        store._conn.executemany(
            f"INSERT OR REPLACE INTO spans ({_LEGACY_COLUMNS}) VALUES ({','.join('?' * 14)})", rows
        )
        store._conn.execute("COMMIT")


# -- write: spans per second -----------------------------------------------------------------------


def _busy(stop: threading.Event, kind: str) -> None:
    """Spin until ``stop``: ``python`` is a Python loop (the interpreter hands the GIL over within
    the 5 ms switch interval when asked); ``c`` is back-to-back ~3 ms C calls that never let it go
    (``sum(range(n))``, like a compiled model that does not release the GIL)."""
    x = 0
    if kind == "c":
        while not stop.is_set():
            x += sum(range(_C_CALL))
        return
    while not stop.is_set():
        for _ in range(1000):
            x += 1


def _calibrate_c_call(ms: float = 3.0) -> int:
    n, best = 100_000, float("inf")
    for _ in range(5):
        t = time.perf_counter()
        sum(range(n))
        best = min(best, time.perf_counter() - t)
    return max(1, int(n * ms / 1000 / best))


_C_CALL = 0


class _Case:
    """One writer under test, writing into a fresh store at ``path``."""

    def __init__(self, kind: str, path: str) -> None:
        self.kind = kind
        if kind == "two threads":
            from mltrace.export._local_store import LocalStoreExporter

            self.exporter: LocalStoreExporter | None = LocalStoreExporter(path)
            self.exporter.start_writer_thread()  # what CountingBatchSpanProcessor does
            self.store = self.exporter.store
        else:
            self.exporter = None
            self.store = LocalStore(path)

    def write(self, batch: Sequence[ReadableSpan]) -> None:
        if self.kind == "per row":
            legacy_write(self.store, batch)
        elif self.kind == "one thread":
            self.store.write(batch)
        else:
            assert self.exporter is not None
            self.exporter.export(batch)

    def finish(self) -> None:
        if self.exporter is not None:
            self.exporter.force_flush(60_000)

    def close(self) -> None:
        if self.exporter is not None:
            self.exporter.shutdown()
        else:
            self.store.close()


def _write_case(kind: str, batches: list[list[ReadableSpan]], busy: str, budget: float, tmp: str) -> float:
    path = os.path.join(tmp, f"w-{random.getrandbits(32)}.db")
    case = _Case(kind, path)
    stop = threading.Event()
    spinner = threading.Thread(target=_busy, args=(stop, busy), daemon=True)
    if busy:
        spinner.start()
        time.sleep(0.05)
    written = 0
    t0 = time.perf_counter()
    try:
        for batch in batches:
            case.write(batch)
            written += len(batch)
            if time.perf_counter() - t0 > budget:
                break
        case.finish()  # every span written, not only handed over
        elapsed = time.perf_counter() - t0
    finally:
        stop.set()
        if busy:
            spinner.join()
    (count,) = case.store._conn.execute("SELECT COUNT(*) FROM spans").fetchone()
    case.close()
    for suffix in ("", "-wal", "-shm"):
        Path(path + suffix).unlink(missing_ok=True)
    assert count == written, (count, written)
    return written / elapsed


def sdk_spans(n_traces: int) -> list[ReadableSpan]:
    """``bench_cli.synthetic_spans``' traces re-made by the OpenTelemetry SDK, so that each span is
    what an app's exporter receives (attributes in a ``BoundedAttributes``, not a plain dict)."""
    from bench_cli import synthetic_spans
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    memory = InMemorySpanExporter()
    provider: TracerProvider | None = None
    for spans in synthetic_spans(n_traces, "bench"):
        if provider is None:
            provider = TracerProvider(resource=spans[0].resource)
            provider.add_span_processor(SimpleSpanProcessor(memory))
            tracer = provider.get_tracer("bench")
        *children, root = spans
        server = tracer.start_span(root.name, kind=root.kind, attributes=root.attributes, start_time=root.start_time)
        parent = trace.set_span_in_context(server)
        for child in children:
            tracer.start_span(child.name, context=parent, kind=child.kind, attributes=child.attributes,
                              start_time=child.start_time).end(child.end_time)
        server.end(root.end_time)
    return list(memory.get_finished_spans())


WRITERS = ("per row", "one thread", "two threads")


def bench_write(rounds: int, n_spans: int, batch: int, budget: float, also_batch: int = 0) -> None:
    global _C_CALL
    _C_CALL = _calibrate_c_call()
    spans = sdk_spans(n_spans // 5)
    sizes = {batch: [spans[i : i + batch] for i in range(0, len(spans), batch)]}
    modes = (("idle", ""), ("busy Python thread", "python"), ("busy C-call thread", "c"))
    cases = {f"{kind}, {mode}": (kind, busy, batch) for mode, busy in modes for kind in WRITERS}
    extra = f"two threads (batch {also_batch})"
    if also_batch:  # the same writer fed larger batches, side by side
        sizes[also_batch] = [spans[i : i + also_batch] for i in range(0, len(spans), also_batch)]
        cases.update({f"{extra}, {mode}": ("two threads", busy, also_batch) for mode, busy in modes})
    results: dict[str, list[float]] = {k: [] for k in cases}
    load = [os.getloadavg()[0]]
    started = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            order = list(cases)
            random.shuffle(order)
            for name in order:
                kind, busy, size = cases[name]
                results[name].append(_write_case(kind, sizes[size], busy, budget, tmp))
            load.append(os.getloadavg()[0])
    print(f"LocalStore writers, {len(spans):,} SDK spans in batches of {batch}, {rounds} rounds, {started}, "
          f"switch interval {sys.getswitchinterval() * 1000:.0f} ms, {os.cpu_count()} CPUs, "
          f"load average (1 min) {min(load):.1f}-{max(load):.1f}, SQLite {sqlite3.sqlite_version}:")
    for name, rates in results.items():
        print(f"  {name:<40} median {statistics.median(rates):>9,.0f} spans/s   fastest {max(rates):>9,.0f}")
    for mode, _ in modes:
        old, one, two = (results[f"{kind}, {mode}"] for kind in WRITERS)
        print(f"  {mode}: two threads / one thread: median {statistics.median(two) / statistics.median(one):.2f}x, "
              f"fastest {max(two) / max(one):.2f}x; two threads / per row: median "
              f"{statistics.median(two) / statistics.median(old):.1f}x")
        if also_batch:
            big = results[f"{extra}, {mode}"]
            print(f"    batch {also_batch} / batch {batch}, two threads: median "
                  f"{statistics.median(big) / statistics.median(two):.2f}x, fastest {max(big) / max(two):.2f}x")


# -- serve: loss at the app's capacity --------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


SPANS_PER_REQUEST = 4  # the server span and three stages, plus --item-spans


def serve_once(
    workers: int, seconds: float, clients: int, writer: str, tmp: Path, sync: bool = False, queue: int = 0,
    item_spans: int = 0,
) -> dict[str, Any]:
    """One uvicorn run at capacity; what was answered, stored and counted, and the backlog over time
    (spans answered requests made minus rows in the store, sampled every second)."""
    import httpx

    run = tmp / f"{writer.replace(' ', '-')}-{workers}w-{random.getrandbits(24)}"
    run.mkdir()
    db, stats = run / "store.db", run / "stats"
    stats.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MLTRACE_"))}
    env.update(BENCH_DB=str(db), BENCH_STATS_DIR=str(stats), PYTHONPATH=str(HERE), BENCH_WRITER=writer,
               BENCH_ITEM_SPANS=str(item_spans))
    if queue:
        env["OTEL_BSP_MAX_QUEUE_SIZE"] = str(queue)
    if sync:
        env["BENCH_SYNC"] = "1"
    port = _free_port()
    argv = [sys.executable, "-m", "uvicorn", "_store_app:app", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--log-level", "warning", "--no-access-log"]
    log = (run / "server.log").open("wb")
    proc = subprocess.Popen(argv, env=env, cwd=HERE, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    answered_so_far = [0] * clients
    per_request = SPANS_PER_REQUEST + item_spans
    samples: list[tuple[float, int, int]] = []  # (seconds, spans made by answered requests, rows stored)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or proc.poll() is not None:
                raise SystemExit(f"server did not start: {(run / 'server.log').read_text()[-2000:]}")
            time.sleep(0.1)
        stop_at = time.monotonic() + seconds

        def client(i: int) -> tuple[list[str], int]:
            ids, failed = [], 0
            with httpx.Client(base_url=url, timeout=30) as c:
                while time.monotonic() < stop_at:
                    r = c.post("/predict", json={"values": [random.random() for _ in range(32)]})
                    if r.status_code == 200:
                        ids.append(r.headers["x-trace-id"])
                        answered_so_far[i] += 1
                    else:
                        failed += 1
            return ids, failed

        done = threading.Event()

        def sample() -> None:
            # max(rowid) is the row count here (a fresh store, nothing pruned) at O(log n).
            conn = None
            while not done.wait(1.0):
                try:
                    conn = conn or sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
                    (rows,) = conn.execute("SELECT coalesce(max(rowid), 0) FROM spans").fetchone()
                except sqlite3.Error:
                    continue
                samples.append((time.monotonic() - t0, per_request * sum(answered_so_far), rows))
            if conn is not None:
                conn.close()

        t0 = time.monotonic()
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        with ThreadPoolExecutor(clients) as pool:
            results = list(pool.map(client, range(clients)))
        elapsed = time.monotonic() - t0
        done.set()
        sampler.join()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(120)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    answered = [t for ids, _ in results for t in ids]
    with sqlite3.connect(db) as conn:
        stored = {r[0] for r in conn.execute("SELECT DISTINCT trace_id FROM spans WHERE kind = 'SERVER'")}
        (rows,) = conn.execute("SELECT COUNT(*) FROM spans").fetchone()
    counters = [json.loads(p.read_text()) for p in stats.glob("*.json")]
    return {
        "workers": workers,
        "writer": writer,
        "seconds": elapsed,
        "requests": len(answered),
        "failed": sum(f for _, f in results),
        "req_per_s": len(answered) / elapsed,
        "traces_stored": len(set(answered) & stored),
        "traces_missing": len(set(answered) - stored),
        "spans_stored": rows,
        "workers_reporting": len(counters),
        "spans_dropped_total": sum(c["spans_dropped_total"] for c in counters),
        "spans_dropped_queue_full": sum(c["spans_dropped_queue_full"] for c in counters),
        "spans_exported": sum(c["spans_exported"] for c in counters),
        "samples": samples,
    }


def backlog_summary(samples: list[tuple[float, int, int]]) -> str:
    """The store's rate against the app's, and whether the backlog grew: its maximum, and its
    slope (least squares, spans/s) over the second half of the run, ~0 when the writer keeps up."""
    if len(samples) < 4:
        return "too few samples"
    t = [s[0] for s in samples]
    made = [s[1] for s in samples]
    rows = [s[2] for s in samples]
    backlog = [m - r for m, r in zip(made, rows, strict=True)]
    half = samples[len(samples) // 2 :]
    ht = [s[0] for s in half]
    hb = [s[1] - s[2] for s in half]
    mt, mb = statistics.fmean(ht), statistics.fmean(hb)
    var = sum((x - mt) ** 2 for x in ht)
    slope = sum((x - mt) * (y - mb) for x, y in zip(ht, hb, strict=True)) / var if var else 0.0
    span_rate = (made[-1] - made[0]) / (t[-1] - t[0])
    store_rate = (rows[-1] - rows[0]) / (t[-1] - t[0])
    return (f"app made {span_rate:,.0f} spans/s, store wrote {store_rate:,.0f} rows/s; backlog max {max(backlog):,} "
            f"spans, at the end {backlog[-1]:,}, slope over the second half {slope:+,.1f} spans/s")


def bench_serve(
    workers: int, seconds: float, clients: int, rounds: int, sync: bool, writers: list[str], queue: int,
    item_spans: int = 0,
) -> None:
    qsize = queue or 32_768
    print(f"serve: uvicorn --workers {workers}, {clients} keep-alive clients, {seconds:.0f} s per run, export queue "
          f"{qsize:,} spans{' (OTEL_BSP_MAX_QUEUE_SIZE)' if queue else ''} per worker, {os.cpu_count()} CPUs, "
          f"{SPANS_PER_REQUEST + item_spans} spans per request, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
          flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(rounds):
            for writer in writers:
                load = os.getloadavg()[0]
                r = serve_once(workers, seconds, clients, writer, Path(tmp), sync, queue, item_spans)
                lost = r["traces_missing"] / max(1, r["requests"])
                rate = (SPANS_PER_REQUEST + item_spans) * r["req_per_s"]
                print(f"  {r['writer']} writer, {workers} worker(s), load average {load:.1f}-{os.getloadavg()[0]:.1f}: "
                      f"{r['requests']:,} requests in {r['seconds']:.0f} s ({r['req_per_s']:.0f}/s, "
                      f"{rate:,.0f} spans/s), traces missing {r['traces_missing']:,} ({lost:.1%}), "
                      f"spans stored {r['spans_stored']:,}, exported {r['spans_exported']:,}, counted dropped "
                      f"{r['spans_dropped_total']:,} (queue full {r['spans_dropped_queue_full']:,}), "
                      f"{r['workers_reporting']}/{workers} workers reported", flush=True)
                print(f"    {backlog_summary(r['samples'])}; the queues alone ({workers} x {qsize:,} spans) "
                      f"absorb {workers * qsize / max(1.0, rate):.0f} s of the app's spans", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=("write", "serve"))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--spans", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=512, help="write: spans per export call (the exporter's 512)")
    parser.add_argument("--also-batch", type=int, default=0, help="write: also run two threads with this batch size")
    parser.add_argument("--budget", type=float, default=2.0, help="seconds per write case at most")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--sync", action="store_true", help="serve: a plain `def` endpoint (FastAPI's thread pool)")
    parser.add_argument("--writers", default="two threads",
                        help="serve: comma-separated, of 'two threads', 'one thread', 'per row'")
    parser.add_argument("--item-spans", type=int, default=0,
                        help="serve: extra stage spans per request (a batch endpoint's per-item spans)")
    parser.add_argument("--queue", type=int, default=0, help="serve: OTEL_BSP_MAX_QUEUE_SIZE for the app (0: default)")
    args = parser.parse_args(argv)
    if args.mode == "write":
        bench_write(args.rounds, args.spans, args.batch, args.budget, args.also_batch)
    else:
        writers = [w.strip() for w in args.writers.split(",") if w.strip()]
        for w in writers:
            if w not in WRITERS:
                parser.error(f"--writers: {w!r} is not one of {', '.join(WRITERS)}")
        bench_serve(args.workers, args.seconds, args.clients, args.rounds if args.rounds != 7 else 1, args.sync,
                    writers, args.queue, args.item_spans)
    return 0


if __name__ == "__main__":
    sys.exit(main())
