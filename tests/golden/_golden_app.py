"""The app the golden test drives: shaped like the public examples (FastAPI, the four stage
decorators, ``mltrace.stage``), plus the cases deferred spans must get right: concurrent stages
(``asyncio.gather``), the current span written to from inside a stage, another library's span
under a stage, stage errors (handled and not), a streaming stage, a remote parent."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException
from fastapi.responses import StreamingResponse
from opentelemetry import trace
from opentelemetry.trace import SpanContext, Status, StatusCode, TraceFlags
from pydantic import BaseModel

import mltrace

WEIGHTS = np.linspace(-1.0, 1.0, 8)
FEATURES = {"u1": {"tenure": 3.0, "spend": 12.5}, "u2": {"tenure": 40.0, "spend": 0.5}}
LINKED = SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))


class Body(BaseModel):
    x: list[float]
    user: str = "u1"


@mltrace.preprocess
def prepare(x: list[float]) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


@mltrace.feature_lookup(store="memory")
async def lookup(user: str) -> dict[str, float]:
    await asyncio.sleep(0)
    found = FEATURES.get(user)
    mltrace.record_lookup(hits=int(found is not None), misses=int(found is None))
    if found is None:
        raise KeyError(user)
    return found


@mltrace.inference(model="logit", version="1", framework="numpy")
def predict(x: np.ndarray) -> float:
    if not np.isfinite(x).all():
        raise ValueError("non-finite input")
    return float(1.0 / (1.0 + np.exp(-x @ WEIGHTS)))


@mltrace.postprocess
def postprocess(p: float) -> dict[str, Any]:
    return {"score": p, "label": bool(p > 0.5)}


@mltrace.inference(model="shard", name="shard")
async def shard(x: np.ndarray, k: int = 0) -> float:
    await asyncio.sleep(0)
    # Another library's span (as httpx or redis would make) must land under this stage.
    with trace.get_tracer("other.lib").start_as_current_span("GET cache") as span:
        span.set_attribute("db.system", "redis")
        await asyncio.sleep(0)
    return float(x[k])


@mltrace.postprocess(name="tokens")
def tokens(n: int) -> Iterator[str]:
    for i in range(n):
        yield f"t{i} "


def build() -> FastAPI:
    app = FastAPI(telemetry={"tracing": False})  # mltrace makes the server span
    app.add_middleware(mltrace.MLTraceMiddleware)

    @app.post("/predict")
    async def predict_endpoint(body: Body) -> dict[str, Any]:
        x = prepare(body.x)
        try:
            await lookup(body.user)
        except KeyError:
            raise HTTPException(status_code=404, detail="unknown user") from None
        try:
            p = predict(x)
        except ValueError:
            raise HTTPException(status_code=422, detail="bad input") from None
        return postprocess(p)

    @app.post("/gather")
    async def gather_endpoint(body: Body) -> dict[str, Any]:
        x = prepare(body.x)
        parts = await asyncio.gather(shard(x, 0), shard(x, 1), shard(x, 2))
        return {"parts": parts}

    @app.post("/current")
    async def current_endpoint(body: Body) -> dict[str, Any]:
        with mltrace.stage("postprocess", attributes={"team": "ml"}) as s:
            s.set_attribute("custom.count", 3)
            s.set_attributes({"custom.list": [1, 2, 3], "custom.none": None})
            s.add_event("checkpoint", {"at": "middle"})
            span = trace.get_current_span()
            span.set_attribute("custom.flag", True)
            span.add_event("raw-event", {"n": 1})
            span.add_link(LINKED, {"why": "batch"})
            span.record_exception(RuntimeError("handled inside"), {"extra": "yes"})
            span.set_status(Status(StatusCode.ERROR, "degraded"))
            mltrace.current_stage().set_attribute("via.current_stage", "yes")
            span.set_attribute("ml.output.kind", "manual")  # the summary below sets it again
            s.record_output({"n": len(body.x)})
            s.set_attribute("custom.count", 4)  # set again: moves to the end, as in the SDK
        return {"ok": True}

    @app.get("/boom")
    async def boom_endpoint() -> dict[str, Any]:
        predict(np.array([np.nan] * 8))  # unhandled: a 500 from Starlette, the error on both spans
        return {}

    @app.get("/stream")
    async def stream_endpoint(n: int = 3) -> StreamingResponse:
        return StreamingResponse(tokens(n), media_type="text/plain")

    return app
