"""mltrace slow/stats/show/lineage against a real Jaeger (OTLP in, HTTP query API out)."""

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

QUERY = os.environ.get("MLTRACE_E2E_JAEGER_QUERY_URL", "http://127.0.0.1:16686")
OTLP = os.environ.get("MLTRACE_E2E_OTLP_ENDPOINT", "http://127.0.0.1:4317")
URL = "jaeger://" + QUERY.split("://", 1)[1]


@pytest.fixture(scope="module")
def jaeger() -> Iterator[tuple[TraceSource, str, dict[str, Any]]]:
    require(f"{QUERY}/api/services", "Jaeger's query API")
    service, sent = seed("jaeger", OTLP, "mltrace-e2e-cli")
    source = wait_until_complete(URL, service, sent)
    yield source, service, sent
    source.close()


def test_slow_names_planted_causes_over_jaeger(jaeger: tuple[TraceSource, str, dict[str, Any]]) -> None:
    """Over Jaeger's API, slow names inference/ml.input.size and feature_lookup/ml.feature_store.misses."""
    source, service, sent = jaeger
    report = slow_traces(source, service=service, since="15m")
    assert report["scanned"] == len(sent["trace_ids"])
    pairs = [(c["stage"], c["attribute"]) for c in report["causes"]]
    assert pairs[:2] == [("inference", "ml.input.size"), ("feature_lookup", "ml.feature_store.misses")]
    listed = [t["trace_id"] for t in report["traces"]]
    assert sum(tid in sent["large"] for tid in listed) >= len(listed) // 2  # (the first request may be cold)


def test_cli_slow_json_over_jaeger(
    capsys: pytest.CaptureFixture[str], jaeger: tuple[TraceSource, str, dict[str, Any]]
) -> None:
    """`mltrace slow --source jaeger://... --json` keeps the JSON contract."""
    _, service, _ = jaeger
    assert main(["slow", "--source", URL, "--service", service, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert set(data["traces"][0]) >= {"trace_id", "duration_ms", "stages", "dominant_stage"}
    assert {"stage", "attribute", "reason"} <= set(data["causes"][0])


def test_show_stats_and_lineage_over_jaeger(jaeger: tuple[TraceSource, str, dict[str, Any]]) -> None:
    """show gives the span tree, stats the percentiles, lineage the features and the same-input predictions."""
    source, service, sent = jaeger
    tree = show_trace(source, sent["large"][0])
    assert tree["dominant_stage"] == "inference" and len(tree["spans"]) >= 5
    stats = trace_stats(source, service=service, since="15m", by="ml.feature_store.misses")
    assert stats["count"] == len(sent["trace_ids"])
    record = lineage(source, sent["cold"][0])
    assert record["features"][0]["misses"] == 1 and record["model"]["version"] == "3"
    same = predictions_for_input(source, lineage(source, sent["repeated"][0])["fingerprint"])
    # the same input may have been predicted by earlier runs' services too
    assert {p["trace_id"] for p in same["predictions"] if p["service"] == service} == set(sent["repeated"])


def test_unknown_trace_and_service_over_jaeger(jaeger: tuple[TraceSource, str, dict[str, Any]]) -> None:
    """Jaeger's 404 is TraceNotFound; a service Jaeger never saw is UnknownService."""
    source, service, _ = jaeger
    with pytest.raises(TraceNotFound):
        source.get_trace("0123456789abcdef0123456789abcdef")
    with pytest.raises(UnknownService, match=service):
        source.find_traces("mltrace-e2e-no-such-service")
