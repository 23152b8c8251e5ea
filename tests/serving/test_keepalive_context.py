"""Issue 11 item 1: a served request's trace context never outlives it on a keep-alive connection.

uvicorn resumes reading a body over its 64 KiB buffer from inside ``receive()``; asyncio copies the
context current there into the connection's reader callback, and every later request on that
connection used to start in it: bodies 10, 10, 200000, 10, 10, 10 through one client gave 3 trace
ids for 6 requests, and the later requests had no server span at all.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from _servers import ServerProcess, free_port, server_env
from _serving import HERE, spans_of
from _wire import Wire, request

BODIES = (10, 10, 200_000, 10, 10, 10)


def _one_trace_each(server: ServerProcess, trace_ids: list[str | None]) -> dict[str, list[dict[str, Any]]]:
    assert None not in trace_ids
    ids = [t for t in trace_ids if t is not None]
    assert len(set(ids)) == len(ids), f"requests shared a trace: {ids}"
    by_trace = spans_of(server.db, ids)  # type: ignore[attr-defined]
    for trace_id in ids:
        servers = [s for s in by_trace[trace_id] if s["kind"] == "SERVER"]
        assert len(servers) == 1, (trace_id, [s["name"] for s in by_trace[trace_id]])
    return by_trace


@pytest.mark.parametrize("app", ["starlette", "fastapi-off", "fastapi"])
def test_large_body_does_not_leak_into_later_requests(traced: ServerProcess, app: str) -> None:
    """One httpx.Client, bodies 10, 10, 200000, 10, 10, 10: six trace ids, six SERVER spans."""
    with httpx.Client(base_url=traced.url, headers={"x-app": app}, timeout=30) as client:
        responses = [client.post("/echo", content=b"x" * n) for n in BODIES]
    assert [r.json()["size"] for r in responses] == list(BODIES)
    by_trace = _one_trace_each(traced, [r.headers.get("x-trace-id") for r in responses])
    for r, n in zip(responses, BODIES, strict=True):
        (server,) = [s for s in by_trace[r.headers["x-trace-id"]] if s["kind"] == "SERVER"]
        assert server["attributes"]["http.request.body.size"] == n


def test_pipelined_requests_after_a_large_body_get_their_own_traces(traced: ServerProcess) -> None:
    """Requests written back to back (HTTP/1.1 pipelining: uvicorn starts the next one from inside
    the previous one's ``send``) each get their own trace, large bodies among them."""
    batch = [request("POST", "/echo", [(b"x-app", b"starlette")], b"y" * n) for n in (100, 300_000, 5, 70_000, 1)]
    with Wire(traced.port) as wire:
        wire.send(b"".join(batch))
        responses = [wire.response() for _ in batch]
        wire.send(request("GET", "/items/after"))
        responses.append(wire.response())
    assert [r.status for r in responses] == [200] * 6
    ids = [r.header(b"x-trace-id") for r in responses]
    _one_trace_each(traced, [i.decode() if i else None for i in ids])


def test_stage_spans_stay_in_their_request(traced: ServerProcess) -> None:
    """After a large upload, a later request's stage spans are children of its own server span."""
    with httpx.Client(base_url=traced.url, headers={"x-app": "starlette"}, timeout=30) as client:
        client.post("/echo", content=b"z" * 500_000)
        later = [client.post("/predict", json={"x": [1.0, 2.0, float(i)]}) for i in range(3)]
    by_trace = _one_trace_each(traced, [r.headers.get("x-trace-id") for r in later])
    for r in later:
        spans = by_trace[r.headers["x-trace-id"]]
        (server,) = [s for s in spans if s["kind"] == "SERVER"]
        stages = [s for s in spans if s["kind"] != "SERVER"]
        assert sorted(s["name"] for s in stages) == ["inference", "postprocess", "preprocess"]
        assert all(s["parent_span_id"] == server["span_id"] for s in stages)


def test_gunicorn_uvicorn_worker_keeps_requests_apart(tmp_path: Path) -> None:
    """The same under gunicorn with uvicorn's worker class (how many deploy it)."""
    port = free_port()
    env = {"SERVING_TRACED": "1", "SERVING_DB": str(tmp_path / "g.db")}
    argv = ["gunicorn", "-k", "uvicorn_worker.UvicornWorker", "-w", "1", "-b", f"127.0.0.1:{port}",
            "--control-socket", str(tmp_path / "g.ctl"), "serving_app:app"]
    with ServerProcess(argv, port=port, env=server_env(env, [HERE]), log=tmp_path / "g.log",
                       ready_path="/items/ready") as server:
        server.db = tmp_path / "g.db"  # type: ignore[attr-defined]
        with httpx.Client(base_url=server.url, headers={"x-app": "starlette"}, timeout=30) as client:
            responses = [client.post("/echo", content=b"x" * n) for n in BODIES]
        _one_trace_each(server, [r.headers.get("x-trace-id") for r in responses])
