"""Sampled-out requests under real uvicorn (issue 13's fast path): the trace id still reaches the
client (``X-Trace-Id``, ``traceresponse``), the code inside the request and an outgoing httpx call,
with and without incoming trace headers; a propagator reading prefixed headers still gets them.

The middleware skips ``propagate.extract`` when none of the headers the (known) global
propagators read is present: these tests fail if it skipped a header that mattered.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from _servers import ServerProcess, free_port, server_env

HERE = Path(__file__).resolve().parent
TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
INCOMING_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
INCOMING_SPAN = "00f067aa0ba902b7"


def _serve(tmp: Path, propagator: str) -> ServerProcess:
    port = free_port()
    env = {"SAMPLED_PORT": str(port), "SAMPLED_PROPAGATOR": propagator}
    argv = [sys.executable, "-m", "uvicorn", "sampled_app:app", "--host", "127.0.0.1", "--port", str(port),
            "--lifespan", "off", "--no-access-log"]
    return ServerProcess(argv, port=port, env=server_env(env, [HERE]), log=tmp / f"sampled-{propagator}.log")


@pytest.fixture(scope="module", params=["global", "acme"])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with _serve(tmp_path_factory.mktemp("sampled"), request.param) as running:
        yield running


def _check(response: httpx.Response, trace_id: str | None) -> tuple[str, str]:
    """The response is sampled out and carries one trace id everywhere: returns (trace id, server span id)."""
    assert response.status_code == 200, response.text
    body = response.json()
    match = TRACEPARENT.match(response.headers["traceresponse"])
    assert match, response.headers["traceresponse"]
    tid, server_span, flags = match.groups()
    assert int(flags, 16) & 1 == 0  # sampled out (0x02: the trace id is random, W3C level 2)
    assert response.headers["x-trace-id"] == tid == body["current_trace_id"]
    if trace_id is not None:
        assert tid == trace_id
    assert body["recording"] is False and body["sampled"] is False
    outgoing = TRACEPARENT.match(body["outgoing"]["traceparent"])
    assert outgoing, body["outgoing"]
    assert outgoing.group(1) == tid and int(outgoing.group(3), 16) & 1 == 0
    return tid, server_span


def test_without_trace_headers(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:  # keep-alive: later requests reuse it
        ids = [_check(client.post("/predict", json={"x": [1.0, 2.0]}), None)[0] for _ in range(4)]
    assert len(set(ids)) == 4  # a fresh trace each time, nothing leaks along the connection


@pytest.mark.parametrize("style", ["traceparent", "b3", "b3-multi"])
def test_incoming_trace_id_propagates(server: ServerProcess, style: str) -> None:
    headers = {
        "traceparent": {"traceparent": f"00-{INCOMING_TRACE}-{INCOMING_SPAN}-00"},
        "b3": {"b3": f"{INCOMING_TRACE}-{INCOMING_SPAN}-0"},
        "b3-multi": {"x-b3-traceid": INCOMING_TRACE, "x-b3-spanid": INCOMING_SPAN, "x-b3-sampled": "0"},
    }[style]
    with httpx.Client(base_url=server.url, timeout=30) as client:
        first = client.post("/predict", json={"x": [1.0]}, headers={**headers, "user-agent": "t", "baggage": "k=v"})
        tid, server_span = _check(first, None)
        after = client.post("/predict", json={"x": [1.0]})  # same connection, no headers: a new trace
    assert tid == INCOMING_TRACE  # configure() installs tracecontext, baggage and B3 (multi reads single too)
    assert server_span != INCOMING_SPAN
    assert _check(after, None)[0] != tid


def test_prefixed_propagator_is_not_skipped(server: ServerProcess) -> None:
    """``x-acme-ctx-traceparent`` is read only by the custom propagator: the fast path must fall back."""
    with httpx.Client(base_url=server.url, timeout=30) as client:
        response = client.post(
            "/predict", json={"x": [1.0]},
            headers={"x-acme-ctx-traceparent": f"00-{INCOMING_TRACE}-{INCOMING_SPAN}-00"},
        )
    tid, _ = _check(response, None)
    if server.log.name.endswith("acme.log"):
        assert tid == INCOMING_TRACE
    else:
        assert tid != INCOMING_TRACE  # no propagator reads it

