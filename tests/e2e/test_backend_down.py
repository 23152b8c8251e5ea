"""The real Jaeger stopped under a serving example: requests unaffected, lost spans counted, recovery.

examples/serve_sklearn.py exports OTLP/gRPC to Jaeger; ``scripts/backends.sh down jaeger`` stops
it. Every request still answers 200, the server logs mltrace's "spans lost" warning with its
running totals (the drop counters, rate-limited to one line per 10 s), and once
``scripts/backends.sh up jaeger`` has it back, new requests' traces arrive again. Jaeger is
always restarted, whatever fails. Latency with Jaeger down is measured in
benchmarks/bench_backend_down.py, not asserted here.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import httpx
import pytest
from _e2e_backends import App, Jaeger, backends_sh, traced_call
from _e2e_example import BODY, complete
from _servers import ServerProcess

pytestmark = pytest.mark.e2e

REQUESTS_WHILE_DOWN = 30
LOST = re.compile(r"mltrace: (\d+) spans lost \((.*?)\); totals: dropped_queue_full=(\d+) export_failed=(\d+)")


def wait_for(check: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.25)
    return True


def test_jaeger_down_requests_unaffected_drops_counted_then_traces_resume(
    jaeger_server: Jaeger, serve: Callable[..., list[ServerProcess]]
) -> None:
    """With Jaeger stopped, every request answers 200 and the lost spans are logged; after restart traces arrive."""
    env = {
        "MLTRACE_EXPORTER": "jaeger",
        "OTEL_EXPORTER_OTLP_ENDPOINT": jaeger_server.otlp_grpc,
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2",  # give up on a batch after 2 s of retries (default 10)
    }
    [server] = serve(App("examples/serve_sklearn.py", env))
    with httpx.Client(base_url=server.url, timeout=10) as client:
        response, spans = traced_call(lambda: client.post("/predict", json=BODY), jaeger_server, complete)
        assert response.status_code == 200 and complete(spans), "traces do not reach Jaeger even before the stop"

        statuses: list[int] = []
        try:
            stopped = backends_sh("down", "jaeger")
            assert stopped.returncode == 0, stopped.stderr
            assert wait_for(lambda: not jaeger_server.healthy(), 10), (
                "Jaeger still answers after `scripts/backends.sh down jaeger`: it was not started by this checkout"
            )
            statuses = [client.post("/predict", json=BODY).status_code for _ in range(REQUESTS_WHILE_DOWN)]
            assert wait_for(lambda: LOST.search(server.log.read_text(errors="replace")) is not None, 30), (
                server.output()
            )
        finally:
            started = backends_sh("up", "jaeger")
        assert started.returncode == 0, f"Jaeger did not come back: {started.stderr}"

        assert statuses == [200] * REQUESTS_WHILE_DOWN
        lost = LOST.search(server.log.read_text(errors="replace"))
        assert lost is not None
        assert int(lost[1]) > 0 and "jaeger" in lost[2] and int(lost[4]) >= int(lost[1])

        # Recovery: new requests' traces arrive (the exporter reconnects by itself; bounded wait).
        response, spans = traced_call(
            lambda: client.post("/predict", json=BODY), jaeger_server, complete, attempts=6, timeout=10
        )
        assert response.status_code == 200
        assert complete(spans), f"no trace reached the restarted Jaeger:\n{server.output()}"
