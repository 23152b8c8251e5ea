"""examples/serve_sklearn.py exporting Zipkin v2 JSON to the real Zipkin server, read back by trace id."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from _e2e_backends import App, Zipkin, traced_call
from _e2e_example import BODY, check_example_trace, complete
from _servers import ServerProcess

pytestmark = pytest.mark.e2e


def test_example_request_is_one_trace_in_zipkin(
    zipkin_server: Zipkin, serve: Callable[..., list[ServerProcess]]
) -> None:
    """POST /predict's X-Trace-Id finds, in Zipkin, the SERVER span and the four stages linked by parentId."""
    env = {"MLTRACE_EXPORTER": "zipkin", "OTEL_EXPORTER_ZIPKIN_ENDPOINT": zipkin_server.spans_endpoint}
    [server] = serve(App("examples/serve_sklearn.py", env))

    def predict() -> httpx.Response:
        response = httpx.post(f"{server.url}/predict", json=BODY, timeout=10)
        assert response.status_code == 200, response.text
        return response

    response, spans = traced_call(predict, zipkin_server, complete)
    trace_id = response.headers["x-trace-id"]
    check_example_trace(spans, trace_id)  # Zipkin's tags are strings: the checks compare as such
    [root] = [s for s in spans if s.parent_id is None]
    assert root.tags["http.response.status_code"] == "200"
