"""A FastAPI model server shaped like the public skeletons people copy, for tests/spans/test_fastapi_versions.py.

Pydantic request and response models, an API-key dependency, a model class whose ``_pre_process`` /
``_predict`` / ``_post_process`` methods are mltrace stages, written for FastAPI 0.109 and later (no
``Annotated``-only features, no ``lifespan`` telemetry options). ``MLTRACE_APP_TRACED=0`` serves the
same app without mltrace (the differential run). Served with ``uvicorn _fastapi_app:app``.
"""

from __future__ import annotations

import os

from fastapi import Depends, FastAPI, HTTPException, Security
from fastapi.security import APIKeyHeader
from pydantic import BaseModel

TRACED = os.environ.get("MLTRACE_APP_TRACED", "1") == "1"
if TRACED:
    import mltrace

    mltrace.configure(service_name="fastapi-versions", exporter="local", batch=False)
    stage = mltrace.stage
    preprocess, inference, postprocess = mltrace.preprocess, mltrace.inference(model="linear"), mltrace.postprocess
else:

    def _same(f):  # type: ignore[no-untyped-def]
        return f

    preprocess = inference = postprocess = _same


class Payload(BaseModel):
    customer_id: str
    features: list[float]


class Prediction(BaseModel):
    customer_id: str
    score: float
    n_features: int


api_key = APIKeyHeader(name="X-API-Key", auto_error=False)


def require_key(key: str | None = Security(api_key)) -> str:
    if key != "secret":
        raise HTTPException(status_code=403, detail="bad API key")
    return key


class Model:
    @preprocess
    def _pre_process(self, payload: Payload) -> list[float]:
        return [float(x) for x in payload.features]

    @inference
    def _predict(self, x: list[float]) -> float:
        return sum(x) / (len(x) or 1)

    @postprocess
    def _post_process(self, customer_id: str, y: float, n: int) -> Prediction:
        return Prediction(customer_id=customer_id, score=round(y, 6), n_features=n)

    def predict(self, payload: Payload) -> Prediction:
        x = self._pre_process(payload)
        return self._post_process(payload.customer_id, self._predict(x), len(x))


model = Model()
app = FastAPI(title="fastapi-versions")
if TRACED:
    app.add_middleware(mltrace.MLTraceMiddleware)


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/predict", response_model=Prediction)
def predict(payload: Payload, _: str = Depends(require_key)) -> Prediction:
    return model.predict(payload)


@app.post("/predict_async", response_model=Prediction)
async def predict_async(payload: Payload, _: str = Depends(require_key)) -> Prediction:
    return model.predict(payload)
