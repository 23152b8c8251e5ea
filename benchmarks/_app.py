"""The benchmark endpoint, built four ways: the same handler with and without tracing.

A 32-float pydantic body, a numpy logistic model, four stages (as in FACTS.md's measurements).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi import FastAPI
from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind
from pydantic import BaseModel
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

import mltrace

N_FEATURES = 32
_rng = np.random.default_rng(0)
WEIGHTS = _rng.normal(size=N_FEATURES)
# One feature row per user, as a feature store would return it.
FEATURES = {
    f"u{i}": {"tenure": float(i % 40), "spend": round(float(v), 2), "region": float(i % 7)}
    for i, v in enumerate(_rng.gamma(2.0, 60.0, size=1024))
}


class Body(BaseModel):
    x: list[float]
    user: str = "u1"


def _prepare(x: list[float]) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


async def _lookup(user: str) -> dict[str, float]:
    return FEATURES.get(user, FEATURES["u1"])


def _predict(x: np.ndarray) -> float:
    return float(1.0 / (1.0 + np.exp(-x @ WEIGHTS)))


def _post(p: float) -> dict[str, Any]:
    return {"score": p, "label": bool(p > 0.5)}


def build(traced: bool, *, fastapi_telemetry: bool, operation_spans: bool = True) -> FastAPI:
    """``traced``: mltrace middleware and the four stages; else the bare handler."""
    prepare: Callable[[list[float]], np.ndarray] = _prepare
    lookup = _lookup
    predict: Callable[[np.ndarray], float] = _predict
    if traced:
        prepare = mltrace.preprocess(_prepare)
        lookup = mltrace.feature_lookup(store="memory")(_lookup)
        predict = mltrace.inference(model="logit", version="1")(_predict)
    telemetry: dict[str, Any] | None = None
    if not fastapi_telemetry:
        telemetry = {"tracing": False, "metrics": False, "logs": False}
    if fastapi_telemetry and not operation_spans:
        telemetry = {"operation_spans": False}
    app = FastAPI(telemetry=telemetry)  # type: ignore[arg-type]
    if traced:
        app.add_middleware(mltrace.MLTraceMiddleware)

    @app.post("/predict")
    async def endpoint(body: Body) -> dict[str, Any]:
        x = prepare(body.x)
        await lookup(body.user)
        p = predict(x)
        if traced:
            with mltrace.stage("postprocess") as s:
                out = _post(p)
                s.record_output(out)
            return out
        return _post(p)

    return app


class FloorMiddleware:
    """The least a tracer can do per request: extract context with the global propagators,
    ask the sampler, make the span current, end it. No attributes, no response headers, no
    stages: the floor under any server-span middleware in Python on this machine."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.tracer = trace.get_tracer("floor")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        parent = propagate.extract(Headers(scope=scope))
        span = self.tracer.start_span("POST", context=parent, kind=SpanKind.SERVER)
        token = otel_context.attach(trace.set_span_in_context(span, parent))
        try:
            await self.app(scope, receive, send)
        finally:
            span.end()
            otel_context.detach(token)


def build_floor() -> FastAPI:
    """The bare endpoint (FastAPI's telemetry off) behind :class:`FloorMiddleware`."""
    app = build(False, fastapi_telemetry=False)
    app.add_middleware(FloorMiddleware)
    return app
