"""The app ``bench_store.py serve`` runs under uvicorn: ~3 ms of CPU per request, the local store.

Shaped like the README's example: FastAPI, mltrace's middleware, preprocess / inference /
postprocess stages. ``BENCH_WRITER`` picks the writer: ``two threads`` (today's), ``one thread``
(encode and execute in the batch processor's thread) or ``per row`` (the original ``executemany``,
kept in ``bench_store.legacy_write``, reachable from the benchmark only). At shutdown each worker
flushes and writes its ``mltrace.export_stats()`` to ``$BENCH_STATS_DIR/<pid>.json``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from opentelemetry import trace

import mltrace

WRITER = os.environ.get("BENCH_WRITER", "two threads")
if WRITER != "two threads":
    # The earlier writers, for side-by-side runs: "one thread" encodes and executes in the batch
    # processor's thread (the writer before the store had a thread of its own); "per row" is also
    # the original per-row ``executemany``.
    from mltrace.export._local_store import LocalStoreExporter

    LocalStoreExporter.start_writer_thread = lambda self: None  # type: ignore[method-assign]
    if WRITER == "per row":
        sys.path.insert(0, str(Path(__file__).parent))
        from bench_store import legacy_write

        from mltrace.export._local_store import LocalStore

        LocalStore.write = legacy_write  # type: ignore[method-assign]

CPU_MS = float(os.environ.get("BENCH_CPU_MS", "3"))
ITEM_SPANS = int(os.environ.get("BENCH_ITEM_SPANS", "0"))

mltrace.configure(service_name="store-bench", exporter="local", local_path=os.environ["BENCH_DB"])


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    trace.get_tracer_provider().force_flush(20_000)  # type: ignore[attr-defined]
    stats = Path(os.environ["BENCH_STATS_DIR"]) / f"{os.getpid()}.json"
    stats.write_text(json.dumps(mltrace.export_stats()))


app = FastAPI(lifespan=lifespan)
app.add_middleware(mltrace.MLTraceMiddleware)


def _calibrate(ms: float) -> int:
    """How long a ``range`` makes ``sum(range(n))`` take ``ms`` milliseconds on this machine."""
    n, best = 100_000, float("inf")
    for _ in range(5):
        t = time.perf_counter()
        sum(range(n))
        best = min(best, time.perf_counter() - t)
    return max(1, int(n * ms / 1000 / best))


BURN = os.environ.get("BENCH_BURN", "c")
_N = _calibrate(CPU_MS)


def burn(ms: float) -> float:
    """Hold the CPU (and the GIL) for ``ms`` milliseconds, as a model's forward pass would.

    ``c`` (default): one C call that never lets the GIL go (``sum(range(n))``), like a compiled
    model that does not release it; ``python``: a Python loop, which the interpreter interrupts
    every switch interval (5 ms) when another thread asks for the GIL."""
    if BURN == "c":
        return float(sum(range(_N)))
    end = time.perf_counter() + ms / 1000
    x = 0.0
    while time.perf_counter() < end:
        x += 1.0
    return x


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


def _predict(body: dict[str, list[float]]) -> dict[str, float]:
    with mltrace.stage("preprocess"):
        values = [v * 2 for v in body["values"]]
    with mltrace.stage("inference"):
        burn(CPU_MS)
        score = sum(values) / max(1, len(values))
        for i in range(ITEM_SPANS):  # a batch endpoint's per-item spans: more spans per request
            with mltrace.stage("item", attributes={"app.item.index": i}):
                pass
    with mltrace.stage("postprocess"):
        return {"score": score}


if os.environ.get("BENCH_SYNC"):
    # A plain `def` endpoint: FastAPI runs it in its thread pool, so several requests' CPU work
    # competes for the GIL with the exporter's thread at once.
    @app.post("/predict")
    def predict_sync(body: dict[str, list[float]]) -> dict[str, float]:
        return _predict(body)
else:
    @app.post("/predict")
    async def predict(body: dict[str, list[float]]) -> dict[str, float]:
        return _predict(body)
