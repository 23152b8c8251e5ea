"""Late ground truth: mltrace.feedback() spans, and accuracy/MAE joined with the predictions they are about."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags
from starlette.testclient import TestClient

import mltrace
from mltrace import semconv
from mltrace.analysis import accuracy, trace_stats
from mltrace.cli import main
from mltrace.export import LocalStore
from mltrace.query import open_source
from mltrace.testing import CapturedSpans, capture_spans

SERVICE = "churn-api"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN_ID = "00f067aa0ba902b7"


def _hex(n: int, width: int) -> str:
    return format(n, f"0{width}x")


# -- the feedback span ------------------------------------------------------------------------


def test_traceresponse_links_to_the_server_span(spans: CapturedSpans) -> None:
    """A traceresponse value gives a link to the trace's server span and the ml.feedback.* attributes."""
    returned = mltrace.feedback(f"00-{TRACE_ID}-{SPAN_ID}-01", "churned", model="churn", version=2)
    (span,) = spans.named("feedback")
    assert span.kind is SpanKind.INTERNAL
    assert dict(span.attributes or {}) == {
        semconv.ML_STAGE: "feedback",
        semconv.ML_FEEDBACK_LABEL: "churned",
        semconv.ML_FEEDBACK_TRACE_ID: TRACE_ID,
        semconv.ML_FEEDBACK_SPAN_ID: SPAN_ID,
        semconv.ML_MODEL_NAME: "churn",
        semconv.ML_MODEL_VERSION: "2",
    }
    (link,) = span.links
    assert (_hex(link.context.trace_id, 32), _hex(link.context.span_id, 16)) == (TRACE_ID, SPAN_ID)
    assert span.context is not None and returned == _hex(span.context.trace_id, 32) != TRACE_ID


def test_a_bare_trace_id_links_to_the_trace(spans: CapturedSpans) -> None:
    """32 hex digits (X-Trace-Id, any case): a link to the trace with a zero span id, kept for its attribute."""
    mltrace.feedback(f"  {TRACE_ID.upper()} ", 0)
    (span,) = spans.named("feedback")
    assert semconv.ML_FEEDBACK_SPAN_ID not in (span.attributes or {})
    (link,) = span.links
    assert (_hex(link.context.trace_id, 32), link.context.span_id) == (TRACE_ID, 0)
    assert dict(link.attributes or {}) == {semconv.ML_FEEDBACK_TRACE_ID: TRACE_ID}


def test_span_id_argument_wins(spans: CapturedSpans) -> None:
    """span_id= names the prediction's own span (e.g. the inference span), over the traceparent's."""
    mltrace.feedback(f"00-{TRACE_ID}-{SPAN_ID}-01", True, span_id="A1B2C3D4E5F60718")
    (span,) = spans.named("feedback")
    assert span.attributes is not None and span.attributes[semconv.ML_FEEDBACK_SPAN_ID] == "a1b2c3d4e5f60718"
    assert span.links[0].context.span_id == int("a1b2c3d4e5f60718", 16)


@pytest.mark.parametrize(
    ("label", "expected"),
    [(np.int64(3), 3), (np.float32(0.5), 0.5), (np.bool_(True), True), ("x" * 300, "x" * 256), (-2, -2)],
)
def test_labels_become_primitives(spans: CapturedSpans, label: Any, expected: Any) -> None:
    """numpy scalars become Python values; long text is cut at 256 characters."""
    mltrace.feedback(TRACE_ID, label)
    value = spans.named("feedback")[0].attributes[semconv.ML_FEEDBACK_LABEL]  # type: ignore[index]
    assert value == expected and type(value) is type(expected)


@pytest.mark.parametrize(
    ("trace_id", "label", "span_id", "error"),
    [
        ("xyz", 1, None, ValueError),
        ("0" * 32, 1, None, ValueError),
        (TRACE_ID[:-1], 1, None, ValueError),
        (f"00-{TRACE_ID}-{SPAN_ID}", 1, None, ValueError),
        (TRACE_ID, 1, "123", ValueError),
        (TRACE_ID, 1, "0" * 16, ValueError),
        (TRACE_ID, float("nan"), None, ValueError),
        (TRACE_ID, [1, 2], None, TypeError),
        (TRACE_ID, None, None, TypeError),
        (1234, 1, None, TypeError),
    ],
)
def test_bad_arguments_are_clear_errors(
    spans: CapturedSpans, trace_id: Any, label: Any, span_id: Any, error: type[Exception]
) -> None:
    """An unreadable trace id, span id or label raises ValueError/TypeError and records nothing."""
    with pytest.raises(error):
        mltrace.feedback(trace_id, label, span_id=span_id)
    assert spans.named("feedback") == []


def test_unsampled_context_records_nothing(spans: CapturedSpans) -> None:
    """Inside a trace that was sampled out, feedback follows its parent: no span, None returned."""
    parent = SpanContext(int(TRACE_ID, 16), int(SPAN_ID, 16), is_remote=True, trace_flags=TraceFlags(0))
    with trace.use_span(NonRecordingSpan(parent)):
        assert mltrace.feedback("1" * 32, "x") is None
    assert spans.named("feedback") == []


# -- accuracy from the local store --------------------------------------------------------------


def _app() -> FastAPI:
    @mltrace.inference(model="churn", version="1")
    def predict_v1(x: float) -> str:
        label = "churn" if x > 0.5 else "stay"
        mltrace.current_stage().set_attribute(semconv.ML_OUTPUT_PREDICTION, label)
        return label

    @mltrace.inference(model="churn", version="2")
    def predict_v2(x: float) -> str:
        label = "churn" if x > 0.3 else "stay"
        mltrace.current_stage().set_attribute(semconv.ML_OUTPUT_PREDICTION, label)
        return label

    @mltrace.inference(model="spend", version="7")
    def predict_spend(x: float) -> float:
        mltrace.current_stage().set_attribute(semconv.ML_OUTPUT_PREDICTION, round(100 * x, 2))
        return 100 * x

    app = FastAPI()
    app.add_middleware(mltrace.MLTraceMiddleware)

    @app.post("/predict")
    def endpoint(body: dict[str, Any]) -> dict[str, Any]:
        model = {"1": predict_v1, "2": predict_v2, "spend": predict_spend}[body["version"]]
        return {"prediction": model(body["x"])}

    @app.post("/feedback")
    def record(body: dict[str, Any]) -> dict[str, Any]:
        return {"recorded": mltrace.feedback(body["trace"], body["label"])}

    return app


def _write(path: Path, spans: Sequence[ReadableSpan]) -> None:
    """The captured spans into a local store, as one service's (the way an exporter would)."""
    resource = Resource.create({"service.name": SERVICE})
    store = LocalStore(path)
    store.write([
        ReadableSpan(
            name=s.name, context=s.context, parent=s.parent, resource=resource, attributes=s.attributes,
            events=s.events, links=s.links, kind=s.kind, instrumentation_scope=s.instrumentation_scope,
            status=s.status, start_time=s.start_time, end_time=s.end_time,
        )
        for s in spans
    ])
    store.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> str:
    """40 predictions per churn version (truth: churn when x > 0.4) and 20 spend predictions, all with feedback.

    Version 1 predicts churn at x > 0.5, version 2 at x > 0.3: on x = 0.0125, 0.0375, ... each
    misses the 4 (of 40) values between its threshold and the truth's, so both score 90%.
    Feedback goes three ways: through a /feedback request (traceresponse header), from
    outside any request (X-Trace-Id), and twice for one prediction (the newer one counts).
    """
    client = TestClient(_app())
    with capture_spans() as captured:
        xs = [(i + 0.5) / 40 for i in range(40)]
        for version in ("1", "2"):
            for i, x in enumerate(xs):
                response = client.post("/predict", json={"version": version, "x": x})
                truth = "churn" if x > 0.4 else "stay"
                if i % 2:
                    client.post("/feedback", json={"trace": response.headers["traceresponse"], "label": truth})
                else:
                    if i == 0:
                        mltrace.feedback(response.headers["x-trace-id"], "churn")  # wrong, corrected below
                    mltrace.feedback(response.headers["x-trace-id"], truth)
        for i in range(20):
            response = client.post("/predict", json={"version": "spend", "x": i / 20})
            mltrace.feedback(response.headers["x-trace-id"], round(100 * i / 20 + (2.0 if i % 2 else -1.0), 2))
        mltrace.feedback("ab" * 16, "churn")  # a prediction this store never saw
    path = tmp_path_factory.mktemp("feedback") / "traces.db"
    _write(path, captured.spans)
    return f"local://{path}"


def test_accuracy_per_model_version(store: str) -> None:
    """Feedback joins its prediction through the link/trace id; accuracy per ml.model.version."""
    source = open_source(store)
    try:
        data = accuracy(source, service=SERVICE, since="1h", metric="accuracy")
    finally:
        source.close()
    groups = {g["value"]: g for g in data["groups"]}
    assert data["metric"] == "accuracy"
    assert data["feedback"] == 2 * (40 + 1) + 20 + 1  # a correction per version, spend, the stranger
    assert data["unmatched"] == {"count": 1, "examples": ["ab" * 16]}
    assert (groups["1"]["count"], groups["1"]["correct"], groups["1"]["accuracy"]) == (40, 36, 0.9)
    assert (groups["2"]["count"], groups["2"]["correct"]) == (40, 36)
    assert groups["1"]["mistakes"] == [{"label": "churn", "prediction": "stay", "count": 4}]
    assert groups["2"]["mistakes"] == [{"label": "stay", "prediction": "churn", "count": 4}]
    assert data["delay_s"]["max"] < 60


def test_numeric_outcomes_score_as_mae(store: str) -> None:
    """Fractional numbers are regression: mean absolute error per version (|±1|, |±2| alternating = 1.5)."""
    source = open_source(store)
    try:
        data = accuracy(source, service=SERVICE, since="1h", by=semconv.ML_MODEL_NAME, metric="mae")
    finally:
        source.close()
    spend = next(g for g in data["groups"] if g["value"] == "spend")
    assert spend["count"] == 20 and spend["mae"] == pytest.approx(1.5)
    assert spend["rmse"] == pytest.approx(np.sqrt((1 + 4) / 2))


def test_auto_metric_picks_accuracy_for_classes(store: str) -> None:
    """metric=auto: text labels score as accuracy; spend values (fractional) alone score as MAE."""
    source = open_source(store)
    try:
        assert accuracy(source, since="1h")["metric"] == "accuracy"
    finally:
        source.close()


def test_feedback_traces_stay_out_of_latency_stats(store: str) -> None:
    """Feedback recorded outside a request is its own trace; stats counts only served requests."""
    source = open_source(store)
    try:
        data = trace_stats(source, service=SERVICE, since="1h")
    finally:
        source.close()
    assert data["count"] == 40 * 2 + 20 + 40  # predictions and the 40 /feedback requests


def test_cli_accuracy(store: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """``mltrace accuracy`` prints the per-version table; --json is accuracy()'s data."""
    monkeypatch.setenv("COLUMNS", "160")
    assert main(["accuracy", "--source", store, "--service", SERVICE, "--since", "1h", "--metric", "accuracy"]) == 0
    out = capsys.readouterr().out
    assert "Accuracy of service churn-api against feedback from the last 1h" in out
    assert "(1 not found, 0 without ml.output.prediction)" in out and "by ml.model.version" in out
    assert "churn → stay ×4" in out
    assert main(["accuracy", "--source", store, "--since", "1h", "--by", "ml.model.name", "--metric", "mae",
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {g["value"] for g in data["groups"]} == {"spend"}  # text labels have no MAE: left out
    assert main(["accuracy", "--source", store, "--service", "nope"]) == 1
    assert "unknown service 'nope'" in capsys.readouterr().err
