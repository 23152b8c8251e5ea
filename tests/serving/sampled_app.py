"""A FastAPI app shaped like the public examples (mltrace's server span, four stages, an outgoing
httpx call) that samples every trace out, for tests/serving/test_sampled_out.py.

``SAMPLED_PROPAGATOR=acme`` adds a propagator that reads every ``x-acme-ctx-*`` header (a prefix,
like Jaeger's ``uberctx-``): the header fast path of the middleware must not skip it.
"""

from __future__ import annotations

import os
from typing import Any

import httpx
from fastapi import FastAPI, Request
from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import (
    CarrierT,
    Getter,
    Setter,
    TextMapPropagator,
    default_getter,
    default_setter,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

import mltrace


class AcmePropagator(TextMapPropagator):
    """Reads ``x-acme-ctx-traceparent`` (any ``x-acme-ctx-`` header: a prefix, not fixed names)."""

    PREFIX = "x-acme-ctx-"

    def extract(
        self, carrier: CarrierT, context: Context | None = None, getter: Getter[CarrierT] = default_getter
    ) -> Context:
        n = len(self.PREFIX)
        found = {k[n:]: getter.get(carrier, k) for k in getter.keys(carrier) if k.startswith(self.PREFIX)}
        if "traceparent" not in found:
            return context if context is not None else Context()
        return TraceContextTextMapPropagator().extract({"traceparent": found["traceparent"]}, context)

    def inject(
        self, carrier: CarrierT, context: Context | None = None, setter: Setter[CarrierT] = default_setter
    ) -> None:
        return None

    @property
    def fields(self) -> set[str]:
        return set()  # what inject writes: nothing


mltrace.configure(service_name="sampled-out", exporter="none", sample_ratio=0.0)
if os.environ.get("SAMPLED_PROPAGATOR") == "acme":
    propagate.set_global_textmap(CompositePropagator([propagate.get_global_textmap(), AcmePropagator()]))
HTTPXClientInstrumentor().instrument()
PORT = int(os.environ["SAMPLED_PORT"])

app = FastAPI(telemetry={"tracing": False})  # type: ignore[call-arg, unused-ignore]
app.add_middleware(mltrace.MLTraceMiddleware)


@mltrace.preprocess
def prepare(x: list[float]) -> list[float]:
    return [v * 2 for v in x]


@mltrace.inference(model="m", version="1")
def model(x: list[float]) -> float:
    return sum(x)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"ok": "yes"}


@app.get("/headers")
async def headers(request: Request) -> dict[str, str]:
    """The trace headers this request came with (the outgoing call lands here)."""
    return {k: v for k, v in request.headers.items() if k in ("traceparent", "tracestate", "b3", "baggage")}


@app.post("/predict")
async def predict(body: dict[str, Any]) -> dict[str, Any]:
    y = model(prepare(body["x"]))
    with mltrace.stage("postprocess"):
        async with httpx.AsyncClient() as client:
            seen = (await client.get(f"http://127.0.0.1:{PORT}/headers")).json()
    span = trace.get_current_span().get_span_context()
    return {
        "y": y,
        "outgoing": seen,
        "current_trace_id": mltrace.current_trace_id(),
        "recording": trace.get_current_span().is_recording(),
        "sampled": bool(span.trace_flags.sampled),
    }

