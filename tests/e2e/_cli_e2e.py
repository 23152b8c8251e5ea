"""Shared by the CLI e2e tests: seed known traffic into a real backend and wait until it is readable.

With ``MLTRACE_E2E=1`` (scripts/test.sh, CI) a backend that is down fails the test loudly;
otherwise the test is skipped with a note on how to start the backends.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from mltrace.query import TraceSource, UnknownService, open_source

TRAFFIC = Path(__file__).resolve().parent.parent / "_cli_traffic.py"
STAGES = {"feature_lookup", "preprocess", "inference", "postprocess"}


def require(url: str, name: str) -> None:
    """Fail (MLTRACE_E2E=1) or skip when ``url`` does not answer."""
    try:
        httpx.get(url, timeout=3.0).raise_for_status()
    except httpx.HTTPError as exc:
        message = f"{name} is not reachable at {url} ({exc}); start it with scripts/backends.sh up"
        if os.environ.get("MLTRACE_E2E") == "1":
            pytest.fail(message)
        pytest.skip(message + " (set MLTRACE_E2E=1 to make this a failure)")


def seed(exporter: str, endpoint: str, prefix: str) -> tuple[str, dict[str, Any]]:
    """Run the traced toy app in a subprocess exporting to the backend; returns (service, what was sent)."""
    service = f"{prefix}-{uuid.uuid4().hex[:8]}"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MLTRACE_"))}
    done = subprocess.run(
        [sys.executable, str(TRAFFIC), "--exporter", exporter, "--endpoint", endpoint, "--service", service],
        capture_output=True, text=True, timeout=180, env=env, check=False,
    )
    assert done.returncode == 0, f"seeding failed:\n{done.stderr[-3000:]}"
    sent: dict[str, Any] = json.loads(done.stdout)
    return service, sent


def wait_until_complete(url: str, service: str, sent: dict[str, Any], timeout_s: float = 90.0) -> TraceSource:
    """Poll the backend (bounded) until every sent trace is there with its server span and four stages."""
    source = open_source(url)
    want = set(sent["trace_ids"])
    deadline = time.monotonic() + timeout_s
    complete: set[str] = set()
    while time.monotonic() < deadline:
        try:
            traces = source.find_traces(service, since=900, limit=2 * len(want))
        except UnknownService:
            traces = []
        complete = {
            t.trace_id for t in traces
            if t.trace_id in want and {s.stage for s in t.spans} >= STAGES and t.root.kind == "SERVER"
        }
        if complete == want:
            return source
        time.sleep(1.0)
    source.close()
    pytest.fail(f"only {len(complete)}/{len(want)} traces of {service} were complete in {url} after {timeout_s} s")
