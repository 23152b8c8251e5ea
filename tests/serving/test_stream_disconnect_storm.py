"""Issue 11 ("never break serving"): a decorated sync-generator stage streamed by Starlette to
clients that read the first chunk and walk away, six at once, must not kill the server.

Starlette runs the sync iterator in its thread pool and, when the client goes, leaves the iterator
to the GC; the GC finalizes it wherever it happens to run, possibly inside a ContextVar.set on the
event-loop thread. The stage wrapper used to attach/detach the OpenTelemetry context (and end the
span, whose processor sets a context variable) right there, re-entering ContextVar.set on the same
Context: a use-after-free in CPython's HAMT (gh-148891, Python < 3.12), and uvicorn died with
SIGSEGV. tests/spans/test_stream_finalize.py checks the mechanism in-process; this is the served shape of
tests/serving/repro_sync_stream_crash.py, bounded in time, under uvicorn --http httptools.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from _serving import serve, stored_spans
from _wire import Wire, request

from mltrace import semconv

STORM_S = 10.0  # before the fix the server died (SIGSEGV) after 2 to 8 s of this storm, 3 runs of 3
CLIENTS = 6


def _storm(port: int, until: float, errors: list[str]) -> None:
    i = 0
    while time.monotonic() < until:
        for app in ("starlette", "fastapi-off", "mounted", "fastapi"):
            path = ("/v1" if app == "mounted" else "") + f"/stream-sync?n={100_000 if i % 2 else 50}"
            try:
                with Wire(port) as wire:
                    wire.send(request("GET", path, [(b"x-app", app.encode())]))
                    assert wire.head().status == 200
                    assert wire.chunk()
                    if i % 3 == 0:  # a request pipelined behind the stream, never answered
                        wire.send(request("POST", "/echo", [(b"x-app", app.encode())], b"x" * 200_000))
            except OSError as exc:  # the server went away (or refused): the failure below says why
                errors.append(f"round {i}, {app}: {exc!r}")
                return
        i += 1


def test_server_survives_clients_walking_away_from_sync_generator_streams(tmp_path: Path) -> None:
    with serve("httptools", tmp_path, name="storm") as server:
        errors: list[str] = []
        until = time.monotonic() + STORM_S
        clients = [threading.Thread(target=_storm, args=(server.port, until, errors)) for _ in range(CLIENTS)]
        for t in clients:
            t.start()
        for t in clients:
            t.join(STORM_S + 60)
        assert server.proc is not None
        assert server.proc.poll() is None, f"server died ({server.proc.returncode}): {server.output()[-3000:]}"
        assert not errors, errors[:3]
        # still serving, and a whole stream still comes out right
        with Wire(server.port) as wire:
            wire.send(request("GET", "/stream-sync?n=5", [(b"x-app", b"starlette")]))
            res = wire.response()
        assert res.status == 200 and res.body == b"".join(f"line {i}\n".encode() for i in range(5))
        # the abandoned streams' stage spans were ended, marked closed early, not as errors
        rows = stored_spans(
            server.db,  # type: ignore[attr-defined]
            lambda rs: any(r["attributes"].get(semconv.ML_STREAM_CLOSED_EARLY) for r in rs),
        )
        closed = [r for r in rows if r["attributes"].get(semconv.ML_STREAM_CLOSED_EARLY)]
        assert closed and all(r["status_code"] != "ERROR" for r in closed)
        # uvicorn's graceful stop waits out the abandoned streams (20 s, traced or not): not what
        # this test is about
        server.stop(timeout=2)
