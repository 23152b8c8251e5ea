"""The model service of the multi-service example: ``POST /predict`` (port 8003).

Takes a customer's stored feature row and the caller's overrides by feature name, and runs three
stages under the request's server span (which continues the gateway's trace): ``preprocess``
(apply the overrides, validate), ``inference`` (a scikit-learn pipeline on the breast-cancer data
set) and ``postprocess`` (label and confidence).

    python examples/multiservice/model.py            # HOST, PORT, MLTRACE_EXPORTER, OTEL_*
"""

from __future__ import annotations

import os
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
CLASSES = ("malignant", "benign")


class ModelRequest(BaseModel):
    row: list[float]  # the stored features, in training order
    overrides: dict[str, float] = Field(default_factory=dict)


class ModelResponse(BaseModel):
    label: str
    probability: float
    model_version: str


def create_app() -> FastAPI:
    mltrace.configure(
        service_name=os.environ.get("OTEL_SERVICE_NAME") or "model",
        model_name=MODEL_NAME,
        model_version=MODEL_VERSION,
    )
    data = load_breast_cancer()
    names = [str(n) for n in data.feature_names]
    index = {n: i for i, n in enumerate(names)}
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(data.data, data.target)

    @mltrace.preprocess
    def prepare(req: ModelRequest) -> np.ndarray:
        if len(req.row) != len(names):
            raise HTTPException(422, f"expected {len(names)} features, got {len(req.row)}")
        row = np.asarray(req.row, dtype=np.float64)
        for name, value in req.overrides.items():
            if name not in index:
                raise HTTPException(422, f"unknown feature {name!r}")
            row[index[name]] = value
        if not np.all(np.isfinite(row)):
            raise HTTPException(422, "features must be finite numbers")
        return row.reshape(1, -1)

    @mltrace.inference(model=MODEL_NAME, version=MODEL_VERSION, framework="sklearn")
    def predict(x: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict_proba(x)[0])

    @mltrace.postprocess
    def answer(proba: np.ndarray) -> ModelResponse:
        k = int(np.argmax(proba))
        mltrace.current_stage().set_attributes(
            {"ml.output.prediction": CLASSES[k], "ml.output.confidence": float(proba[k])}
        )
        return ModelResponse(label=CLASSES[k], probability=float(proba[k]), model_version=MODEL_VERSION)

    app = FastAPI(title="mltrace example: model service")
    app.add_middleware(mltrace.MLTraceMiddleware)

    @app.post("/predict", response_model=ModelResponse)
    async def predict_endpoint(req: ModelRequest) -> ModelResponse:
        return answer(predict(prepare(req)))

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "model": MODEL_NAME, "version": MODEL_VERSION}

    return app


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(create_app(), host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8003")))
