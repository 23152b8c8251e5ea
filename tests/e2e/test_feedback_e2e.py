"""mltrace.feedback spans and ``accuracy`` against real Jaeger (OTLP, links kept) and Zipkin (no links)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from _cli_e2e import require

from mltrace.analysis import accuracy
from mltrace.query import open_source

pytestmark = pytest.mark.e2e

JAEGER_QUERY = os.environ.get("MLTRACE_E2E_JAEGER_QUERY_URL", "http://127.0.0.1:16686")
OTLP = os.environ.get("MLTRACE_E2E_OTLP_ENDPOINT", "http://127.0.0.1:4317")
ZIPKIN = os.environ.get("MLTRACE_E2E_ZIPKIN_URL", "http://127.0.0.1:9411")
TESTS = Path(__file__).resolve().parent.parent / "spans"  # test_feedback.py

# 20 predictions (versions 1 and 2 alternating, x = 0.025 ... 0.975); feedback for each: through a
# /feedback request with the traceresponse header for even i, from outside any request with the bare
# X-Trace-Id for odd i. Truth: churn when x > 0.4; version 1 predicts churn at x > 0.5, version 2 at 0.3.
SEED = """
import json, sys
sys.path.insert(0, {tests!r})
from starlette.testclient import TestClient
import mltrace
from test_feedback import _app
handle = mltrace.configure(service_name={service!r}, exporter={exporter!r}, endpoint={endpoint!r})
client = TestClient(_app())
for i in range(20):
    x = (i + 0.5) / 20
    response = client.post("/predict", json={{"version": str(1 + i % 2), "x": x}})
    truth = "churn" if x > 0.4 else "stay"
    if i % 2 == 0:
        client.post("/feedback", json={{"trace": response.headers["traceresponse"], "label": truth}})
    else:
        mltrace.feedback(response.headers["x-trace-id"], truth)
print(json.dumps({{"flushed": handle.shutdown(timeout_s=30)}}))
"""


def _seed(exporter: str, endpoint: str) -> str:
    service = f"mltrace-e2e-feedback-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MLTRACE_"))}
    script = textwrap.dedent(SEED.format(tests=str(TESTS), service=service, exporter=exporter, endpoint=endpoint))
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, env=env,
                          check=False)
    assert done.returncode == 0 and json.loads(done.stdout.splitlines()[-1])["flushed"], done.stderr[-3000:]
    return service


def _wait_for_accuracy(url: str, service: str, timeout_s: float = 90.0) -> dict[str, Any]:
    """Poll (bounded) until all 20 feedback spans are joined: backends ingest asynchronously."""
    source = open_source(url)
    deadline = time.monotonic() + timeout_s
    data: dict[str, Any] = {}
    try:
        while time.monotonic() < deadline:
            try:
                data = accuracy(source, service=service, since="15m")
            except LookupError:  # the service appears once its first spans are stored
                data = {}
            if data.get("matched") == 20:
                return data
            time.sleep(1.0)
    finally:
        source.close()
    pytest.fail(f"feedback of {service} not joined in {url} after {timeout_s} s: {data.get('matched')}/20")


def _check(data: dict[str, Any]) -> None:
    groups = {g["value"]: g for g in data["groups"]}
    assert data["metric"] == "accuracy" and data["unmatched"]["count"] == 0
    # version 1 (even i) misses only x = 0.425, version 2 (odd i) only x = 0.375
    assert (groups["1"]["count"], groups["1"]["correct"]) == (10, 9)
    assert (groups["2"]["count"], groups["2"]["correct"]) == (10, 9)


def test_accuracy_over_jaeger() -> None:
    """Over Jaeger, feedback spans are found by tag and joined through their links and ml.feedback.trace_id."""
    require(f"{JAEGER_QUERY}/api/services", "Jaeger's query API")
    service = _seed("jaeger", OTLP)
    _check(_wait_for_accuracy("jaeger://" + JAEGER_QUERY.split("://", 1)[1], service))


def test_accuracy_over_zipkin() -> None:
    """Zipkin keeps no links: ml.feedback.trace_id (and ml.feedback.span_id) alone carry the join."""
    require(f"{ZIPKIN}/health", "Zipkin")
    service = _seed("zipkin", f"{ZIPKIN}/api/v2/spans")
    _check(_wait_for_accuracy("zipkin://" + ZIPKIN.split("://", 1)[1], service))
