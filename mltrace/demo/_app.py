"""The demo model server, built the way a user would build theirs, with slowness planted in it.

Planted on purpose, for ``mltrace slow`` to find:
- inference takes a slow path for large batches (64 rows or more);
- the feature store misses its cache for a few "cold" customers and falls back to a slow read.
Some requests also carry drifted inputs, which the drift monitor scores.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from typing import TYPE_CHECKING

import numpy as np
from fastapi import FastAPI
from pydantic import BaseModel, Field

import mltrace

from ._model import MODEL_NAME, DemoModel, FloatArray

if TYPE_CHECKING:
    from ..drift import DriftScorer

LARGE_BATCH = 64
# 120 ms, not the earlier 40: large batches are about a tenth of the traffic, as many as slow's
# slow set (the top tenth), so timing noise decides which of them make that set; under CPU load
# (scheduler delays of 10-20 ms) a proxy of batch size (ml.input.feature.0.min, a body size)
# could fit the noisy set better than ml.input.size. Replaying a demo run with seeded delays of
# mean 15 ms: 29 of 60 found the planted causes at 40 ms, 100 of 100 at 120 ms
# (tests/cli/test_cli.py::test_demo_finds_what_was_planted_under_timing_noise).
SLOW_PATH_S = 0.12
CACHE_MISS_S = 0.02
COLD_CUSTOMERS = frozenset({"c-07", "c-13", "c-21", "c-34"})
SEGMENTS = ("enterprise", "startup", "free")
CANARY_SHARE = 0.2  # customers routed to model version 2


class PredictRequest(BaseModel):
    customer_id: str = Field(default="anonymous", max_length=64)
    rows: list[list[float]] = Field(min_length=1, max_length=1024)


class PredictResponse(BaseModel):
    labels: list[str]
    probabilities: list[float]
    model_version: str


def segment_of(customer_id: str) -> str:
    return SEGMENTS[zlib.crc32(customer_id.encode()) % len(SEGMENTS)]


def version_of(customer_id: str) -> str:
    return "2" if (zlib.crc32(customer_id.encode()) % 100) < CANARY_SHARE * 100 else "1"


class FeatureStore:
    """Per-customer feature defaults (filling missing values), cached in memory except for cold customers."""

    def __init__(self, defaults: FloatArray) -> None:
        self.defaults = defaults

    @mltrace.feature_lookup(store="customer-features")
    async def fetch(self, customer_id: str) -> FloatArray:
        cold = customer_id in COLD_CUSTOMERS
        if cold:
            await asyncio.sleep(CACHE_MISS_S)  # planted: a cache miss reads from the slow database
        else:
            await asyncio.sleep(0)
        mltrace.record_lookup(hits=int(not cold), misses=int(cold), keys=1)
        mltrace.current_stage().set_attribute("app.customer.segment", segment_of(customer_id))
        return self.defaults


def create_demo_app(model: DemoModel, drift: DriftScorer | None = None) -> FastAPI:
    """The FastAPI app: ``POST /predict`` with ``{"customer_id": ..., "rows": [[30 floats], ...]}``."""
    store = FeatureStore(model.training.mean(axis=0))

    @mltrace.preprocess
    def prepare(rows: list[list[float]], base: FloatArray) -> FloatArray:
        x = np.asarray(rows, dtype=np.float64)
        missing = np.isnan(x)
        if missing.any():
            x[missing] = np.broadcast_to(base, x.shape)[missing]
        return x

    def run(x: FloatArray) -> FloatArray:
        if len(x) >= LARGE_BATCH:
            time.sleep(SLOW_PATH_S)  # planted: large batches fall off the model's fast path
        return model.predict_proba(x)

    predictors = {
        version: mltrace.inference(model=MODEL_NAME, version=version, framework=model.framework, drift=drift)(run)
        for version in ("1", "2")
    }

    app = FastAPI(title="mltrace demo model server")
    app.add_middleware(mltrace.MLTraceMiddleware)

    @app.post("/predict", response_model=PredictResponse)
    async def predict(req: PredictRequest) -> PredictResponse:
        base = await store.fetch(req.customer_id)
        x = prepare(req.rows, base)
        version = version_of(req.customer_id)
        proba = predictors[version](x)
        with mltrace.stage("postprocess") as s:
            k = np.argmax(proba, axis=1)
            labels = [model.classes[int(i)] for i in k]
            confidence = proba[np.arange(len(k)), k]
            s.set_attributes(
                {
                    "ml.output.prediction": max(set(labels), key=labels.count),
                    "ml.output.confidence": round(float(confidence.mean()), 4),
                }
            )
        return PredictResponse(labels=labels, probabilities=confidence.round(4).tolist(), model_version=version)

    return app
