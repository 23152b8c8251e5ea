"""The ASGI middleware: server span, propagation, response headers, pass-through scopes."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI, HTTPException
from opentelemetry.trace import SpanKind, StatusCode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.testclient import TestClient
from starlette.websockets import WebSocket

import mltrace
from mltrace.testing import CapturedSpans

PARENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN = "00f067aa0ba902b7"


def _starlette_app(**options: Any) -> Starlette:
    @mltrace.inference(model="m", version="1")
    def predict(x: list[float]) -> float:
        return sum(x)

    async def score(request: Request) -> JSONResponse:
        body = await request.json()
        return JSONResponse({"score": predict(body["x"])})

    async def crash(request: Request) -> PlainTextResponse:
        raise RuntimeError("model exploded")

    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        await websocket.send_text("hi")
        await websocket.close()

    app = Starlette(
        routes=[
            Route("/score/{model_id}", score, methods=["POST"]),
            Route("/crash", crash),
            WebSocketRoute("/ws", ws),
        ]
    )
    app.add_middleware(mltrace.MLTraceMiddleware, **options)
    return app


def _fastapi_app() -> FastAPI:
    app = FastAPI()
    app.add_middleware(mltrace.MLTraceMiddleware)

    @mltrace.preprocess
    def prepare(x: list[float]) -> list[float]:
        return [v * 2 for v in x]

    @app.post("/predict/{model_id}")
    async def predict(model_id: str, body: dict[str, list[float]]) -> dict[str, float]:
        x = prepare(body["x"])
        with mltrace.stage("postprocess") as s:
            s.record_output(x)
        return {"y": sum(x)}

    @app.get("/teapot")
    async def teapot() -> None:
        raise HTTPException(418)

    return app


def test_server_span_with_http_semconv(spans: CapturedSpans) -> None:
    """A plain Starlette app gets one SERVER span named after the route template."""
    client = TestClient(_starlette_app())
    r = client.post("/score/fraud?token=secret&x=1", json={"x": [1.0, 2.0]}, headers={"user-agent": "t"})
    assert r.status_code == 200 and r.json() == {"score": 3.0}
    server = spans.server()
    attrs = server.attributes or {}
    assert server.name == "POST /score/{model_id}"
    assert server.kind is SpanKind.SERVER
    assert attrs["http.request.method"] == "POST"
    assert attrs["http.route"] == "/score/{model_id}"
    assert attrs["http.response.status_code"] == 200
    assert attrs["url.path"] == "/score/fraud"
    assert "secret" not in str(attrs["url.query"])
    inference = spans.stage("inference")
    assert inference.parent is not None and inference.parent.span_id == server.context.span_id


def test_trace_id_returned_in_response_headers(spans: CapturedSpans) -> None:
    """``traceresponse`` and ``X-Trace-Id`` name the request's trace and server span."""
    r = TestClient(_starlette_app()).post("/score/a", json={"x": [1.0]})
    server = spans.server()
    trace_id = format(server.context.trace_id, "032x")
    assert r.headers["x-trace-id"] == trace_id
    flags = int(server.context.trace_flags)
    assert flags & 1, "sampled"
    assert r.headers["traceresponse"] == f"00-{trace_id}-{format(server.context.span_id, '016x')}-{flags:02x}"


def test_w3c_traceparent_is_continued(spans: CapturedSpans) -> None:
    """An incoming W3C traceparent makes the server span its child."""
    headers = {"traceparent": f"00-{PARENT_TRACE}-{PARENT_SPAN}-01"}
    TestClient(_starlette_app()).post("/score/a", json={"x": [1.0]}, headers=headers)
    server = spans.server()
    assert format(server.context.trace_id, "032x") == PARENT_TRACE
    assert server.parent is not None and format(server.parent.span_id, "016x") == PARENT_SPAN


@pytest.mark.parametrize(
    "headers",
    [
        {"X-B3-TraceId": PARENT_TRACE, "X-B3-SpanId": PARENT_SPAN, "X-B3-Sampled": "1"},
        {"b3": f"{PARENT_TRACE}-{PARENT_SPAN}-1"},
    ],
    ids=["b3-multi", "b3-single"],
)
def test_b3_headers_are_continued(spans: CapturedSpans, headers: dict[str, str]) -> None:
    """Zipkin-style B3 headers (multi and single) are extracted too."""
    mltrace.configure(exporter="none")  # installs the B3-aware propagators
    TestClient(_starlette_app()).post("/score/a", json={"x": [1.0]}, headers=headers)
    server = spans.server()
    assert format(server.context.trace_id, "032x") == PARENT_TRACE
    assert server.parent is not None and format(server.parent.span_id, "016x") == PARENT_SPAN


def test_unhandled_exception_marks_span_error(spans: CapturedSpans) -> None:
    """An exception escaping the app sets ERROR and error.type on the server span."""
    client = TestClient(_starlette_app(), raise_server_exceptions=False)
    assert client.get("/crash").status_code == 500
    server = spans.server()
    assert server.status.status_code is StatusCode.ERROR
    assert (server.attributes or {})["error.type"] == "RuntimeError"


def test_credentials_and_headers_never_recorded(spans: CapturedSpans) -> None:
    """Authorization and cookies appear nowhere in any span."""
    TestClient(_starlette_app()).post(
        "/score/a",
        json={"x": [1.0]},
        headers={"authorization": "Bearer sk-live-123", "cookie": "session=abc123"},
    )
    blob = repr([(s.name, dict(s.attributes or {}), s.events) for s in spans])
    assert "sk-live-123" not in blob and "abc123" not in blob


def test_websocket_and_lifespan_pass_through(spans: CapturedSpans) -> None:
    """Websocket scopes are untouched and make no server span."""
    with TestClient(_starlette_app()) as client, client.websocket_connect("/ws") as ws:
        assert ws.receive_text() == "hi"
    assert [s for s in spans if s.kind is SpanKind.SERVER] == []


def test_request_body_summary_is_opt_in(spans: CapturedSpans) -> None:
    """Bodies are summarised only when asked for, and never recorded raw."""
    TestClient(_starlette_app()).post("/score/a", json={"x": [1.0, 2.0]})
    assert not any(k.startswith("ml.request.body") for k in spans.server().attributes or {})
    spans.clear()
    app = _starlette_app(capture_request_body=True, capture_response_body=True)
    TestClient(app).post("/score/a", json={"x": [1.0, 2.0], "email": "a@b.c"})
    attrs = spans.server().attributes or {}
    assert attrs["ml.request.body.bytes"] > 0
    assert "ml.response.body.kind" in attrs
    assert "a@b.c" not in repr(attrs)


def test_response_is_unchanged_but_for_trace_headers(spans: CapturedSpans) -> None:
    """The app's body and headers are byte-for-byte those it sends without mltrace."""
    plain = _starlette_app()
    plain.user_middleware.clear()
    plain.middleware_stack = None
    a = TestClient(plain).post("/score/a", json={"x": [1.0]})
    b = TestClient(_starlette_app()).post("/score/a", json={"x": [1.0]})
    assert a.content == b.content
    extra = {k for k in b.headers if k not in a.headers}
    assert extra == {"traceresponse", "x-trace-id"}


def test_fastapi_native_server_span_is_enriched_not_doubled(spans: CapturedSpans) -> None:
    """With FastAPI's own telemetry on, there is one SERVER span and stages are its children."""
    client = TestClient(_fastapi_app())
    r = client.post("/predict/m1", json={"x": [1.0, 2.0]})
    assert r.status_code == 200
    server = spans.server()
    assert server.name == "POST /predict/{model_id}"
    assert r.headers["x-trace-id"] == format(server.context.trace_id, "032x")
    for stage in ("preprocess", "postprocess"):
        span = spans.stage(stage)
        assert span.parent is not None and span.parent.span_id == server.context.span_id
    assert not [s for s in spans if s.name.startswith("fastapi.")], "operation spans are off by default"


def test_fastapi_http_exception_status(spans: CapturedSpans) -> None:
    """A 4xx from the app is recorded on the server span and is not an error."""
    assert TestClient(_fastapi_app()).get("/teapot").status_code == 418
    server = spans.server()
    assert (server.attributes or {})["http.response.status_code"] == 418
    assert server.status.status_code is not StatusCode.ERROR


def test_contrib_fastapi_instrumentation_is_enriched_not_doubled(spans: CapturedSpans) -> None:
    """With opentelemetry-instrumentation-fastapi active, mltrace adds no second SERVER span."""
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    app = _fastapi_app()
    FastAPIInstrumentor.instrument_app(app)
    try:
        r = TestClient(app).post("/predict/m1", json={"x": [1.0]})
    finally:
        FastAPIInstrumentor.uninstrument_app(app)
    server = spans.server()
    assert r.headers["x-trace-id"] == format(server.context.trace_id, "032x")
    prep = spans.stage("preprocess")
    assert prep.context.trace_id == server.context.trace_id
