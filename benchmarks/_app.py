"""The benchmark endpoint, built four ways: the same handler with and without tracing.

A 32-float pydantic body, a numpy logistic model, four stages (as in FACTS.md's measurements).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel

import mltrace

N_FEATURES = 32
_rng = np.random.default_rng(0)
WEIGHTS = _rng.normal(size=N_FEATURES)
FEATURES = {"tenure": 3.0, "spend": 120.5, "region": 2.0}


class Body(BaseModel):
    x: list[float]


def _prepare(x: list[float]) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


async def _lookup(user: str) -> dict[str, float]:
    return FEATURES


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
        await lookup("u1")
        p = predict(x)
        if traced:
            with mltrace.stage("postprocess") as s:
                out = _post(p)
                s.record_output(out)
            return out
        return _post(p)

    return app
