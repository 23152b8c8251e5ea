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


# -- issue 11: leaked contexts, nesting, hostile input, mounts, log caps ---------------------------


def _leaking(app: Any, ctx: Any) -> Any:
    """An outer ASGI layer that runs the app in ``ctx`` (what a leaked connection context does)."""
    from opentelemetry import context as otel_context

    async def outer(scope: Any, receive: Any, send: Any) -> None:
        token = otel_context.attach(ctx)
        try:
            await app(scope, receive, send)
        finally:
            otel_context.detach(token)

    return outer


def test_an_ended_span_in_the_context_is_not_trusted(spans: CapturedSpans) -> None:
    """A context carrying an ended span (leaked from an earlier request) gets a fresh trace, one
    SERVER span, and stages under it, instead of the ended span's trace id and no span."""
    from opentelemetry import trace

    from mltrace.spans._tracer import TRACER

    old = TRACER.start_span("GET /before", kind=SpanKind.SERVER)
    old.end()
    spans.clear()
    leaked = trace.set_span_in_context(old)
    r = TestClient(_leaking(_starlette_app(), leaked)).post("/score/a", json={"x": [1.0]})
    server = spans.server()
    assert r.headers["x-trace-id"] == format(server.context.trace_id, "032x")
    assert server.context.trace_id != old.get_span_context().trace_id and server.parent is None
    assert spans.stage("inference").parent.span_id == server.context.span_id  # type: ignore[union-attr]


def test_a_finished_request_context_is_not_trusted(spans: CapturedSpans) -> None:
    """A sampled-out request's context (a non-recording span) leaked with mltrace's mark is
    recognised too: the next request is not answered with the old trace id."""
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    from mltrace.spans._middleware import _SERVED_KEY, _Served

    done = _Served()
    done.done = True
    old = NonRecordingSpan(SpanContext(0xABC, 0xDEF, is_remote=False, trace_flags=TraceFlags(0)))
    leaked = otel_context.set_value(_SERVED_KEY, done, trace.set_span_in_context(old))
    r = TestClient(_leaking(_starlette_app(), leaked)).post("/score/a", json={"x": [1.0]})
    assert r.headers["x-trace-id"] != format(0xABC, "032x")
    assert r.headers["x-trace-id"] == format(spans.server().context.trace_id, "032x")


def test_nested_middleware_serves_once(spans: CapturedSpans) -> None:
    """A sub-app with its own MLTraceMiddleware, mounted under one that has it: one SERVER span,
    one X-Trace-Id header, the full route."""
    from starlette.routing import Mount

    inner = _starlette_app()
    outer = Starlette(routes=[Mount("/v1", app=inner)])
    outer.add_middleware(mltrace.MLTraceMiddleware)
    r = TestClient(outer).post("/v1/score/a", json={"x": [1.0]})
    assert r.status_code == 200
    assert len([v for k, v in r.headers.multi_items() if k == "x-trace-id"]) == 1
    assert spans.server().name == "POST /v1/score/{model_id}"


@pytest.mark.parametrize(
    ("host", "address", "port"),
    [
        ("localhost:8000", "localhost", 8000),
        ("localhost", "localhost", 80),
        ("localhost:\xb2", "localhost", None),
        ("localhost:\uff18\uff10", "localhost", None),
        ("x:99999999999999999999999", "x", None),
        ("x:65536", "x", None),
        ("x:0", "x", None),
        ("x:", "x", None),
        ("[::1]:8000", "::1", 8000),
        ("[::1]", "::1", 80),
        ("[::1", "[::1", 80),
        ("a:b:c", "a:b:c", 80),
        ("h" * 1000, "h" * 256, 80),
    ],
)
def test_host_header_attributes(host: str, address: str, port: int | None) -> None:
    """``server.address``/``server.port`` from Host: a port that is not a TCP port is left out."""
    from mltrace.spans._inbound import host_attributes

    attrs = host_attributes(host, "http")
    assert attrs["server.address"] == address
    assert attrs.get("server.port") == port


def test_route_templates_through_nested_mounts_and_fastapi_routers(spans: CapturedSpans) -> None:
    """Mounts inside mounts keep every prefix as a template; Starlette routes and mounts inside a
    FastAPI app (whose router sets no scope['route'] for them) are named too."""
    from starlette.routing import Mount

    async def leaf(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    inner = [Route("/c/{y}", leaf)]
    app = Starlette(routes=[Mount("/a", routes=[Mount("/b/{x}", routes=inner)]), Mount("/z", routes=inner)])
    app.add_middleware(mltrace.MLTraceMiddleware)
    api = FastAPI(telemetry={"tracing": False}) if "telemetry" in _fastapi_params() else FastAPI()
    api.router.routes.append(Route("/plain/{p}", leaf))
    api.mount("/m", Starlette(routes=inner))
    api.add_middleware(mltrace.MLTraceMiddleware)
    TestClient(app).get("/a/b/1/c/2")
    TestClient(app).get("/z/c/2")
    TestClient(api).get("/plain/1")
    TestClient(api).get("/m/c/3")
    routes = [(s.attributes or {}).get("http.route") for s in spans if s.kind is SpanKind.SERVER]
    assert routes == ["/a/b/{x}/c/{y}", "/z/c/{y}", "/plain/{p}", "/m/c/{y}"]


def _fastapi_params() -> Any:
    import inspect

    return inspect.signature(FastAPI).parameters


def test_propagator_warnings_are_capped(caplog: pytest.LogCaptureFixture) -> None:
    """The baggage propagator's warnings about a client's header are cut to a few hundred
    characters, and repeats held back, once a middleware exists."""
    import logging

    from opentelemetry.baggage.propagation import W3CBaggagePropagator

    from mltrace.spans._inbound import ClientTextCap

    mltrace.MLTraceMiddleware(_starlette_app())
    caplog.set_level(logging.WARNING)
    logger = logging.getLogger("opentelemetry.baggage.propagation")
    cap = next(f for f in logger.filters if isinstance(f, ClientTextCap))
    cap._seen.clear()
    for _ in range(50):
        W3CBaggagePropagator().extract({"baggage": "k=" + "v" * 65_000})
        W3CBaggagePropagator().extract({"baggage": ",".join(["\xe9=1"] * 1000)})
    records = [r for r in caplog.records if r.name == "opentelemetry.baggage.propagation"]
    assert 0 < len(records) <= 2 * cap.burst
    assert max(len(r.getMessage()) for r in records) < 500
