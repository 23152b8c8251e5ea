"""``accuracy`` without the CLI: feedback spans joined with the predictions they name, scored per
model version, over a small in-memory source (the analysis is under test, not the source)."""

from __future__ import annotations

import time

import pytest
from _memory import MemorySource as _Memory

from mltrace import semconv
from mltrace._errors import InvalidArgumentError
from mltrace.analysis import accuracy
from mltrace.query import Span, Trace

NOW_US = int(time.time() * 1e6)


def _prediction(n: int, prediction: object, version: str, weight: float | None = None) -> Trace:
    tid = f"{n:032x}"
    root_attrs = {semconv.MLTRACE_SAMPLING_ADJUSTED_COUNT: weight} if weight else {}
    return Trace.of(tid, [
        Span(tid, f"{n:016x}", None, "POST /predict", "model-svc", "SERVER", NOW_US - 60_000_000, 5000, root_attrs),
        Span(tid, f"{n + 1:016x}", f"{n:016x}", "inference", "model-svc", "INTERNAL", NOW_US - 59_999_000, 3000,
             {"ml.stage": "inference", semconv.ML_OUTPUT_PREDICTION: prediction, semconv.ML_MODEL_VERSION: version}),
    ])


def _feedback(n: int, about: int, label: object, age_s: float = 10.0) -> Trace:
    tid = f"{0xF000 + n:032x}"
    return Trace.of(tid, [Span(
        tid, f"{0xF000 + n:016x}", None, "feedback", "labeller", "INTERNAL", NOW_US - int(age_s * 1e6), 100,
        {"ml.stage": semconv.STAGE_FEEDBACK, semconv.ML_FEEDBACK_TRACE_ID: f"{about:032x}",
         semconv.ML_FEEDBACK_LABEL: label},
    )])


def _labelled() -> list[Trace]:
    """Version 1: 4 of 5 right; version 2: 2 of 5 right (one of them right only after a correction)."""
    out = []
    truth = ["cat", "dog", "cat", "dog", "cat"]
    v1 = ["cat", "dog", "cat", "dog", "dog"]
    v2 = ["dog", "dog", "dog", "cat", "cat"]
    for i, (label, p1, p2) in enumerate(zip(truth, v1, v2, strict=True)):
        out += [_prediction(10 * i + 100, p1, "1"), _prediction(10 * i + 200, p2, "2")]
        out += [_feedback(2 * i, 10 * i + 100, label), _feedback(2 * i + 1, 10 * i + 200, label)]
    out.append(_feedback(50, 240, "dog", age_s=20.0))  # an older, wrong label for v2's last: corrected
    out.append(_feedback(51, 999, "cat"))  # names a trace the source does not have
    return out


def test_accuracy_per_model_version_with_corrections_and_unmatched() -> None:
    report = accuracy(_Memory(_labelled()))
    assert report["metric"] == "accuracy" and report["feedback"] == 12 and report["matched"] == 10
    assert report["unmatched"] == {"count": 1, "examples": [f"{999:032x}"]}
    groups = {g["value"]: g for g in report["groups"]}
    assert (groups["1"]["correct"], groups["1"]["accuracy"]) == (4, 0.8)
    assert (groups["2"]["correct"], groups["2"]["accuracy"]) == (2, 0.4)
    assert report["overall"]["accuracy"] == 0.6 and "weighted_accuracy" not in report["overall"]
    assert report["overall"]["mistakes"] == [{"label": "cat", "prediction": "dog", "count": 3},
                                             {"label": "dog", "prediction": "cat", "count": 1}]
    assert report["delay_s"]["max"] == pytest.approx(50.0, abs=1.0)  # prediction at -60 s, feedback at -10 s


def test_labels_written_as_numbers_or_text_are_one_class() -> None:
    traces = [_prediction(100, 1, "1"), _feedback(0, 100, "1"), _prediction(110, "0", "1"), _feedback(1, 110, 0.0)]
    assert accuracy(_Memory(traces))["overall"]["accuracy"] == 1.0


def test_numeric_outcomes_score_as_mean_absolute_error() -> None:
    traces = []
    for i, (pred, label) in enumerate([(1.5, 1.0), (2.0, 2.5), (3.25, 3.0)]):
        traces += [_prediction(100 + 10 * i, pred, "1"), _feedback(i, 100 + 10 * i, label)]
    overall = accuracy(_Memory(traces), by=None)["overall"]
    assert overall["count"] == 3 and overall["mae"] == pytest.approx((0.5 + 0.5 + 0.25) / 3, abs=1e-6)
    assert accuracy(_Memory(traces), metric="accuracy")["overall"]["accuracy"] == 0.0
    with pytest.raises(InvalidArgumentError):
        accuracy(_Memory(traces), metric="f1")


def test_sampled_predictions_weigh_by_their_adjusted_count() -> None:
    """Right predictions kept 1 in 10 (each stands for 10 requests), a wrong one kept because it
    was slow (stands for itself): 2 of 3 traces are right, 20 of 21 requests."""
    traces = [_prediction(100, "a", "1", weight=10.0), _prediction(110, "a", "1", weight=10.0),
              _prediction(120, "b", "1")]
    traces += [_feedback(0, 100, "a"), _feedback(1, 110, "a"), _feedback(2, 120, "a")]
    overall = accuracy(_Memory(traces))["overall"]
    assert overall["accuracy"] == pytest.approx(0.6667, abs=1e-4)
    assert overall["weighted_accuracy"] == pytest.approx(20 / 21, abs=1e-4) and overall["requests"] == 21.0


def test_feedback_outside_the_window_and_other_services_are_left_out() -> None:
    traces = [*_labelled(), _feedback(60, 100, "dog", age_s=3 * 86400)]  # older than a day
    report = accuracy(_Memory(traces), since="1d")
    assert report["feedback"] == 12
    assert accuracy(_Memory(traces), service="labeller")["matched"] == 0  # predictions come from model-svc
