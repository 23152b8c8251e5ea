"""`stats`, `drift` and `lineage --fingerprint` at scale (issue 14): the whole window asked for is
covered, a sample across it says so and is weighted, and a sample agrees with the full decode.

The store is written through the real ``LocalStore.write`` with SDK spans shaped like a served
request (server span + preprocess / inference), and read through the CLI as a user runs it.
"""

from __future__ import annotations

import random
import time

import pytest
from _cli_run import run, run_json
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status, StatusCode

from mltrace.export import LocalStore

N = 3_000
QUOTED = 'fp "quoted" \\ é'  # a value the store's JSON escapes: the exact (slow) path must find it


def _trace(rng: random.Random, i: int, t0: int) -> list[ReadableSpan]:
    resource = Resource.create({"service.name": "win"})
    trace_id = rng.getrandbits(128) or 1
    root = SpanContext(trace_id, rng.getrandbits(64) or 1, False, TraceFlags(1))
    old = i < N // 3  # the oldest third ran model version "old" and drifted
    fingerprint = QUOTED if i in (5, 2_900) else f"fp-{i % 750:04d}"
    inf_ms = (30 if old else 2) + rng.random()
    parts = [
        ("preprocess", 0.3, {"ml.input.fingerprint": fingerprint}),
        ("inference", inf_ms, {"ml.model.version": "old" if old else rng.choice(("1", "2")),
                               "ml.drift.score": (0.8 if old else 0.1) + rng.random() * 0.1,
                               "ml.drift.alert": old, "ml.output.prediction": rng.choice(("yes", "no"))}),
    ]
    spans, cursor = [], t0 + 100_000
    for name, ms, attrs in parts:
        ctx = SpanContext(trace_id, rng.getrandbits(64) or 1, False, TraceFlags(1))
        dur = int(ms * 1e6)
        spans.append(ReadableSpan(name=name, context=ctx, parent=root, resource=resource, kind=SpanKind.INTERNAL,
                                  attributes={"ml.stage": name, **attrs}, start_time=cursor, end_time=cursor + dur))
        cursor += dur
    error = i % 10 == 0
    spans.append(ReadableSpan(
        name="POST /predict", context=root, parent=None, resource=resource, kind=SpanKind.SERVER,
        attributes={"http.route": "/predict", "http.response.status_code": 500 if error else 200},
        status=Status(StatusCode.ERROR if error else StatusCode.UNSET), start_time=t0, end_time=cursor + 100_000,
    ))
    return spans


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """3,000 traces over the last two hours; model version "old" (slow, drifted) only in the
    oldest third, which the newest 1,000 alone would not see."""
    path = tmp_path_factory.mktemp("window") / "traces.db"
    rng = random.Random(11)
    s = LocalStore(path)
    now = time.time_ns()
    batch: list[ReadableSpan] = []
    for i in range(N):
        batch += _trace(rng, i, now - int(7_000e9) + i * int(7_000e9 / N))
    s.write(batch)
    s.close()
    return f"local://{path}"


def _args(source: str, *extra: str) -> tuple[str, ...]:
    return ("--source", source, "--service", "win", "--since", "3h", *extra)


def test_stats_samples_across_the_window_and_says_so(capsys: pytest.CaptureFixture[str], store: str) -> None:
    full = run_json(capsys, "stats", *_args(store, "--by", "ml.model.version", "--json"))
    part = run_json(capsys, "stats", *_args(store, "--by", "ml.model.version", "--scan", "1000", "--json"))
    assert (full["scanned"], full["analysed"], full["sampled"], full["sample_weight"]) == (N, N, False, 1.0)
    assert (part["scanned"], part["analysed"], part["sampled"], part["sample_weight"]) == (N, 1_000, True, 3.0)
    assert full["requests"] == N and part["requests"] == N  # scaled to the window
    # The oldest third is in the sample: the "old" version's group, about a third of it.
    groups = {g["value"]: g["count"] for g in part["by"]["groups"]}
    assert 250 <= groups["old"] <= 420
    # The sample agrees with the full decode: error rate, percentiles, stage shares.
    assert abs(part["error_rate"] - full["error_rate"]) < 0.03
    assert abs(part["duration_ms"]["p50"] - full["duration_ms"]["p50"]) / full["duration_ms"]["p50"] < 0.25
    shares = {r["stage"]: r["share_of_time"] for r in full["stages"]}
    for row in part["stages"]:
        assert abs(row["share_of_time"] - shares[row["stage"]]) < 0.05
    code, out, _ = run(capsys, "stats", *_args(store, "--scan", "1000"))
    assert code == 0 and "uniform sample of 1,000 of the window's 3,000 traces" in out.replace("\n", " ")
    code, out, _ = run(capsys, "stats", *_args(store))
    assert code == 0 and "uniform sample" not in out


def test_drift_samples_across_the_window(capsys: pytest.CaptureFixture[str], store: str) -> None:
    full = run_json(capsys, "drift", *_args(store, "--json"))
    part = run_json(capsys, "drift", *_args(store, "--scan", "1000", "--json"))
    assert full["sampled"] is False and full["requests"] == N and full["alert_requests"] == N // 3
    assert part["sampled"] is True and part["scanned"] == N and part["analysed"] == 1_000
    assert part["requests"] == N  # every analysed trace is scored, each stands for 3
    assert abs(part["alert_requests"] - N // 3) < 150
    assert "old" in {g["value"] for g in part["groups"]}
    assert part["first_alert_us"] is not None and part["first_alert_us"] < full["last_alert_us"]


def test_lineage_fingerprint_finds_every_use_newest_first(capsys: pytest.CaptureFixture[str], store: str) -> None:
    data = run_json(capsys, "lineage", "--fingerprint", "fp-0007", "--source", store, "--json")
    assert data["count"] == 4  # i = 7, 757, 1507, 2257
    starts = [p["start_us"] for p in data["predictions"]]
    assert starts == sorted(starts, reverse=True)
    quoted = run_json(capsys, "lineage", "--fingerprint", QUOTED, "--source", store, "--json")
    assert quoted["count"] == 2
    none = run_json(capsys, "lineage", "--fingerprint", "fp-00", "--source", store, "--json")
    assert none["count"] == 0  # a substring of a fingerprint is not a match


def test_an_unknown_service_is_still_named(capsys: pytest.CaptureFixture[str], store: str) -> None:
    code, _, err = run(capsys, "stats", "--source", store, "--service", "nope", "--since", "3h")
    assert code != 0 and "win" in err


def test_a_ratio_sampled_store_is_weighted_twice(
    capsys: pytest.CaptureFixture[str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Traces kept at 1 in 4 (``mltrace.sampling.adjusted_count`` = 4), 1 in 3 of them analysed:
    each analysed trace stands for 12 requests."""
    path = tmp_path_factory.mktemp("ratio") / "traces.db"
    rng = random.Random(2)
    s = LocalStore(path)
    now, batch = time.time_ns(), []
    for i in range(1_200):
        spans = _trace(rng, N - 1 - i % 100, now - int(3_000e9) + i * int(2_500e6))  # none "old"
        root = spans[-1]
        spans[-1] = ReadableSpan(name=root.name, context=root.context, parent=None, resource=root.resource,
                                 kind=root.kind, attributes={**(root.attributes or {}),
                                                             "mltrace.sampling.adjusted_count": 4.0},
                                 status=root.status, start_time=root.start_time, end_time=root.end_time)
        batch += spans
    s.write(batch)
    s.close()
    source = f"local://{path}"
    stats = run_json(capsys, "stats", *_args(source, "--scan", "400", "--json"))
    assert stats["sampled"] is True and stats["sample_weight"] == 3.0
    assert stats["requests"] == 1_200 * 4
    drift = run_json(capsys, "drift", *_args(source, "--scan", "400", "--json"))
    assert drift["requests"] == 1_200 * 4
