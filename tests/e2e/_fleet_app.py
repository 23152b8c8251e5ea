"""The two services of the fleet end-to-end test (tests/e2e/test_fleet.py), one uvicorn process each.

``FLEET_ROLE=gateway``: ``POST /score`` forwards the body to one of ``MODEL_URLS`` (round robin),
an httpx CLIENT span carrying the trace context. ``FLEET_ROLE=model``: ``POST /predict`` runs
``preprocess`` → ``feature_lookup`` (sleeps ``SLOW_S`` and records a feature-store miss when the
body says ``slow``) → ``inference`` (drift-scored against ``FLEET_PROFILE``; the window alert is
returned in the response) → ``postprocess`` (raises when the body says ``fail``). The model exports
its drift bin counts as OTLP metrics to ``FLEET_METRICS_ENDPOINT`` every second.

    FLEET_ROLE=model PORT=... python tests/e2e/_fleet_app.py
"""

from __future__ import annotations

import itertools
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

import mltrace
from mltrace.drift import DriftMonitor, ReferenceProfile

FEATURES = ("age", "income", "score", "plan")
SLOW_S = 0.35


def _metrics() -> None:
    """A global MeterProvider exporting OTLP/HTTP every second, before configure(metrics=True)."""
    from opentelemetry import metrics
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
    from opentelemetry.sdk.resources import Resource

    exporter = OTLPMetricExporter(endpoint=os.environ["FLEET_METRICS_ENDPOINT"])
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=1000)
    resource = Resource.create({"service.name": os.environ["OTEL_SERVICE_NAME"]})
    metrics.set_meter_provider(MeterProvider(resource=resource, metric_readers=[reader]))


def model_app() -> FastAPI:
    _metrics()
    mltrace.configure(model_name="fleet-model", model_version="1", metrics=True)
    monitor = DriftMonitor(
        ReferenceProfile.load(os.environ["FLEET_PROFILE"]), window=200, recompute_every=20, model="fleet-model"
    )

    @mltrace.preprocess
    def prepare(body: dict[str, Any]) -> dict[str, Any]:
        return {k: body[k] for k in FEATURES}

    @mltrace.feature_lookup
    def lookup(row: dict[str, Any], slow: bool) -> dict[str, Any]:
        if slow:
            time.sleep(SLOW_S)  # the planted cause: a feature-store miss goes to the slow path
        mltrace.current_stage().set_attributes({"ml.feature_store.name": "fleet", "ml.feature_store.misses": int(slow)})
        return row

    @mltrace.inference(model="fleet-model", version="1")
    def predict(row: dict[str, Any]) -> tuple[float, bool]:
        result = monitor.score(row)
        mltrace.current_stage().set_attributes(monitor.span_attributes(result))
        return float(row["score"]) * 0.5 + 0.1, bool(result["alert"])

    @mltrace.postprocess
    def answer(p: float, fail: bool) -> dict[str, Any]:
        if fail:
            raise RuntimeError("planted failure")
        return {"probability": p}

    app = FastAPI()
    app.add_middleware(mltrace.MLTraceMiddleware)

    @app.post("/predict")
    def predict_endpoint(body: dict[str, Any]) -> Any:
        p, alert = predict(lookup(prepare(body), bool(body.get("slow"))))
        try:
            out = answer(p, bool(body.get("fail")))
        except RuntimeError as exc:  # the stage span recorded it (status ERROR); answer 500 cleanly
            return JSONResponse({"detail": str(exc), "drift_alert": alert}, status_code=500)
        return {**out, "drift_alert": alert}

    @app.get("/health")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def gateway_app() -> FastAPI:
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor

    mltrace.configure()
    HTTPXClientInstrumentor().instrument()
    models = [u.rstrip("/") for u in os.environ["MODEL_URLS"].split(",")]
    turn = itertools.count()
    clients: dict[str, httpx.AsyncClient] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=5.0)) as client:
            clients["c"] = client
            yield

    app = FastAPI(lifespan=lifespan)
    app.add_middleware(mltrace.MLTraceMiddleware)

    @app.post("/score")
    async def score(request: Request) -> Any:
        body = await request.json()
        response = await clients["c"].post(f"{models[next(turn) % len(models)]}/predict", json=body)
        if response.status_code >= 400:
            raise HTTPException(502, f"model answered {response.status_code}")
        return response.json()

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


if __name__ == "__main__":
    role = os.environ["FLEET_ROLE"]
    application = model_app() if role == "model" else gateway_app()
    uvicorn.run(application, host="127.0.0.1", port=int(os.environ["PORT"]), log_level="warning")
