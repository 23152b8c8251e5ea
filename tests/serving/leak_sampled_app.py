"""The app of tests/serving/test_sampled_out_leak.py: mltrace configured to sample every new trace
out, and an ASGI layer OUTSIDE mltrace's middleware that reports, in ``x-entry-context``, how many
values the OpenTelemetry context held when uvicorn called the app (0 unless a context leaked from an
earlier request on the connection; mltrace's own leak check would hide such a leak otherwise)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from opentelemetry import context as otel_context
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

import mltrace

mltrace.configure(service_name="leak-sampled", exporter="none", sample_ratio=0.0)


async def echo(request: Request) -> Response:
    return JSONResponse({"size": len(await request.body())})


async def chunks() -> AsyncIterator[bytes]:
    for i in range(4):
        await asyncio.sleep(0)
        yield b"%d" % i * 40_000  # streamed: these sends are not the last, and run in the request's context


async def stream(request: Request) -> Response:
    await request.body()
    return StreamingResponse(chunks())


inner = Starlette(routes=[Route("/echo", echo, methods=["POST"]), Route("/stream", stream, methods=["POST"])])
inner.add_middleware(mltrace.MLTraceMiddleware)


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        await inner(scope, receive, send)
        return
    held = str(len(otel_context.get_current())).encode()

    async def reporting_send(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), (b"x-entry-context", held)]}
        await send(message)

    await inner(scope, receive, reporting_send)
