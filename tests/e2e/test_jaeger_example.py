"""examples/serve_sklearn.py exporting to the real Jaeger: one request, one trace, read back by its id.

The trace id comes from the response's ``X-Trace-Id`` header and is looked up with Jaeger's
``GET /api/traces/{id}``: one SERVER span, the four stage spans as its children, ``ml.*`` tags.
Both OTLP transports Jaeger takes are covered (gRPC 4317, HTTP/protobuf 4318).
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from _e2e_backends import App, Jaeger, traced_call
from _e2e_example import BODY, check_example_trace, complete
from _servers import ServerProcess

pytestmark = pytest.mark.e2e

def predict(server: ServerProcess) -> httpx.Response:
    response = httpx.post(f"{server.url}/predict", json=BODY, timeout=10)
    assert response.status_code == 200, response.text
    return response


@pytest.mark.parametrize(
    ("protocol", "endpoint"),
    [("grpc", "otlp_grpc"), ("http/protobuf", "otlp_http")],
)
def test_example_request_is_one_trace_in_jaeger(
    jaeger_server: Jaeger, serve: Callable[..., list[ServerProcess]], protocol: str, endpoint: str
) -> None:
    """POST /predict's X-Trace-Id finds, in Jaeger, one SERVER span with the four ml.* stage spans as children."""
    env = {
        "MLTRACE_EXPORTER": "jaeger",
        "OTEL_EXPORTER_OTLP_ENDPOINT": getattr(jaeger_server, endpoint),
        "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
    }
    [server] = serve(App("examples/serve_sklearn.py", env))
    response, spans = traced_call(lambda: predict(server), jaeger_server, complete)
    trace_id = response.headers["x-trace-id"]
    assert response.headers["traceresponse"].split("-")[1] == trace_id
    check_example_trace(spans, trace_id)
    process_tags = jaeger_process_tags(jaeger_server, trace_id)
    assert process_tags["ml.model.name"] == "breast-cancer"
    assert process_tags["telemetry.distro.name"] == "mltrace"


def jaeger_process_tags(jaeger: Jaeger, trace_id: str) -> dict[str, object]:
    """The resource attributes Jaeger keeps per process (one process: the example server)."""
    body = jaeger.raw(trace_id)
    assert body is not None
    [process] = body["data"][0]["processes"].values()
    return {t["key"]: t["value"] for t in process["tags"]}
