"""A real model served with mltrace: scikit-learn on the breast-cancer data set that ships with it.

    pip install -e ".[serve]"
    python examples/serve_sklearn.py            # traces go to ./mltrace-traces.db (local store)
    MLTRACE_EXPORTER=jaeger python examples/serve_sklearn.py   # or to Jaeger over OTLP

    curl -s localhost:8000/predict -H 'content-type: application/json' \
        -d '{"customer_id": "c-17", "features": {"mean radius": 14.1, "mean texture": 19.3}}'

Every request becomes one trace: the server span, then preprocess → feature_lookup → inference →
postprocess, with input/output summaries and (when a reference profile is given) drift scores.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel, Field
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import mltrace

MODEL_NAME = "breast-cancer"
MODEL_VERSION = os.environ.get("MODEL_VERSION", "1")


class PredictRequest(BaseModel):
    customer_id: str = Field(default="anonymous", max_length=128)
    # Either a mapping of feature name -> value (missing features are filled from the customer's
    # stored features) or the full vector in training order.
    features: dict[str, float] | list[float] = Field(default_factory=dict)


class PredictResponse(BaseModel):
    label: str
    probability: float
    model_version: str


class FeatureStore:
    """An in-process stand-in for a feature store (the Redis integration is the real one)."""

    def __init__(self, defaults: np.ndarray) -> None:
        self._defaults = defaults
        self._rows: dict[str, np.ndarray] = {}

    @mltrace.feature_lookup(store="memory")
    async def fetch(self, customer_id: str) -> np.ndarray:
        await asyncio.sleep(0)  # a real store is a network call
        row = self._rows.get(customer_id)
        mltrace.record_lookup(hits=int(row is not None), misses=int(row is None))
        return self._defaults if row is None else row

    def put(self, customer_id: str, row: np.ndarray) -> None:
        self._rows[customer_id] = row


def train() -> tuple[Any, list[str], np.ndarray]:
    data = load_breast_cancer()
    X, y = data.data, data.target
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    model.fit(X, y)
    return model, [str(n) for n in data.feature_names], X


def create_app(*, drift_monitor: Any = None, configure: bool = True) -> FastAPI:
    """The app; ``configure=False`` when the caller already called ``mltrace.configure``."""
    if configure:
        mltrace.configure(service_name="model-server", model_name=MODEL_NAME, model_version=MODEL_VERSION)
    model, names, X = train()
    index = {n: i for i, n in enumerate(names)}
    store = FeatureStore(X.mean(axis=0))
    store.put("c-17", X[17])
    classes = ["malignant", "benign"]

    @mltrace.preprocess
    def prepare(req: PredictRequest, base: np.ndarray) -> np.ndarray:
        if isinstance(req.features, list):
            if len(req.features) != len(names):
                raise HTTPException(422, f"expected {len(names)} features, got {len(req.features)}")
            return np.asarray(req.features, dtype=np.float64).reshape(1, -1)
        row = base.copy()
        for name, value in req.features.items():
            if name not in index:
                raise HTTPException(422, f"unknown feature {name!r}")
            row[index[name]] = value
        if not np.all(np.isfinite(row)):
            raise HTTPException(422, "features must be finite numbers")
        return row.reshape(1, -1)

    @mltrace.inference(model=MODEL_NAME, version=MODEL_VERSION, framework="sklearn", drift=drift_monitor)
    def predict(x: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_proba(x))

    app = FastAPI(title="mltrace example: breast-cancer classifier")
    app.add_middleware(mltrace.MLTraceMiddleware)

    @app.post("/predict", response_model=PredictResponse)
    async def predict_endpoint(req: PredictRequest) -> PredictResponse:
        base = await store.fetch(req.customer_id)
        x = prepare(req, base)
        proba = predict(x)[0]
        with mltrace.stage("postprocess") as s:
            k = int(np.argmax(proba))
            response = PredictResponse(label=classes[k], probability=float(proba[k]), model_version=MODEL_VERSION)
            s.set_attributes({"ml.output.prediction": response.label, "ml.output.confidence": response.probability})
        return response

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "time": str(time.time())}

    return app


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(create_app(), host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8000")))
