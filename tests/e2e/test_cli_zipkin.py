"""mltrace slow/stats/show/lineage against a real Zipkin server (v2 JSON in, v2 API out)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from _cli_e2e import require, seed, wait_until_complete

from mltrace.analysis import lineage, predictions_for_input, show_trace, slow_traces, trace_stats
from mltrace.cli import main
from mltrace.query import TraceNotFound, TraceSource, UnknownService

pytestmark = pytest.mark.e2e

BASE = os.environ.get("MLTRACE_E2E_ZIPKIN_URL", "http://127.0.0.1:9411")
URL = "zipkin://" + BASE.split("://", 1)[1]


@pytest.fixture(scope="module")
def zipkin() -> Iterator[tuple[TraceSource, str, dict[str, Any]]]:
    require(f"{BASE}/health", "Zipkin")
    service, sent = seed("zipkin", f"{BASE}/api/v2/spans", "mltrace-e2e-cli")
    source = wait_until_complete(URL, service, sent)
    yield source, service, sent
    source.close()


def test_slow_names_planted_causes_over_zipkin(zipkin: tuple[TraceSource, str, dict[str, Any]]) -> None:
    """Over Zipkin's API (string tags), slow still names both planted causes."""
    source, service, sent = zipkin
    report = slow_traces(source, service=service, since="15m")
    assert report["scanned"] == len(sent["trace_ids"])
    pairs = [(c["stage"], c["attribute"]) for c in report["causes"]]
    assert pairs[:2] == [("inference", "ml.input.size"), ("feature_lookup", "ml.feature_store.misses")]


def test_cli_slow_json_over_zipkin(
    capsys: pytest.CaptureFixture[str], zipkin: tuple[TraceSource, str, dict[str, Any]]
) -> None:
    """`mltrace slow --source zipkin://... --json` keeps the JSON contract."""
    _, service, _ = zipkin
    assert main(["slow", "--source", URL, "--service", service, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["traces"][0]) >= {"trace_id", "duration_ms", "stages", "dominant_stage"}
    assert data["causes"][0]["stage"] == "inference"


def test_show_stats_and_lineage_over_zipkin(zipkin: tuple[TraceSource, str, dict[str, Any]]) -> None:
    """Typed attributes survive Zipkin's strings: misses is an int, the model version a string."""
    source, service, sent = zipkin
    tree = show_trace(source, sent["large"][0])
    assert tree["dominant_stage"] == "inference"
    stats = trace_stats(source, service=service, since="15m")
    assert stats["count"] == len(sent["trace_ids"])
    record = lineage(source, sent["cold"][0])
    assert record["features"][0]["misses"] == 1 and record["model"]["version"] == "3"
    fingerprint = lineage(source, sent["repeated"][0])["fingerprint"]
    same = predictions_for_input(source, fingerprint)
    # the same input may have been predicted by earlier runs' services too
    assert {p["trace_id"] for p in same["predictions"] if p["service"] == service} == set(sent["repeated"])


def test_unknown_trace_and_service_over_zipkin(zipkin: tuple[TraceSource, str, dict[str, Any]]) -> None:
    """Zipkin's 404 is TraceNotFound; a service it never saw is UnknownService."""
    source, _, _ = zipkin
    with pytest.raises(TraceNotFound):
        source.get_trace("0123456789abcdef0123456789abcdef")
    with pytest.raises(UnknownService):
        source.find_traces("mltrace-e2e-no-such-service")
