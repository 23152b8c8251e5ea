"""Soak: tracing on at the highest rate this machine sustains, against the real Jaeger.

The server (tests/e2e/_soak_app.py, uvicorn, 5 spans a request) exports OTLP/gRPC to Jaeger from
scripts/backends.sh; a closed-loop client (tests/e2e/_soak_load.py) keeps 16 requests in flight
for ``MLTRACE_SOAK_SECONDS`` (20 in CI; 120 by hand for docs/reliability.md); with
``MLTRACE_SOAK_TAIL_RATIO`` the server tail-samples and "made" means kept. Then: no request
failed, the server's memory did not grow past the bound, and every span the server made is
either in Jaeger (counted through its query API) or counted as dropped.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from _e2e_backends import Jaeger
from _servers import free_port

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
SECONDS = float(os.environ.get("MLTRACE_SOAK_SECONDS", "20"))
CONCURRENCY = int(os.environ.get("MLTRACE_SOAK_CONCURRENCY", "16"))
TAIL_RATIO = os.environ.get("MLTRACE_SOAK_TAIL_RATIO")  # set: tail sampling on; "kept" spans are then fewer
RSS_GROWTH_BOUND = 64 * 1024 * 1024  # after warm-up (the first quarter), the server may grow this much at most
JAEGER_MAX_TRACES = 100_000  # scripts/jaeger-config.yaml: memstore keeps this many traces, all services together


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


class Sampler(threading.Thread):
    """Reads the server's RSS once a second while the load runs."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.samples: list[tuple[float, int]] = []
        self.stop = threading.Event()

    def run(self) -> None:
        start = time.monotonic()
        while not self.stop.wait(1.0):
            try:
                self.samples.append((time.monotonic() - start, _rss(self.pid)))
            except OSError:
                return


def jaeger_spans(query: str, service: str, start_us: int, end_us: int, window_s: int = 2) -> set[tuple[str, str]]:
    """Every (trace id, span id) Jaeger holds for ``service``, searched window by window."""
    found: set[tuple[str, str]] = set()
    with httpx.Client(timeout=60) as client:
        for lo in range(start_us, end_us, window_s * 1_000_000):
            hi = min(end_us, lo + window_s * 1_000_000)
            r = client.get(f"{query}/api/traces", params={"service": service, "start": lo, "end": hi, "limit": 100_000})
            r.raise_for_status()
            for t in r.json().get("data") or ():
                found.update((s["traceID"], s["spanID"]) for s in t["spans"])
    return found


def test_soak_every_span_arrives_or_is_counted(jaeger_server: Jaeger, tmp_path: Path) -> None:
    """Under sustained load: no failed request, bounded memory, Jaeger spans + dropped = spans made."""
    otlp, query = jaeger_server.otlp_grpc, jaeger_server.query_url
    service = f"mltrace-soak-{uuid.uuid4().hex[:8]}"
    port = free_port()
    stats_file = tmp_path / "stats.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MLTRACE_"))}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    start_us = int(time.time() * 1e6) - 1_000_000
    log = (tmp_path / "server.log").open("w")
    cmd = [sys.executable, str(HERE / "_soak_app.py"), "--port", str(port), "--service", service]
    cmd += ["--endpoint", otlp, "--stats", str(stats_file)]
    cmd += ["--tail-ratio", TAIL_RATIO] if TAIL_RATIO else []
    server = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/rss", timeout=1).raise_for_status()
                break
            except httpx.HTTPError:
                assert server.poll() is None and time.monotonic() < deadline, "soak server did not start"
                time.sleep(0.2)
        sampler = Sampler(server.pid)
        sampler.start()
        load = subprocess.run(
            [sys.executable, str(HERE / "_soak_load.py"), "--url", f"http://127.0.0.1:{port}/predict",
             "--seconds", str(SECONDS), "--concurrency", str(CONCURRENCY)],
            env=env, capture_output=True, text=True, timeout=SECONDS + 120, check=True,
        )
        sampler.stop.set()
        sampler.join()
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=120)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        log.close()
    end_us = int(time.time() * 1e6) + 1_000_000
    client = json.loads(load.stdout.strip().splitlines()[-1])
    assert stats_file.exists(), (tmp_path / "server.log").read_text()[-3000:]
    out = json.loads(stats_file.read_text())
    stats = out["stats"]
    made = stats["spans_queued"] + stats["spans_dropped_queue_full"]
    assert client["sent"] < JAEGER_MAX_TRACES, "more traces than Jaeger's memory store keeps; shorten the run"

    received: set[tuple[str, str]] = set()
    deadline = time.monotonic() + 60  # Jaeger's own batch processor may still be writing
    while len(received) < stats["spans_exported"] and time.monotonic() < deadline:
        received = jaeger_spans(query, service, start_us, end_us)
        time.sleep(1)

    rss = [r for _, r in sampler.samples]
    warm = rss[len(rss) // 4] if rss else 0
    growth = max(rss[len(rss) // 4 :], default=0) - warm
    report: dict[str, Any] = {
        "seconds": client["seconds"],
        "concurrency": CONCURRENCY,
        "requests": client["sent"],
        "rate_per_s": round(client["sent"] / client["seconds"], 1),
        "results": client["results"],
        "p50_ms": client["p50_ms"],
        "p99_ms": client["p99_ms"],
        "tail_ratio": TAIL_RATIO,
        "spans_sampled_out": stats["spans_sampled_out"],
        "spans_made": made,
        "spans_exported": stats["spans_exported"],
        "spans_in_jaeger": len(received),
        "spans_dropped": stats["spans_dropped_total"],
        "rss_after_warmup_mib": round(warm / 2**20, 1),
        "rss_growth_mib": round(growth / 2**20, 1),
        "peak_rss_mib": round(out["peak_rss"] / 2**20, 1),
        "shutdown_s": round(out["shutdown_s"], 3),
    }
    print(json.dumps(report))
    if os.environ.get("MLTRACE_SOAK_REPORT"):
        Path(os.environ["MLTRACE_SOAK_REPORT"]).write_text(json.dumps(report, indent=2) + "\n")

    assert client["sent"] > 0 and client["results"] == {"200": client["sent"]}
    assert growth < RSS_GROWTH_BOUND, report
    assert out["shutdown_ok"], report
    assert stats["spans_exported"] + stats["spans_export_failed"] == stats["spans_queued"], report
    assert len(received) + stats["spans_dropped_total"] == made, report
    if not TAIL_RATIO:
        assert made >= 5 * client["sent"], report  # five spans a request (plus the /rss probe's)
    else:
        assert made + stats["spans_sampled_out"] >= 5 * client["sent"], report
