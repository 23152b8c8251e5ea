"""The differential serving test for sampled-out requests (issue 13's fast path): the apps of
tests/serving/serving_app.py served by real uvicorn with mltrace configured to sample every new
trace out (``MLTRACE_SAMPLE_RATIO=0``) and without mltrace answer byte for byte alike except
mltrace's own headers, over the same seeded keep-alive sequences as test_differential.py
(bodies up to 1 MiB, chunked uploads, pipelining, hostile headers, streaming, mounts). Requests
with an incoming sampled ``traceparent`` are still recorded (parent-based), so both paths of the
middleware run in each sequence; every response still carries a trace id, sampled out or not."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from _servers import ServerProcess, free_port, server_env
from _serving import HERE, serve
from test_differential import OWN_HEADERS, Client, sequence


@pytest.fixture(scope="module", params=["h11", "httptools"])
def servers(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[
    tuple[ServerProcess, ServerProcess]
]:
    tmp = tmp_path_factory.mktemp(f"sampled-out-{request.param}")
    port = free_port()
    env = {"SERVING_TRACED": "1", "SERVING_DB": str(tmp / "out.db"), "PYTHONHASHSEED": "0",
           "MLTRACE_SAMPLE_RATIO": "0"}
    argv = [sys.executable, "-m", "uvicorn", "serving_app:app", "--host", "127.0.0.1", "--port", str(port),
            "--http", request.param, "--lifespan", "off", "--no-access-log", "--ws", "auto"]
    traced = ServerProcess(argv, port=port, env=server_env(env, [HERE]), log=tmp / "out.log",
                           ready_path="/items/ready")
    with traced, serve(request.param, tmp, traced=False, name="plain") as plain:
        yield traced, plain


@pytest.mark.parametrize("seed", [7, 8])
def test_sampled_out_and_untraced_answer_alike(servers: tuple[ServerProcess, ServerProcess], seed: int) -> None:
    traced, plain = servers
    a, b = Client(traced), Client(plain)
    unsampled = 0
    try:
        for n, step in enumerate(sequence(seed + 500)):
            with_mltrace, without = a.run(step), b.run(step)
            where = f"seed {seed}, step {n}: {step.raw[0][:200]!r}"
            assert [r.without(*OWN_HEADERS) for r in with_mltrace] == [r.without(*OWN_HEADERS) for r in without], where
            for r in with_mltrace:
                trace_id, response = r.header(b"x-trace-id"), r.header(b"traceresponse")
                assert trace_id is not None and response is not None, where
                assert response.startswith(b"00-" + trace_id + b"-"), where
                unsampled += int(response[-2:], 16) & 1 == 0
    finally:
        a.close()
        b.close()
    assert a.connections == b.connections
    assert unsampled >= 20  # most requests took the sampled-out path
