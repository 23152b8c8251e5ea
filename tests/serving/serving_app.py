"""The apps tests/serving serves with real uvicorn, shaped like the public examples people copy.

``uvicorn serving_app:app`` (PYTHONPATH=tests/serving). Environment:
- ``SERVING_TRACED=1``: ``mltrace.configure(exporter="local")`` writing to ``SERVING_DB``, every app
  with ``MLTraceMiddleware`` and decorated stages; ``0``: the same apps with no mltrace at all
  (mltrace is not even imported), the reference for the differential test.
- ``SERVING_OTLP``: also export every span as OTLP/HTTP protobuf to that URL (the real encoder and
  exporter), so a test can see what an OTLP backend would be sent.

One process serves several apps; the ``x-app`` request header picks one (a plain ASGI function
calls the chosen app, nothing else: each app sees exactly what uvicorn hands it):

- ``starlette``: plain Starlette, mltrace makes the server span.
- ``fastapi``: FastAPI with its native telemetry (the default once a provider is configured;
  FastAPI makes the server span and mltrace enriches it). On a FastAPI without native telemetry
  it is the same as ``fastapi-off``.
- ``fastapi-off``: ``FastAPI(telemetry={"tracing": False})``: mltrace makes the server span.
- ``mounted``: Starlette with ``Mount("/v1", ...)`` and ``Mount("/v2", ...)`` of the same routes,
  and ``Mount("/users/{uid}", ...)``.
- ``fastapi-mounted``: a telemetry-off FastAPI with a default ``FastAPI()`` sub-app at ``/sub``.

Every app answers ``POST /echo`` (size and SHA-256 of the body), ``POST /predict`` (a JSON list
through preprocess/inference/postprocess stages), ``GET /items/{item_id}``, ``GET /stream?n=&delay=``
(chunked, an async-generator stage), ``GET /stream-sync?n=&delay_ms=`` (a sync-generator stage),
``GET /url`` (what the app makes of the request's URL: a hostile Host reaches the app unchanged)
and the websocket ``/ws`` (echo).
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import os
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute
from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket

TRACED = os.environ.get("SERVING_TRACED", "1") == "1"
Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


def _plain(func: Callable[..., Any]) -> Callable[..., Any]:
    return func


if TRACED:
    import mltrace

    handle = mltrace.configure(
        service_name="serving-test", exporter="local", local_path=os.environ["SERVING_DB"], batch=False
    )
    if os.environ.get("SERVING_OTLP"):
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor

        handle.provider.add_span_processor(SimpleSpanProcessor(OTLPSpanExporter(endpoint=os.environ["SERVING_OTLP"])))
    preprocess: Decorator = mltrace.preprocess
    postprocess: Decorator = mltrace.postprocess
    inference: Decorator = mltrace.inference(model="toy", version="1")
else:
    preprocess = postprocess = inference = _plain


@preprocess
def prepare(x: list[float]) -> list[float]:
    return [float(v) * 2 for v in x]


@inference
def model(x: list[float]) -> float:
    return sum(x) / (len(x) or 1)


@postprocess
def present(y: float) -> dict[str, float]:
    return {"y": round(y, 6)}


@inference
async def tokens(n: int, delay: float) -> AsyncIterator[bytes]:
    for i in range(n):
        if delay:
            await asyncio.sleep(delay)
        yield f"token {i}\n".encode()


@inference
def tokens_sync(n: int, delay: float) -> Iterator[bytes]:
    for i in range(n):
        if delay:
            time.sleep(delay)  # Starlette runs a sync iterator in its thread pool
        yield f"line {i}\n".encode()


async def echo(request: Request) -> Response:
    body = await request.body()
    return JSONResponse({"size": len(body), "sha256": hashlib.sha256(body).hexdigest()})


async def predict(request: Request) -> Response:
    try:
        x = (await request.json())["x"]
    except (ValueError, KeyError, TypeError):
        return PlainTextResponse("bad input", status_code=422)
    return JSONResponse(present(model(prepare(x))))


async def item(request: Request) -> Response:
    return JSONResponse({"item": request.path_params["item_id"], "q": request.query_params.get("q")})


def _int(request: Request, name: str, default: int) -> int:
    value = request.query_params.get(name, "")
    return int(value) if value.isascii() and value.isdigit() else default


async def stream(request: Request) -> Response:
    delay = _int(request, "delay_ms", 0) / 1000
    return StreamingResponse(tokens(_int(request, "n", 5), delay), media_type="text/plain")


async def stream_sync(request: Request) -> Response:
    delay = _int(request, "delay_ms", 0) / 1000
    return StreamingResponse(tokens_sync(_int(request, "n", 5), delay), media_type="text/plain")


async def url(request: Request) -> Response:
    return PlainTextResponse(f"{request.scope['path']} {request.headers.get('host', '')!r}")


async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return
        if message.get("text") is not None:
            await websocket.send_text(message["text"])
        else:
            await websocket.send_bytes(message.get("bytes") or b"")


def routes() -> list[BaseRoute]:
    return [
        Route("/echo", echo, methods=["POST"]),
        Route("/predict", predict, methods=["POST"]),
        Route("/items/{item_id}", item),
        Route("/stream", stream),
        Route("/stream-sync", stream_sync),
        Route("/url", url),
        WebSocketRoute("/ws", ws),
    ]


def _traced(app: Any) -> Any:
    if TRACED:
        app.add_middleware(mltrace.MLTraceMiddleware)
    return app


def _fastapi(**telemetry: bool) -> FastAPI:
    if telemetry and "telemetry" in inspect.signature(FastAPI).parameters:
        app = FastAPI(telemetry=telemetry)  # type: ignore[call-arg, unused-ignore]
    else:
        app = FastAPI()  # a FastAPI without native telemetry: mltrace makes the server span anyway
    app.router.routes.extend(routes())
    return app


def _mounted() -> Starlette:
    return Starlette(
        routes=[
            Mount("/v1", routes=routes()),
            Mount("/v2", routes=routes()),
            Mount("/users/{uid}", routes=routes()),
        ]
    )


def _fastapi_mounted() -> FastAPI:
    parent = _fastapi(tracing=False)
    parent.mount("/sub", _fastapi())
    return parent


APPS: dict[str, ASGIApp] = {
    "starlette": _traced(Starlette(routes=routes())),
    "fastapi": _traced(_fastapi()),
    "fastapi-off": _traced(_fastapi(tracing=False)),
    "mounted": _traced(_mounted()),
    "fastapi-mounted": _traced(_fastapi_mounted()),
}


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Hands the request to the app its ``x-app`` header names (``starlette`` by default)."""
    if scope["type"] == "lifespan":  # served with --lifespan off
        raise RuntimeError("no lifespan")
    name = dict(scope.get("headers") or ()).get(b"x-app", b"starlette").decode("latin-1")
    await APPS.get(name, APPS["starlette"])(scope, receive, send)
