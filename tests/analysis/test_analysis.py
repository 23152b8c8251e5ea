"""Analysis over traces: stage breakdown, slow-trace causes, percentiles, lineage."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _cli_traffic import COLD_USERS, Sent, seed_local

from mltrace.analysis import (
    NETWORK,
    UNACCOUNTED,
    UnknownStage,
    analyze_slow,
    lineage,
    predictions_for_input,
    slow_traces,
    stage_breakdown,
    summarize_traces,
    trace_stats,
)
from mltrace.export import LocalStore
from mltrace.query import Span, Trace, TraceSource, open_source

SERVICE = "toy-server"


def span(
    span_id: str, start: int, duration: int, parent: str | None = None, *, stage: str | None = None,
    kind: str = "INTERNAL", service: str = "svc", attrs: dict[str, Any] | None = None, trace_id: str = "a" * 32,
) -> Span:
    attributes = dict(attrs or {})
    if stage is not None:
        attributes["ml.stage"] = stage
    return Span(trace_id, span_id, parent, span_id, service, kind, start, duration, attributes)


def trace(*spans: Span) -> Trace:
    return Trace.of(spans[0].trace_id, list(spans))


# -- breakdown --------------------------------------------------------------------------------
def test_breakdown_adds_up_to_root_duration() -> None:
    """Self time per stage plus unaccounted equals the root span's duration."""
    t = trace(
        span("root", 0, 10_000, kind="SERVER"),
        span("pre", 500, 1_000, "root", stage="preprocess"),
        span("inf", 2_000, 6_000, "root", stage="inference"),
        span("post", 8_500, 1_000, "root", stage="postprocess"),
    )
    stages = stage_breakdown(t)
    assert stages == {"preprocess": 1.0, "inference": 6.0, "postprocess": 1.0, UNACCOUNTED: 2.0}
    assert sum(stages.values()) == pytest.approx(t.duration_ms)


def test_descendants_without_a_stage_count_toward_their_stage() -> None:
    """A span under a stage span (e.g. a model's own layers) counts toward that stage."""
    t = trace(
        span("root", 0, 10_000, kind="SERVER"),
        span("inf", 0, 9_000, "root", stage="inference"),
        span("layer", 1_000, 5_000, "inf"),
        span("redis", 6_000, 2_000, "inf", kind="CLIENT", attrs={"db.system": "redis"}),
    )
    assert stage_breakdown(t) == {"inference": 9.0, UNACCOUNTED: 1.0}


def test_concurrent_children_are_not_counted_twice() -> None:
    """Overlapping children cover their union of time, so the parent's self time is not negative."""
    t = trace(
        span("root", 0, 10_000, kind="SERVER"),
        span("a", 1_000, 4_000, "root", stage="feature_lookup"),
        span("b", 2_000, 4_000, "root", stage="feature_lookup"),
    )
    stages = stage_breakdown(t)
    assert stages["feature_lookup"] == 8.0
    assert stages[UNACCOUNTED] == 5.0  # 10 ms minus the union 1..6 ms


def test_client_span_to_another_service_is_network() -> None:
    """Client duration minus the remote server span is network; the remote stages keep their names."""
    t = trace(
        span("root", 0, 20_000, kind="SERVER", service="gateway"),
        span("call", 1_000, 15_000, "root", kind="CLIENT", service="gateway"),
        span("remote", 3_000, 10_000, "call", kind="SERVER", service="model"),
        span("inf", 3_500, 9_000, "remote", stage="inference", service="model"),
    )
    stages = stage_breakdown(t)
    assert stages[NETWORK] == 5.0
    assert stages["inference"] == 9.0
    assert stages[UNACCOUNTED] == 6.0  # 5 ms at the gateway, 1 ms in the remote server span
    assert sum(stages.values()) == pytest.approx(20.0)


def test_remote_server_span_resets_the_callers_stage() -> None:
    """A stage that calls another service does not claim that service's unstaged time."""
    t = trace(
        span("root", 0, 20_000, kind="SERVER", service="a"),
        span("fl", 0, 18_000, "root", stage="feature_lookup", service="a"),
        span("call", 1_000, 16_000, "fl", kind="CLIENT", service="a"),
        span("remote", 2_000, 14_000, "call", kind="SERVER", service="b"),
    )
    stages = stage_breakdown(t)
    assert stages[NETWORK] == 2.0
    assert stages["feature_lookup"] == 2.0
    assert stages[UNACCOUNTED] == 16.0


def test_orphan_spans_still_count() -> None:
    """A span whose parent never arrived is treated as a root of its own."""
    t = trace(span("root", 0, 5_000, kind="SERVER"), span("lost", 1_000, 2_000, "missing", stage="inference"))
    assert stage_breakdown(t) == {"inference": 2.0, UNACCOUNTED: 5.0}
    assert t.duration_ms == 5.0


# -- slow: planted causes on synthetic populations ---------------------------------------------
def population(n: int = 400, seed: int = 1) -> list[Trace]:
    """Inference is slow for large inputs, feature lookup for cache misses, version 2 adds 3 ms."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        tid = f"{i:032x}"
        large = rng.random() < 0.1
        miss = rng.random() < 0.15
        version = rng.choice(("1", "2"))
        fl = (12_000 if miss else 400) + rng.randrange(200)
        inf = (40_000 if large else 2_000) + (3_000 if version == "2" else 0) + rng.randrange(800)
        attrs_fl = {"ml.feature_store.misses": int(miss), "app.noise": rng.random()}
        attrs_inf = {"ml.input.size": rng.choice((1024, 2048)) if large else rng.choice((16, 32, 64)),
                     "ml.model.version": version, "ml.output.confidence": rng.random()}
        start = i * 100_000
        out.append(trace(
            span("r", start, fl + inf + 600, kind="SERVER", trace_id=tid),
            span("f", start + 100, fl, "r", stage="feature_lookup", attrs=attrs_fl, trace_id=tid),
            span("i", start + 200 + fl, inf, "r", stage="inference", attrs=attrs_inf, trace_id=tid),
        ))
    return out


def test_slow_names_planted_stage_and_attribute() -> None:
    """The strongest cause is the planted one: inference, ml.input.size >= threshold."""
    report = analyze_slow(population(), limit=5)
    top = report["causes"][0]
    assert (top["stage"], top["attribute"], top["condition"]) == ("inference", "ml.input.size", ">= 1024")
    assert "inference is" in top["reason"] and "ml.input.size >= 1024" in top["reason"]
    assert top["other_count"] == 0  # every large input is among the slow traces
    assert report["dominant_stage"] == "inference"
    assert len(report["traces"]) == 5
    assert all(t["dominant_stage"] == "inference" for t in report["traces"])


def test_second_cause_in_another_stage_is_found() -> None:
    """Cache misses are named for feature_lookup even though large inputs dominate the slowest traces."""
    causes = {(c["stage"], c["attribute"]) for c in analyze_slow(population())["causes"]}
    assert ("feature_lookup", "ml.feature_store.misses") in causes


def test_categorical_cause_with_stage_filter() -> None:
    """With the large inputs set aside, model version 2 explains the rest of inference's tail."""
    report = analyze_slow(population(1000), stage="inference")
    assert report["metric"] == "inference"
    found = {(c["attribute"], c["condition"]) for c in report["causes"]}
    assert ("ml.model.version", "= 2") in found
    version = next(c for c in report["causes"] if c["attribute"] == "ml.model.version")
    assert version["given"] == ["ml.input.size >= 1024"]


def test_no_cause_is_invented_from_noise() -> None:
    """When latency does not depend on any attribute, no cause is reported."""
    rng = random.Random(3)
    traces = []
    for i in range(500):
        tid = f"{i:032x}"
        attrs = {"ml.input.size": rng.choice((16, 32, 64, 1024)), "app.region": rng.choice("abcd"),
                 "ml.drift.score": rng.random(), "app.flag": rng.random() < 0.5}
        d = 2_000 + int(rng.expovariate(1 / 500))
        traces.append(trace(span("r", i * 10_000, d + 100, kind="SERVER", trace_id=tid),
                            span("i", i * 10_000 + 50, d, "r", stage="inference", attrs=attrs, trace_id=tid)))
    assert analyze_slow(traces)["causes"] == []


def test_same_traces_conditions_are_folded() -> None:
    """Two attributes that single out the same traces make one cause listing the other under also."""
    traces = population()
    for t in traces:
        for s in t.spans:
            if "ml.feature_store.misses" in s.attributes:
                s.attributes["ml.feature_store.hits"] = 1 - s.attributes["ml.feature_store.misses"]  # type: ignore[index]
    cause = next(c for c in analyze_slow(traces)["causes"] if c["stage"] == "feature_lookup")
    assert cause["attribute"] == "ml.feature_store.misses"
    assert cause["also"] == [{"attribute": "ml.feature_store.hits", "condition": "< 1"}]


def test_unknown_stage_is_a_clear_error() -> None:
    """--stage with a stage no trace has names the stages that exist."""
    with pytest.raises(UnknownStage, match="stages seen: feature_lookup, inference"):
        analyze_slow(population(50), stage="postprocess")


def test_empty_population_is_an_empty_report() -> None:
    """No traces: empty lists, not an error."""
    report = analyze_slow([])
    assert report["traces"] == [] and report["causes"] == [] and report["scanned"] == 0


# -- stats ------------------------------------------------------------------------------------
def test_stats_percentiles_per_stage_and_operation() -> None:
    """p50/p95/p99 per stage (self time) and per operation, with counts."""
    stats = summarize_traces(population(200))
    stages = {row["stage"]: row for row in stats["stages"]}
    assert stages["inference"]["count"] == 200
    assert stages["inference"]["p50"] < stages["inference"]["p99"]
    ops = {row["operation"]: row for row in stats["operations"]}
    assert ops["i"]["count"] == 200 and ops["i"]["error_rate"] == 0.0
    assert stats["duration_ms"]["p50"] <= stats["duration_ms"]["p95"] <= stats["duration_ms"]["p99"]


def test_stats_by_attribute_slices_latency() -> None:
    """--by ml.model.version shows version 2 slower at the median."""
    by = summarize_traces(population(400), by="ml.model.version")["by"]
    groups = {g["value"]: g for g in by["groups"]}
    assert set(groups) == {"1", "2"}
    assert groups["2"]["stages_p50_ms"]["inference"] > groups["1"]["stages_p50_ms"]["inference"] + 2.0


def test_stats_by_numeric_attribute_uses_ranges() -> None:
    """A numeric attribute with many values is sliced into quartile ranges."""
    by = summarize_traces(population(200), by="ml.output.confidence")["by"]
    assert 2 <= len(by["groups"]) <= 4
    assert all(g["value"].startswith("[") for g in by["groups"])


# -- the real pipeline: middleware and decorators into a local store --------------------------
@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TraceSource, Sent, Path]]:
    path = tmp_path_factory.mktemp("analysis") / "traces.db"
    sent = seed_local(path, SERVICE)
    source = open_source(f"local://{path}")
    yield source, sent, path
    source.close()


def test_slow_over_real_traces_names_both_planted_causes(seeded: tuple[TraceSource, Sent, Path]) -> None:
    """Traced by the real middleware: slow names inference/ml.input.size and feature_lookup/misses."""
    source, sent, _ = seeded
    report = slow_traces(source, service=SERVICE, since="10m")
    assert report["scanned"] == len(sent.trace_ids)
    pairs = [(c["stage"], c["attribute"]) for c in report["causes"]]
    assert pairs[:2] == [("inference", "ml.input.size"), ("feature_lookup", "ml.feature_store.misses")]
    listed = [t["trace_id"] for t in report["traces"]]
    assert sum(tid in sent.large for tid in listed) >= len(listed) // 2  # (the first request may be cold)
    slowest = report["traces"][0]
    assert set(slowest["stages"]) >= {"feature_lookup", "preprocess", "inference", "postprocess", UNACCOUNTED}
    assert sum(slowest["stages"].values()) == pytest.approx(slowest["duration_ms"], abs=0.01)


def test_stats_over_real_traces(seeded: tuple[TraceSource, Sent, Path]) -> None:
    """Cold users' feature lookups show in the per-stage p99; --by slices drift and predictions."""
    source, sent, _ = seeded
    stats = trace_stats(source, service=SERVICE, since="10m", by="app.drifted")
    assert stats["count"] == len(sent.trace_ids)
    stages = {row["stage"]: row for row in stats["stages"]}
    assert stages["feature_lookup"]["p99"] > 10.0 > stages["feature_lookup"]["p50"]
    groups = {g["value"]: g for g in stats["by"]["groups"]}
    assert groups["true"]["count"] == len(sent.drifted)
    assert groups["true"]["drift_score"]["p50"] == pytest.approx(0.9)
    assert sum(groups["(not set)"]["predictions"].values()) == pytest.approx(1.0)


def test_lineage_of_a_prediction(seeded: tuple[TraceSource, Sent, Path]) -> None:
    """Lineage names the input fingerprint, the feature store and its misses, the model and the output."""
    source, sent, _ = seeded
    cold = sent.cold[0]
    record = lineage(source, cold)
    assert record["trace_id"] == cold
    assert record["input"]["stage"] == "preprocess"
    assert isinstance(record["fingerprint"], str) and record["fingerprint"]
    assert record["features"][0]["store"] == "redis" and record["features"][0]["misses"] == 1
    assert record["model"] == {"name": "toy", "version": "3"}
    assert record["output"]["prediction"] in ("high", "low")
    assert record["drift"]["score"] in (0.05, 0.9)
    assert record["payloads"] == []


def test_lineage_shows_stored_payload(seeded: tuple[TraceSource, Sent, Path]) -> None:
    """Where payload capture stored a (redacted) body, lineage returns it parsed."""
    source, sent, path = seeded
    tid = sent.trace_ids[5]
    root = source.get_trace(tid).root
    store = LocalStore(path)
    store.put_payload(tid, root.span_id, "request", '{"user": "u-1", "email": "[REDACTED]"}', 1)
    store.close()
    record = lineage(source, tid)
    assert record["payloads"] == [
        {"kind": "request", "span_id": root.span_id, "body": {"user": "u-1", "email": "[REDACTED]"}}
    ]


def test_predictions_on_the_same_input(seeded: tuple[TraceSource, Sent, Path]) -> None:
    """--fingerprint finds every prediction made on one input (it was sent three times)."""
    source, sent, _ = seeded
    fingerprint = lineage(source, sent.repeated[0])["fingerprint"]
    found = predictions_for_input(source, fingerprint)
    assert found["count"] == 3
    assert {p["trace_id"] for p in found["predictions"]} == set(sent.repeated)
    assert {p["model_version"] for p in found["predictions"]} == {"3"}
    assert set(COLD_USERS)  # the cold users are part of the contract of the traffic module


def test_garbage_collector_is_restored(seeded: tuple[TraceSource, Sent, Path]) -> None:
    """slow pauses the cyclic GC while it builds spans, and switches it back on, even after an error."""
    import gc

    from mltrace.analysis._gc import paused_gc

    source, _, _ = seeded
    slow_traces(source, service=SERVICE, since="10m")
    assert gc.isenabled()
    with pytest.raises(UnknownStage):
        slow_traces(source, service=SERVICE, since="10m", stage="training")
    assert gc.isenabled()
    gc.disable()
    try:
        with paused_gc():
            pass
        assert not gc.isenabled()  # it was off before, so it stays off
    finally:
        gc.enable()
