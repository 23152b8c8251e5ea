"""The gateway of the multi-service example: ``POST /predict`` (port 8001).

Fans out over HTTP to the feature service (``GET {FEATURES_URL}/features/{customer_id}``), then to
the model service (``POST {MODEL_URL}/predict``). OpenTelemetry's httpx instrumentation makes a
CLIENT span for each outgoing call and injects the trace context (W3C ``traceparent`` and B3,
the propagators ``mltrace.configure`` installs), so one client request is one trace across the
three services. The response's ``X-Trace-Id`` finds that trace in Jaeger or Zipkin.

    python examples/multiservice/gateway.py   # HOST, PORT, FEATURES_URL, MODEL_URL, MLTRACE_EXPORTER, OTEL_*

    curl -si localhost:8001/predict -H 'content-type: application/json' \
        -d '{"customer_id": "c-17", "features": {"mean radius": 14.1}}'
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
from fastapi import FastAPI, HTTPException
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from pydantic import BaseModel, Field

import mltrace


class PredictRequest(BaseModel):
    customer_id: str = Field(default="anonymous", min_length=1, max_length=128, pattern=r"^[\w.-]+$")
    features: dict[str, float] = Field(default_factory=dict)  # overrides of the stored features


class PredictResponse(BaseModel):
    customer_id: str
    label: str
    probability: float
    model_version: str
    feature_store: str


def _raise_for(service: str, response: httpx.Response) -> None:
    if response.status_code == 422:
        raise HTTPException(422, response.json().get("detail", f"{service} rejected the request"))
    if response.status_code >= 400:
        raise HTTPException(502, f"{service} answered {response.status_code}")


def create_app(features_url: str | None = None, model_url: str | None = None) -> FastAPI:
    """The app; the URLs default to ``FEATURES_URL`` and ``MODEL_URL`` (then to ports 8002, 8003)."""
    mltrace.configure(service_name=os.environ.get("OTEL_SERVICE_NAME") or "gateway")
    HTTPXClientInstrumentor().instrument()  # after configure: the CLIENT spans use its provider
    features_url = (features_url or os.environ.get("FEATURES_URL") or "http://127.0.0.1:8002").rstrip("/")
    model_url = (model_url or os.environ.get("MODEL_URL") or "http://127.0.0.1:8003").rstrip("/")
    clients: dict[str, httpx.AsyncClient] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=httpx.Timeout(10.0, connect=2.0)) as client:
            clients["http"] = client
            yield

    app = FastAPI(title="mltrace example: gateway", lifespan=lifespan)
    app.add_middleware(mltrace.MLTraceMiddleware)

    @app.post("/predict", response_model=PredictResponse)
    async def predict(req: PredictRequest) -> PredictResponse:
        client = clients["http"]
        try:
            features = await client.get(f"{features_url}/features/{req.customer_id}")
            _raise_for("features", features)
            row: dict[str, Any] = features.json()
            scored = await client.post(f"{model_url}/predict", json={"row": row["values"], "overrides": req.features})
            _raise_for("model", scored)
        except httpx.HTTPError as exc:
            raise HTTPException(502, f"upstream call failed: {type(exc).__name__}") from exc
        return PredictResponse(customer_id=req.customer_id, feature_store=row["store"], **scored.json())

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "features": features_url, "model": model_url}

    return app


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(create_app(), host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8001")))
