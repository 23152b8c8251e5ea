"""``drift_history`` without the CLI: drift scores read back from traces, cut into time buckets
and grouped by model version, alerts located in time, requests weighted by adjusted count."""

from __future__ import annotations

import time

import pytest
from _memory import MemorySource

from mltrace import semconv
from mltrace._errors import InvalidArgumentError
from mltrace.analysis import drift_history
from mltrace.query import Span, Trace

T0 = int(time.time() * 1e6) - 40 * 60_000_000  # 40 minutes ago


def _request(i: int, version: str, score: float, *, alert: bool = False, weight: float | None = None,
             window_top: tuple[str, ...] = ()) -> Trace:
    tid = f"{i + 1:032x}"
    start = T0 + i * 60_000_000  # one a minute
    attrs: dict[str, object] = {"ml.stage": "inference", semconv.ML_MODEL_VERSION: version,
                                semconv.ML_DRIFT_SCORE: score, semconv.ML_DRIFT_WINDOW_SCORE: score / 2,
                                semconv.ML_DRIFT_ALERT: alert, semconv.ML_DRIFT_TOP_FEATURES: ["age"],
                                semconv.ML_DRIFT_WINDOW_FEATURES: list(window_top), semconv.ML_DRIFT_REFERENCE: "ref-1"}
    root_attrs = {semconv.MLTRACE_SAMPLING_ADJUSTED_COUNT: weight} if weight else {}
    return Trace.of(tid, [
        Span(tid, f"{2 * i + 1:016x}", None, "POST /predict", "model", "SERVER", start, 3000, root_attrs),
        Span(tid, f"{2 * i + 2:016x}", f"{2 * i + 1:016x}", "inference", "model", "INTERNAL", start + 100, 2000, attrs),
    ])


def _history() -> list[Trace]:
    """Version 1 the first 30 minutes, scores 0.1; version 2 the last 10, scores 0.9 and in alert
    from its fifth request, the window naming "income" (and "age" twice)."""
    out = [_request(i, "1", 0.1) for i in range(30)]
    out += [_request(30 + j, "2", 0.9, alert=j >= 4, window_top=("income", "age") if j < 2 else ("income",))
            for j in range(10)]
    return out


def test_buckets_groups_and_alerts() -> None:
    report = drift_history(MemorySource(_history()), service="model", buckets=4)
    assert report["count"] == 40 and report["requests"] == 40.0 and report["alerts"] == 6
    assert report["alert_requests"] == 6.0
    assert report["first_alert_us"] == T0 + 34 * 60_000_000 + 100
    assert [b["count"] for b in report["buckets"]] == [10, 10, 10, 10]
    assert [b["alerts"] for b in report["buckets"]] == [0, 0, 0, 6]
    assert report["buckets"][3]["score_p50"] == 0.9 and report["buckets"][0]["score_p50"] == 0.1
    groups = {g["value"]: g for g in report["groups"]}
    assert (groups["1"]["count"], groups["1"]["alerts"], groups["2"]["alerts"]) == (30, 0, 6)
    assert groups["2"]["top_features"][0] == {"feature": "income", "count": 10, "share": 1.0}
    assert groups["1"]["top_features"][0]["feature"] == "age"  # no window features: the requests' own
    assert report["window_top_features"][0] == {"feature": "income", "count": 10, "share": 0.25}
    assert report["references"] == {"ref-1": 40}


def test_requests_weigh_by_adjusted_count_and_bad_arguments() -> None:
    traces = [_request(i, "1", 0.1, weight=10.0) for i in range(9)] + [_request(9, "1", 0.95, alert=True)]
    report = drift_history(MemorySource(traces), by=None)
    assert (report["requests"], report["alert_requests"], report["alerts"]) == (91.0, 1.0, 1)
    assert [g["value"] for g in report["groups"]] == ["all"]
    with pytest.raises(InvalidArgumentError):
        drift_history(MemorySource(traces), buckets=0)


def test_no_drift_scores() -> None:
    plain = Trace.of("a" * 32, [Span("a" * 32, "b" * 16, None, "GET /", "model", "SERVER", T0, 10, {})])
    report = drift_history(MemorySource([plain]))
    assert (report["count"], report["buckets"], report["groups"], report["first_alert_us"]) == (0, [], [], None)
    assert report["score_p50"] is None and report["requests"] == 0.0
