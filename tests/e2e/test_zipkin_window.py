"""`slow` over a real Zipkin's whole window (issue 14): the window is read in slices walked back
from its end, a full slice split, and what the slices find is exactly what one large request finds;
above ``--scan``, every trace is counted and ranked and a uniform sample across the window is
analysed, said so (``sampled``, ``sample_weight``), and still names the planted cause."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

import pytest
from _cli_e2e import require, seed, wait_until_complete

from mltrace.query import zipkin
from mltrace.query.zipkin import ZipkinSource

pytestmark = pytest.mark.e2e

BASE = os.environ.get("MLTRACE_E2E_ZIPKIN_URL", "http://127.0.0.1:9411")
URL = "zipkin://" + BASE.split("://", 1)[1]


@pytest.fixture(scope="module")
def seeded() -> tuple[str, dict[str, Any]]:
    require(f"{BASE}/health", "Zipkin")
    service, sent = seed("zipkin", f"{BASE}/api/v2/spans", "mltrace-e2e-zwin")
    wait_until_complete(URL, service, sent).close()
    return service, sent


def test_sliced_read_finds_what_one_request_finds(
    seeded: tuple[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, sent = seeded
    whole = ZipkinSource(BASE, page_size=1000)
    one = {t.trace_id: t for t in whole.find_traces(service, 900.0, 1000)}
    assert whole.api.requests == 2  # the service check, then the window in one request
    assert set(one) == set(sent["trace_ids"])
    monkeypatch.setattr(zipkin, "_SLICE", 12)  # many slices; some come back full and are split
    sliced = ZipkinSource(BASE)
    seen: list[int] = []
    window = sliced.trace_window(service, 900.0, progress=seen.append)
    assert sliced.api.requests > 10 and seen == sorted(seen) and seen[-1] == len(one)
    assert sorted(window.trace_ids) == sorted(one) and len(window) == len(one)
    by_id = dict(zip(window.trace_ids, window.duration_ms.tolist(), strict=True))
    assert by_id == {tid: t.duration_ms for tid, t in one.items()}
    loaded = sliced.load(window.trace_ids)
    assert [t.trace_id for t in loaded] == window.trace_ids
    assert all(len(t.spans) == len(one[t.trace_id].spans) for t in loaded)
    whole.close()
    sliced.close()


def _cli_slow(service: str, *extra: str) -> dict[str, Any]:
    done = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "mltrace"), "slow", "--source", URL,
         "--service", service, "--since", "15m", "--json", *extra],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def test_slow_over_zipkin_covers_the_whole_window(seeded: tuple[str, dict[str, Any]]) -> None:
    """`mltrace slow --source zipkin://… --scan N` as a user runs it, over a window of more than N
    traces: all of them counted and ranked, a uniform sample of N analysed, and the planted cause
    (inference slowed by large inputs) found from the sample."""
    service, sent = seeded
    n = len(sent["trace_ids"])
    full = _cli_slow(service)
    assert (full["scanned"], full["analysed"], full["sampled"], full["sample_weight"]) == (n, n, False, 1.0)
    scan = n * 2 // 3
    part = _cli_slow(service, "--scan", str(scan))
    assert (part["scanned"], part["analysed"], part["sampled"]) == (n, scan, True)
    assert part["sample_weight"] == round(n / scan, 3)
    assert ("inference", "ml.input.size") in [(c["stage"], c["attribute"]) for c in part["causes"]]
    # Counts, threshold and the slowest traces from the whole window, not from the sample.
    assert part["slow_count"] == full["slow_count"] and part["median_ms"] == full["median_ms"]
    assert [t["trace_id"] for t in part["traces"]] == [t["trace_id"] for t in full["traces"]]
    # Said where the answer is shown, too (not only in --json).
    shown = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "mltrace"), "slow", "--source", URL,
         "--service", service, "--since", "15m", "--scan", str(scan)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert "uniform sample" in shown.stdout
