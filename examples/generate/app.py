"""A streaming text-generation service with an OpenAI-compatible ``/v1/chat/completions``.

Run it::

    pip install "mltrace-serving[serve]"
    MLTRACE_EXPORTER=local uvicorn app:app --app-dir examples/generate --port 8000

then stream from it with any OpenAI client (``base_url="http://127.0.0.1:8000/v1"``) or curl::

    curl -N http://127.0.0.1:8000/v1/chat/completions -H 'content-type: application/json' \\
      -d '{"model": "tiny-char", "stream": true, "messages": [{"role": "user", "content": "Tracing"}]}'

and look at the request: ``mltrace slow --by ttft``, ``mltrace stats``, ``mltrace show <trace id>``.

The model (model.py) is a character-level model trained at start-up; each character is a token.
What mltrace records comes from one decorator, ``@mltrace.inference(kind="generate")``, on the
async generator of tokens, plus three calls the function makes because only it knows: the queue
time (``generation_started()`` once it holds a slot of the semaphore), the tokens in, and the
finish reason.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any, Literal

from fastapi import FastAPI
from fastapi.responses import JSONResponse, StreamingResponse
from model import CharModel
from pydantic import BaseModel, Field

import mltrace

MODEL_NAME = "tiny-char"
MODEL_VERSION = "1"

mltrace.configure(service_name=os.environ.get("OTEL_SERVICE_NAME", "generate-example"))
app = FastAPI(title="tiny-char")
app.add_middleware(mltrace.MLTraceMiddleware)

model = CharModel()
# At most this many generations run at once; the others wait (their queue time).
slots = asyncio.Semaphore(int(os.environ.get("GENERATE_CONCURRENCY", "8")))


class Message(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(BaseModel):
    model: str = MODEL_NAME
    messages: list[Message]
    max_tokens: int = Field(default=64, ge=1, le=4096)
    temperature: float = Field(default=0.5, ge=0.0, le=2.0)
    seed: int = 0
    stream: bool = False
    stop: str | list[str] | None = None  # single characters here: the model's tokens are characters

    def stop_chars(self) -> str:
        stops = [self.stop] if isinstance(self.stop, str) else (self.stop or [])
        return "".join(s[:1] for s in stops)


@mltrace.inference(
    model=MODEL_NAME, version=MODEL_VERSION, kind="generate", attributes={"gen_ai.operation.name": "chat"}
)
async def generate(prompt_ids: list[int], req: ChatRequest) -> AsyncIterator[str]:
    """Characters of the completion. Tokens in are counted from ``prompt_ids`` (token ids)."""
    stage = mltrace.current_stage()
    async with slots:
        stage.generation_started()
        n = 0
        tokens = model.stream(
            prompt_ids, req.max_tokens, seed=req.seed, temperature=req.temperature, stop=req.stop_chars()
        )
        async for ch in tokens:
            n += 1
            yield ch
    stage.set_finish_reason("length" if n >= req.max_tokens else "stop")


def _prompt(req: ChatRequest) -> list[int]:
    return model.encode("\n".join(m.content for m in req.messages))


def _chunk(cid: str, created: int, delta: dict[str, Any], finish: str | None) -> str:
    body = {
        "id": cid, "object": "chat.completion.chunk", "created": created, "model": MODEL_NAME,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return f"data: {json.dumps(body, separators=(',', ':'))}\n\n"


async def _sse(req: ChatRequest) -> AsyncIterator[str]:
    cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
    n, first = 0, True
    async for ch in generate(_prompt(req), req):
        n += 1
        # The role rides on the first token's chunk: the first chunk a client sees holds text,
        # so its time to first chunk is its time to first token.
        yield _chunk(cid, created, {"role": "assistant", "content": ch} if first else {"content": ch}, None)
        first = False
    yield _chunk(cid, created, {}, "length" if n >= req.max_tokens else "stop")
    yield "data: [DONE]\n\n"


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/v1/models")
async def models() -> dict[str, Any]:
    return {"object": "list", "data": [{"id": MODEL_NAME, "object": "model", "owned_by": "examples"}]}


@app.post("/v1/chat/completions", response_model=None)
async def chat_completions(req: ChatRequest) -> StreamingResponse | JSONResponse:
    if req.stream:
        return StreamingResponse(_sse(req), media_type="text/event-stream", headers={"cache-control": "no-cache"})
    prompt = _prompt(req)
    text = "".join([ch async for ch in generate(prompt, req)])
    return JSONResponse({
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}", "object": "chat.completion", "created": int(time.time()),
        "model": MODEL_NAME,
        "choices": [{
            "index": 0, "message": {"role": "assistant", "content": text},
            "finish_reason": "length" if len(text) >= req.max_tokens else "stop",
        }],
        "usage": {
            "prompt_tokens": len(prompt), "completion_tokens": len(text), "total_tokens": len(prompt) + len(text),
        },
    })


if __name__ == "__main__":  # python examples/generate/app.py (HOST, PORT from the environment)
    import uvicorn

    uvicorn.run(app, host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8000")))
