"""The differential serving test (issue 11, "Evidence required"): the same apps served by real
uvicorn with and without mltrace, driven by the same randomized request sequences, must answer
byte for byte alike except mltrace's own headers; and with mltrace every request is a trace of
its own with exactly one SERVER span.

Apps (tests/serving/serving_app.py): plain Starlette, FastAPI with native telemetry on and off, a
Starlette app with mounted sub-apps, a telemetry-off FastAPI with a FastAPI sub-app; streaming
(async and sync generator stages) and websockets on each. Each sequence runs over ONE keep-alive
connection per server (a new one only after the server closed it), with request bodies from 0 to
1 MiB (Content-Length or chunked), back-to-back (pipelined) requests, and hostile headers: Host
values no server listens on, malformed and oversized trace headers, 12 KiB of baggage.

Cost, bounded: ``SEQUENCES`` seeded sequences of ``REQUESTS`` requests for each of h11 and
httptools (3 × 40 × 2 = 240 HTTP requests to each of the two servers, plus 12 websocket sessions);
about 15 s on a loaded 2-core machine, servers included. ``MLTRACE_DIFF_SEQUENCES`` raises the count
for a longer local soak (the seed of a failing sequence is in the assertion message).
"""

from __future__ import annotations

import os
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from _servers import ServerProcess
from _serving import serve, spans_of
from _wire import Header, Response, Wire, request
from websockets.sync.client import connect

SEQUENCES = int(os.environ.get("MLTRACE_DIFF_SEQUENCES", "3"))
REQUESTS = 40
OWN_HEADERS = (b"x-trace-id", b"traceresponse", b"date")  # date: the two servers answer a moment apart
APPS = ("starlette", "fastapi", "fastapi-off", "mounted", "fastapi-mounted")
PREFIX = {"mounted": ("/v1", "/v2", "/users/7"), "fastapi-mounted": ("/sub",)}
HOSTILE_HOSTS = (b"localhost:\xb2", b"x:99999999999999999999999", b"[::1]:8000", b"a:b:c", b"x:0", b"h" * 2000)


@pytest.fixture(scope="session")
def plain(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, traced: ServerProcess) -> Iterator[
    ServerProcess
]:
    """The same apps without mltrace, on the traced server's HTTP implementation."""
    http = next(a for a in traced.argv if a in ("h11", "httptools"))
    with serve(http, tmp_path_factory.mktemp(f"plain-{http}"), traced=False, name="plain") as server:
        yield server


@dataclass
class Step:
    """One request of a sequence (or several written back to back)."""

    raw: list[bytes]
    methods: list[str]
    traceparent: list[str | None] = field(default_factory=list)


def _body(rng: random.Random) -> bytes:
    bucket = rng.random()
    if bucket < 0.3:
        size = 0
    elif bucket < 0.6:
        size = rng.randint(1, 2_000)
    elif bucket < 0.8:
        size = rng.randint(60_000, 70_000)  # around uvicorn's 64 KiB read buffer
    else:
        size = rng.randint(100_000, 1 << 20)
    return rng.randbytes(size)


def _headers(rng: random.Random, app: str) -> tuple[list[Header], str | None]:
    headers: list[Header] = [(b"x-app", app.encode())]
    traceparent = None
    if rng.random() < 0.25:
        headers.append((b"host", rng.choice(HOSTILE_HOSTS)))
    roll = rng.random()
    if roll < 0.2:
        traceparent = f"{rng.getrandbits(128) | 1:032x}"
        headers.append((b"traceparent", f"00-{traceparent}-{rng.getrandbits(64) | 1:016x}-01".encode()))
    elif roll < 0.3:
        headers.append((b"traceparent", rng.choice([b"00-zz-11-01", b"ff-" + b"0" * 200, b"00-" + b"a" * 60])))
    if rng.random() < 0.15:
        headers.append((b"baggage", b"k=" + b"v" * 12_000))
    if rng.random() < 0.1:
        headers.append((b"tracestate", b",".join(b"k%d=\xe9" % i for i in range(40))))
    if rng.random() < 0.1:
        headers.append((b"user-agent", b"\xff" * 3000))
    return headers, traceparent


def _one(rng: random.Random) -> tuple[bytes, str, str | None]:
    app = rng.choice(APPS)
    prefix = rng.choice(PREFIX.get(app, ("",)))
    headers, traceparent = _headers(rng, app)
    kind = rng.random()
    if kind < 0.35:
        body = _body(rng)
        if rng.random() < 0.2:  # chunked upload
            pieces = [body[i:i + 70_000] for i in range(0, len(body), 70_000)] or [b""]
            wire_body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces if p) + b"0\r\n\r\n"
            head = request("POST", prefix + "/echo", [*headers, (b"transfer-encoding", b"chunked")])
            return head.replace(b"content-length: 0\r\n", b"") + wire_body, "POST", traceparent
        return request("POST", prefix + "/echo", headers, body), "POST", traceparent
    if kind < 0.55:
        x = [round(rng.uniform(-5, 5), 3) for _ in range(rng.randint(0, 40))]
        payload = rng.choice([f'{{"x": {x}}}'.encode(), b"not json", b'{"y": 1}'])
        return request("POST", prefix + "/predict", headers, payload), "POST", traceparent
    if kind < 0.7:
        return request("GET", f"{prefix}/stream?n={rng.randint(1, 30)}", headers), "GET", traceparent
    if kind < 0.8:
        return request("GET", f"{prefix}/stream-sync?n={rng.randint(1, 30)}", headers), "GET", traceparent
    if kind < 0.9:
        return request("GET", f"{prefix}/url", headers), "GET", traceparent
    item = rng.choice(["1", "abc", "%F0%9F%90%8D", "a%2Fb"])
    method = rng.choice(["GET", "HEAD", "DELETE"])
    return request(method, f"{prefix}/items/{item}?q={rng.randint(0, 9)}", headers), method, traceparent


def sequence(seed: int) -> list[Step]:
    rng = random.Random(seed)
    steps: list[Step] = []
    while sum(len(s.raw) for s in steps) < REQUESTS:
        step = Step([], [])
        for _ in range(rng.choice([1, 1, 1, 1, 2, 3])):  # sometimes pipelined
            raw, method, traceparent = _one(rng)
            step.raw.append(raw)
            step.methods.append(method)
            step.traceparent.append(traceparent)
        steps.append(step)
    return steps


class Client:
    """One keep-alive connection, reopened only when the server closed it."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.wire = Wire(server.port)
        self.connections = 1

    def run(self, step: Step) -> list[Response]:
        if self.wire.closed:
            self.wire = Wire(self.server.port)
            self.connections += 1
        self.wire.send(b"".join(step.raw))
        out = []
        for method in step.methods:
            out.append(self.wire.response(method))
            if self.wire.closed:
                break
        return out

    def close(self) -> None:
        self.wire.close()


def _websockets(seed: int, traced: ServerProcess, plain: ServerProcess) -> None:
    rng = random.Random(seed)
    app = rng.choice(APPS)
    path = rng.choice(PREFIX.get(app, ("",))) + "/ws"
    messages: list[str | bytes] = [rng.choice(["hi", "é" * 100, ""]), rng.randbytes(rng.randint(0, 70_000))]
    answers = []
    for server in (traced, plain):
        with connect(f"ws://127.0.0.1:{server.port}{path}", additional_headers={"x-app": app},
                     max_size=None, open_timeout=20) as ws:
            got = []
            for m in messages:
                ws.send(m)
                got.append(ws.recv(timeout=20))
            answers.append(got)
    assert answers[0] == answers[1] == messages, (seed, app)


@pytest.mark.parametrize("seed", range(SEQUENCES))
def test_with_and_without_mltrace_answer_alike(traced: ServerProcess, plain: ServerProcess, seed: int) -> None:
    """One seeded sequence over one keep-alive connection per server: identical responses less
    mltrace's headers; each traced request a distinct trace with one SERVER span."""
    seed = seed + 1000 * (next(a for a in traced.argv if a in ("h11", "httptools")) == "httptools")
    log_start = Path(traced.log).stat().st_size  # the server is shared: judge only this sequence's lines
    a, b = Client(traced), Client(plain)
    trace_ids: list[str] = []
    given: dict[str, str] = {}
    try:
        for n, step in enumerate(sequence(seed)):
            with_mltrace, without = a.run(step), b.run(step)
            where = f"seed {seed}, step {n}: {step.raw[0][:200]!r}"
            assert [r.without(*OWN_HEADERS) for r in with_mltrace] == [r.without(*OWN_HEADERS) for r in without], where
            for r, traceparent in zip(with_mltrace, step.traceparent, strict=False):
                trace_id = r.header(b"x-trace-id")
                assert trace_id is not None, where
                assert r.header(b"traceresponse", ).startswith(b"00-" + trace_id + b"-"), where  # type: ignore[union-attr]
                trace_ids.append(trace_id.decode())
                if traceparent is not None:
                    given[trace_id.decode()] = traceparent
    finally:
        a.close()
        b.close()
    assert a.connections == b.connections
    _websockets(seed, traced, plain)

    assert len(set(trace_ids)) == len(trace_ids), f"seed {seed}: requests shared a trace"
    assert all(trace_id == parent for trace_id, parent in given.items()), f"seed {seed}: traceparent not continued"
    by_trace = spans_of(traced.db, trace_ids)  # type: ignore[attr-defined]
    for trace_id in trace_ids:
        servers = [s for s in by_trace[trace_id] if s["kind"] == "SERVER"]
        assert len(servers) == 1, (seed, trace_id, [(s["name"], s["kind"]) for s in by_trace[trace_id]])
        port = servers[0]["attributes"].get("server.port")
        assert port is None or 0 <= port <= 65535, (seed, servers[0]["attributes"])
    with Path(traced.log).open("rb") as f:
        f.seek(log_start)
        log = f.read().decode(errors="replace")
    assert "Traceback" not in log, log[-3000:]
