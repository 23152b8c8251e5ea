"""examples/multiservice/: gateway -> features (Redis) and model, three uvicorn processes, one trace.

Context crosses the process boundaries in the headers that OpenTelemetry's httpx instrumentation
injects on the gateway's outgoing calls. In Jaeger: one trace holding all three services, each
downstream SERVER span a child of the gateway's CLIENT span for that call. With a B3-only client
(Zipkin's headers, no ``traceparent``) and the services exporting to Zipkin: the whole trace
continues the client's trace id and hangs under the client's span.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping

import httpx
import pytest
from _e2e_backends import App, Jaeger, Redis, SpanView, Zipkin, traced_call
from _servers import ServerProcess

pytestmark = pytest.mark.e2e

REQUEST = {"customer_id": "c-17", "features": {"mean radius": 14.1}}


def start_services(serve: Callable[..., list[ServerProcess]], env: Mapping[str, str], redis_url: str) -> str:
    """The three services with ``env`` (the exporter); the gateway's URL."""
    features = App("examples/multiservice/features.py", {**env, "REDIS_URL": redis_url})
    model = App("examples/multiservice/model.py", env)
    gateway = App(
        "examples/multiservice/gateway.py", {**env, "FEATURES_URL": features.url, "MODEL_URL": model.url}
    )
    serve(features, model, gateway)
    return gateway.url


def complete(spans: list[SpanView]) -> bool:
    """Three server spans, two client spans, four stage spans."""
    kinds = [s.kind for s in spans]
    names = {s.name for s in spans}
    return kinds.count("server") == 3 and kinds.count("client") == 2 and {
        "feature_lookup", "preprocess", "inference", "postprocess"
    } <= names


def check_one_trace(spans: list[SpanView], trace_id: str) -> SpanView:
    """The shape of one request's trace across the three services; returns the gateway's server span."""
    assert complete(spans), [(s.service, s.name, s.kind) for s in spans]
    assert {s.trace_id for s in spans} == {trace_id}
    by_id = {s.span_id: s for s in spans}
    servers = {s.service: s for s in spans if s.kind == "server"}
    assert sorted(servers) == ["features", "gateway", "model"]
    gateway = servers["gateway"]
    calls: dict[str, SpanView] = {}
    for service, stages in (("features", {"feature_lookup"}), ("model", {"preprocess", "inference", "postprocess"})):
        server = servers[service]
        call = by_id.get(server.parent_id or "")
        assert call is not None, f"{service}'s server span has no parent in the trace"
        assert call.kind == "client" and call.service == "gateway" and call.parent_id == gateway.span_id
        # the call starts first; the server span may end after the client has its response
        assert call.start_us <= server.start_us
        children = [s for s in spans if s.parent_id == server.span_id]
        assert {s.name for s in children} == stages and {s.service for s in children} == {service}
        calls[service] = call
    assert calls["features"] is not calls["model"]
    assert calls["features"].end_us <= calls["model"].start_us + 1  # the gateway asks features, then model
    return gateway


def test_one_request_is_one_trace_across_three_services_in_jaeger(
    jaeger_server: Jaeger, redis_server: Redis, serve: Callable[..., list[ServerProcess]]
) -> None:
    """One client request: one Jaeger trace over gateway, features and model, parent/child links across processes."""
    env = {"MLTRACE_EXPORTER": "jaeger", "OTEL_EXPORTER_OTLP_ENDPOINT": jaeger_server.otlp_grpc}
    url = start_services(serve, env, redis_server.url)

    def predict() -> httpx.Response:
        response = httpx.post(f"{url}/predict", json=REQUEST, timeout=10)
        assert response.status_code == 200, response.text
        return response

    response, spans = traced_call(predict, jaeger_server, complete)
    assert response.json()["feature_store"] == "redis"
    trace_id = response.headers["x-trace-id"]  # the client's handle on the trace finds it in Jaeger
    gateway = check_one_trace(spans, trace_id)
    assert gateway.parent_id is None  # the client sent no trace context: the gateway starts the trace
    [lookup] = [s for s in spans if s.name == "feature_lookup"]
    assert lookup.tags["ml.feature_store.name"] == "redis" and lookup.tags["ml.feature_store.hits"] == 1
    [infer] = [s for s in spans if s.name == "inference"]
    assert infer.tags["ml.model.name"] == "breast-cancer"


def test_b3_client_headers_continue_the_trace_across_services_in_zipkin(
    zipkin_server: Zipkin, redis_server: Redis, serve: Callable[..., list[ServerProcess]]
) -> None:
    """A Zipkin-only client's X-B3-* headers: all three services' spans join its trace, under its span, in Zipkin."""
    env = {"MLTRACE_EXPORTER": "zipkin", "OTEL_EXPORTER_ZIPKIN_ENDPOINT": zipkin_server.spans_endpoint}
    url = start_services(serve, env, redis_server.url)
    sent: list[tuple[str, str]] = []

    def predict() -> httpx.Response:
        trace_id, span_id = secrets.token_hex(16), secrets.token_hex(8)
        sent.append((trace_id, span_id))
        headers = {"X-B3-TraceId": trace_id, "X-B3-SpanId": span_id, "X-B3-Sampled": "1"}
        response = httpx.post(f"{url}/predict", json=REQUEST, headers=headers, timeout=10)
        assert response.status_code == 200, response.text
        return response

    response, spans = traced_call(predict, zipkin_server, complete)
    trace_id, client_span_id = sent[-1]
    assert response.headers["x-trace-id"] == trace_id
    gateway = check_one_trace(spans, trace_id)
    assert gateway.parent_id == client_span_id
