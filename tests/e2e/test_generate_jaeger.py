"""examples/generate streaming to the real Jaeger: one SSE completion, one trace, read back by id.

The inference span arrives with its generation figures (``ml.generate.*``) and the GenAI
conventions' ``gen_ai.*`` tags, under the server span, which lasts at least as long as the stream.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import httpx
import pytest
from _e2e_backends import App, Jaeger, SpanView, traced_call
from _servers import ServerProcess

pytestmark = pytest.mark.e2e


def _complete(spans: list[SpanView]) -> bool:
    return any(s.name == "inference" and "ml.generate.time_to_first_token" in s.tags for s in spans) and any(
        s.kind == "server" for s in spans
    )


def test_streamed_completion_is_one_trace_in_jaeger(
    jaeger_server: Jaeger, serve: Callable[..., list[ServerProcess]]
) -> None:
    env = {"MLTRACE_EXPORTER": "jaeger", "OTEL_EXPORTER_OTLP_ENDPOINT": jaeger_server.otlp_grpc,
           "OTEL_SERVICE_NAME": "generate-e2e"}
    [server] = serve(App("examples/generate/app.py", env, ready_path="/health"))
    pieces: list[str] = []

    def stream() -> httpx.Response:
        pieces.clear()
        body = {"model": "tiny-char", "stream": True, "max_tokens": 24, "seed": 5,
                "messages": [{"role": "user", "content": "Tracing a model server"}]}
        with httpx.stream("POST", f"{server.url}/v1/chat/completions", json=body, timeout=30) as r:
            for line in r.iter_lines():
                if line.startswith("data: {"):
                    delta = json.loads(line[6:])["choices"][0]["delta"]
                    if "content" in delta:
                        pieces.append(delta["content"])
        return r

    response, spans = traced_call(stream, jaeger_server, _complete)
    assert _complete(spans), [s.name for s in spans]
    [server_span] = [s for s in spans if s.kind == "server"]
    [inference] = [s for s in spans if s.name == "inference"]
    assert inference.parent_id == server_span.span_id
    assert server_span.end_us >= inference.end_us, "the server span ends with the stream"
    t = inference.tags
    assert t["ml.generate.output_tokens"] == len(pieces) == t["gen_ai.usage.output_tokens"] == 24
    assert t["ml.generate.input_tokens"] == len("Tracing a model server")
    assert t["gen_ai.operation.name"] == "chat" and t["gen_ai.request.model"] == "tiny-char"
    assert t["ml.generate.finish_reason"] == "length"
    assert 0 < float(t["ml.generate.time_to_first_token"]) < 5
    assert response.headers["x-trace-id"] == inference.trace_id
