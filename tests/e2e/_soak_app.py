"""The soak test's server: a small FastAPI model service, mltrace on, exporting OTLP to Jaeger.

``python tests/e2e/_soak_app.py --port P --service S --stats FILE``. On SIGTERM uvicorn runs the
lifespan shutdown, which flushes through ``handle.shutdown()`` and writes the process's span
counters, the shutdown outcome and its peak RSS to ``FILE`` (JSON).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
import uvicorn
from fastapi import FastAPI
from pydantic import BaseModel

import mltrace
from mltrace.sampling import TailSamplingConfig


class Request(BaseModel):
    user: int
    x: list[float]


def rss_bytes() -> int:
    with open(f"/proc/{os.getpid()}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def build(service: str, endpoint: str, stats_path: str, tail_ratio: float | None = None) -> FastAPI:
    tail = TailSamplingConfig(ratio=tail_ratio) if tail_ratio is not None else False
    handle = mltrace.configure(
        service_name=service, exporter="jaeger", endpoint=endpoint, model_name="soak", tail_sampling=tail
    )
    weights = np.random.default_rng(0).normal(size=32)
    table = {i: float(i % 7) for i in range(1000)}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        yield
        start = time.monotonic()
        finished = handle.shutdown(timeout_s=60)
        out: dict[str, Any] = {
            "stats": mltrace.export_stats(),
            "shutdown_ok": finished,
            "shutdown_s": time.monotonic() - start,
            "peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        }
        with open(stats_path, "w") as f:
            json.dump(out, f)

    app = FastAPI(lifespan=lifespan)
    app.add_middleware(mltrace.MLTraceMiddleware)

    @mltrace.preprocess
    def prepare(x: list[float]) -> np.ndarray[Any, Any]:
        return np.nan_to_num(np.asarray(x, dtype=np.float64))

    @mltrace.feature_lookup(store="memory")
    def lookup(user: int) -> float:
        mltrace.record_lookup(hits=1, keys=1)
        return table.get(user % 1000, 0.0)

    @mltrace.inference(model="soak", version="1")
    def infer(x: np.ndarray[Any, Any]) -> float:
        return 1.0 / (1.0 + math.exp(-float(x[:32] @ weights[: len(x[:32])])))

    @mltrace.postprocess
    def finish(p: float) -> dict[str, Any]:
        return {"score": p, "label": p > 0.5}

    @app.post("/predict")
    def predict(req: Request) -> dict[str, Any]:
        x = prepare(req.x)
        x[0] += lookup(req.user)
        return finish(infer(x))

    @app.get("/rss")
    def rss() -> dict[str, int]:
        return {"rss": rss_bytes()}

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--service", required=True)
    parser.add_argument("--endpoint", default="http://127.0.0.1:4317")
    parser.add_argument("--stats", required=True)
    parser.add_argument("--tail-ratio", type=float, default=None, help="turn tail sampling on with this ratio")
    args = parser.parse_args()
    app = build(args.service, args.endpoint, args.stats, args.tail_ratio)
    # keep-alive longer than the client's (4 s), so the server never closes a connection the client reuses
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False, timeout_keep_alive=30)


if __name__ == "__main__":
    main()
