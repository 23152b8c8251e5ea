"""Issue 11 item 14: a client that disconnects mid-stream is marked on the server span
(``ml.client.disconnected``, attribute and event), never as an error of the service or the model,
under real uvicorn with a real streaming client that goes away.
"""

from __future__ import annotations

import time

import pytest
from _servers import ServerProcess
from _serving import spans_of, stored_spans
from _wire import Wire, request

from mltrace import semconv

STAGES_MARK_CLOSED = hasattr(semconv, "ML_STREAM_CLOSED_EARLY")  # the stage decorators' side (issue 11, item 14)


def _walk_away(server: ServerProcess, app: str, path: str) -> str:
    """Start a streamed response, read its first chunk, close the socket; the trace id."""
    with Wire(server.port) as wire:
        wire.send(request("GET", path, [(b"x-app", app.encode())]))
        head = wire.head()
        assert head.status == 200
        assert wire.chunk()
        trace_id = head.header(b"x-trace-id")
    assert trace_id is not None
    return trace_id.decode()


@pytest.mark.parametrize("app", ["starlette", "fastapi-off", "mounted"])
# A sync-generator stage streamed without pause, 100,000 lines to a client that left, crashed the
# server process now and then (SIGSEGV in CPython, with mltrace before issue 11 as well; see the
# report of that change): the paced stream tests the mark without the write flood.
@pytest.mark.parametrize("path", ["/stream?n=200&delay_ms=10", "/stream-sync?n=200&delay_ms=10"])
def test_disconnect_mid_stream_is_marked_not_an_error(traced: ServerProcess, app: str, path: str) -> None:
    """mltrace's own server span: status not ERROR, no ``error.type``, the 200 that was sent, and
    ``ml.client.disconnected`` with an event saying how much of the body had gone out."""
    prefix = "/v1" if app == "mounted" else ""
    trace_id = _walk_away(traced, app, prefix + path)
    (server,) = [s for s in spans_of(traced.db, [trace_id])[trace_id] if s["kind"] == "SERVER"]  # type: ignore[attr-defined]
    attrs = server["attributes"]
    assert server["status_code"] != "ERROR" and "error.type" not in attrs, server
    assert attrs[semconv.ML_CLIENT_DISCONNECTED] is True
    assert attrs["http.response.status_code"] == 200
    (event,) = [e for e in server["events"] if e["name"] == semconv.ML_CLIENT_DISCONNECTED]
    assert 0 < event["attributes"]["http.response.body.size"] <= attrs["http.response.body.size"]


def test_disconnect_is_marked_on_fastapi_native_span(traced: ServerProcess) -> None:
    """With FastAPI's own server span mltrace adds the same mark (FastAPI sets its own status)."""
    trace_id = _walk_away(traced, "fastapi", "/stream?n=200&delay_ms=10")
    (server,) = [s for s in spans_of(traced.db, [trace_id])[trace_id] if s["kind"] == "SERVER"]  # type: ignore[attr-defined]
    assert server["attributes"][semconv.ML_CLIENT_DISCONNECTED] is True


@pytest.mark.xfail(not STAGES_MARK_CLOSED, reason="stage generators mark an early close once the stages branch is in",
                   strict=True)
def test_async_generator_stage_closed_by_a_disconnect_is_not_an_error(traced: ServerProcess) -> None:
    """The async-generator stage a disconnect cancels ends without ERROR, marked closed early.

    (A sync-generator stage is run by Starlette through a thread and left suspended: it ends when
    the generator is collected, which in an idle process can be much later.)"""
    trace_id = _walk_away(traced, "starlette", "/stream?n=200&delay_ms=10")
    deadline = time.monotonic() + 10
    stages: list[dict[str, object]] = []
    while not stages and time.monotonic() < deadline:
        rows = stored_spans(traced.db, lambda rows: True)  # type: ignore[attr-defined]
        stages = [s for s in rows if s["trace_id"] == trace_id and s["kind"] != "SERVER"]
        time.sleep(0.1)
    (stage,) = stages
    assert stage["status_code"] != "ERROR", stage
    assert stage["attributes"].get("ml.output.stream.closed_early") is True


@pytest.mark.parametrize("app", ["starlette", "fastapi-off"])
def test_disconnect_mid_upload_is_marked_not_an_error(traced: ServerProcess, app: str) -> None:
    """A client that promises 1 MiB, sends 100 KB and leaves: the app's ``ClientDisconnect`` is not
    recorded as an error of the service; the span says the client went away."""
    tag = f"up{time.monotonic_ns()}"
    with Wire(traced.port) as wire:
        head = request("POST", f"/echo?tag={tag}", [(b"x-app", app.encode())])
        wire.send(head.replace(b"content-length: 0", b"content-length: 1048576") + b"p" * 100_000)
        time.sleep(0.2)

    def mine(rows: list[dict[str, object]]) -> list[dict[str, object]]:
        return [r for r in rows if r["kind"] == "SERVER" and tag in str(r["attributes"].get("url.query"))]  # type: ignore[attr-defined]

    (server,) = mine(stored_spans(traced.db, lambda rows: bool(mine(rows))))  # type: ignore[attr-defined]
    attrs = server["attributes"]
    assert server["status_code"] != "ERROR" and "error.type" not in attrs, server  # type: ignore[operator]
    assert attrs[semconv.ML_CLIENT_DISCONNECTED] is True  # type: ignore[index]
    assert 0 < attrs["http.request.body.size"] <= 100_000  # type: ignore[index]
