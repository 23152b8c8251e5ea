"""traced_model() with real scikit-learn estimators and pipelines."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import sklearn
from mltrace_sklearn import TracedModel, traced_model
from opentelemetry.trace import StatusCode
from sklearn.decomposition import PCA
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from sklearn.svm import LinearSVC

from mltrace.testing import CapturedSpans, deferred_request

Data = tuple[np.ndarray, np.ndarray]


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 6))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    return X, y


@pytest.fixture(scope="module")
def pipeline(data: Data) -> Pipeline:
    X, y = data
    steps = [("scale", StandardScaler()), ("pca", PCA(n_components=4)), ("clf", LogisticRegression())]
    return Pipeline(steps).fit(X, y)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_predict_makes_one_inference_span(spans: CapturedSpans, data: Data, dtype: type) -> None:
    """predict() returns what the estimator returns and makes one inference span with the model's facts."""
    X, y = data
    est = LogisticRegression().fit(X, y)
    model = traced_model(est, name="churn", version="3")
    out = model.predict(X[:5].astype(dtype))
    np.testing.assert_array_equal(out, est.predict(X[:5].astype(dtype)))
    attrs = spans.stage("inference").attributes
    assert attrs["ml.model.name"] == "churn" and attrs["ml.model.version"] == "3"
    assert attrs["ml.model.framework"] == "sklearn"
    assert attrs["ml.model.class"] == "sklearn.linear_model._logistic.LogisticRegression"
    assert attrs["ml.model.method"] == "predict"
    assert attrs["ml.model.n_features_in"] == 6
    assert len(str(attrs["ml.model.params_hash"])) == 16
    assert any(key.startswith("ml.input.") for key in attrs) and any(key.startswith("ml.output.") for key in attrs)


def test_predict_proba_records_confidence(spans: CapturedSpans, data: Data) -> None:
    """predict_proba() records the mean top-class probability as ml.output.confidence."""
    X, y = data
    est = LogisticRegression().fit(X, y)
    proba = traced_model(est).predict_proba(X[:8])
    attrs = spans.stage("inference").attributes
    assert attrs["ml.model.method"] == "predict_proba"
    assert attrs["ml.output.confidence"] == pytest.approx(float(proba.max(axis=1).mean()))


def test_transform_makes_preprocess_span(spans: CapturedSpans, data: Data) -> None:
    """transform() on a transformer makes a preprocess span, not an inference one."""
    X, _ = data
    scaler = StandardScaler().fit(X)
    np.testing.assert_allclose(traced_model(scaler).transform(X[:3]), scaler.transform(X[:3]))
    assert spans.stage("preprocess").attributes["ml.model.method"] == "transform"
    assert spans.stages("inference") == []


def test_feature_names_from_a_dataframe(spans: CapturedSpans, data: Data) -> None:
    """A model fitted on a DataFrame records its feature names."""
    pd = pytest.importorskip("pandas")
    X, y = data
    frame = pd.DataFrame(X, columns=[f"f{i}" for i in range(6)])
    model = traced_model(LogisticRegression().fit(frame, y))
    model.predict(frame.head(2))
    assert list(spans.stage("inference").attributes["ml.model.feature_names"]) == [f"f{i}" for i in range(6)]


def test_pipeline_gives_one_child_span_per_step(spans: CapturedSpans, data: Data, pipeline: Pipeline) -> None:
    """A pipeline's predict makes one child span per step, in order, under the inference span."""
    X, _ = data
    out = traced_model(pipeline).predict(X[:4])
    np.testing.assert_array_equal(out, pipeline.predict(X[:4]))
    parent = spans.stage("inference")
    assert parent.attributes["ml.pipeline.steps"] == ("scale", "pca", "clf")
    steps = [s for s in spans if s.attributes and "ml.pipeline.step" in s.attributes]
    assert [s.name for s in steps] == ["sklearn.scale", "sklearn.pca", "sklearn.clf"]
    assert [s.attributes["ml.pipeline.step.index"] for s in steps] == [0, 1, 2]
    assert [s.attributes["ml.model.method"] for s in steps] == ["transform", "transform", "predict"]
    assert all(s.parent is not None and s.parent.span_id == parent.context.span_id for s in steps)
    assert all("ml.stage" not in s.attributes for s in steps)


def test_pipeline_skips_passthrough_steps(spans: CapturedSpans, data: Data) -> None:
    """'passthrough' and None steps make no span and change nothing."""
    X, y = data
    steps = [("scale", StandardScaler()), ("nothing", "passthrough"), ("none", None), ("clf", LogisticRegression())]
    pipe = Pipeline(steps).fit(X, y)
    np.testing.assert_array_equal(traced_model(pipe).predict_proba(X[:3]), pipe.predict_proba(X[:3]))
    assert [s.name for s in spans if s.name.startswith("sklearn.")] == ["sklearn.scale", "sklearn.clf"]


def test_pipeline_transform_with_passthrough_final_step(spans: CapturedSpans, data: Data) -> None:
    """transform() on a pipeline ending in 'passthrough' returns the transformed data of the steps before."""
    X, y = data
    pipe = Pipeline([("scale", StandardScaler()), ("end", "passthrough")]).fit(X, y)
    np.testing.assert_allclose(traced_model(pipe).transform(X[:3]), pipe.transform(X[:3]))
    assert spans.stage("preprocess").attributes["ml.model.method"] == "transform"
    assert spans.names().count("sklearn.scale") == 1


def test_nested_pipeline_spans_nest(spans: CapturedSpans, data: Data) -> None:
    """A pipeline inside a pipeline gives the inner steps' spans as children of the outer step's span."""
    X, y = data
    inner = make_pipeline(StandardScaler(), PCA(n_components=3))
    pipe = Pipeline([("features", inner), ("clf", LogisticRegression())]).fit(X, y)
    traced_model(pipe).predict(X[:2])
    by_name = {s.name: s for s in spans}
    outer = by_name["sklearn.features"]
    assert by_name["sklearn.standardscaler"].parent.span_id == outer.context.span_id
    assert by_name["sklearn.pca"].parent.span_id == outer.context.span_id


def test_step_spans_can_be_turned_off(spans: CapturedSpans, data: Data, pipeline: Pipeline) -> None:
    """step_spans=False makes the single stage span only."""
    X, _ = data
    traced_model(pipeline, step_spans=False).predict(X[:2])
    assert spans.names() == ["inference"]


def test_metadata_routing_falls_back_to_one_span(spans: CapturedSpans, data: Data, pipeline: Pipeline) -> None:
    """With metadata routing on, the pipeline runs its own method (routing intact) under one span."""
    X, _ = data
    with sklearn.config_context(enable_metadata_routing=True):
        out = traced_model(pipeline).predict(X[:2])
    np.testing.assert_array_equal(out, pipeline.predict(X[:2]))
    assert spans.names() == ["inference"]


def test_params_hash_is_stable_and_follows_set_params(data: Data) -> None:
    """Equal settings hash equally (callables included); set_params through the wrapper rehashes."""
    X, y = data

    def make() -> TracedModel:
        return traced_model(make_pipeline(FunctionTransformer(np.log1p), LogisticRegression(C=0.5)).fit(np.abs(X), y))

    a, b = make(), make()
    key = "ml.model.params_hash"
    assert a._mltrace_attrs["predict"][key] == b._mltrace_attrs["predict"][key]
    assert a.set_params(logisticregression__C=2.0) is a
    assert a._mltrace_attrs["predict"][key] != b._mltrace_attrs["predict"][key]


def test_fit_through_the_wrapper_refreshes_attributes(spans: CapturedSpans, data: Data) -> None:
    """Wrapping an unfitted estimator and fitting through the wrapper records n_features_in_ afterwards."""
    X, y = data
    model = traced_model(LogisticRegression())
    assert model.fit(X, y) is model
    model.predict(X[:1])
    assert spans.stage("inference").attributes["ml.model.n_features_in"] == 6
    assert spans.names() == ["inference"]  # fit itself is not traced


def test_hasattr_answers_as_the_estimator_does(data: Data) -> None:
    """A method the estimator lacks is missing on the wrapper too; plain attributes pass through."""
    X, y = data
    svc = LinearSVC().fit(X, y)
    model = traced_model(svc)
    assert not hasattr(model, "predict_proba")
    assert hasattr(model, "decision_function")
    np.testing.assert_array_equal(model.classes_, svc.classes_)
    assert model.estimator is svc


def test_errors_are_recorded_and_reraised(spans: CapturedSpans, data: Data, pipeline: Pipeline) -> None:
    """A wrong input raises the estimator's own error; the stage and the failing step are marked ERROR."""
    X, _ = data
    with pytest.raises(ValueError, match="features"):
        traced_model(pipeline).predict(X[:2, :3])
    stage = spans.stage("inference")
    assert stage.status.status_code is StatusCode.ERROR and stage.attributes["error.type"] == "ValueError"
    step = spans.named("sklearn.scale")[0]
    assert step.status.status_code is StatusCode.ERROR


def test_unfitted_pipeline_raises_not_fitted(spans: CapturedSpans, data: Data) -> None:
    """An unfitted pipeline raises NotFittedError, as the pipeline itself does."""
    X, _ = data
    with pytest.raises(NotFittedError):
        traced_model(make_pipeline(StandardScaler(), LogisticRegression())).predict(X[:1])


def test_rejects_what_is_not_an_estimator() -> None:
    """Wrapping something without get_params() is a TypeError naming the type."""
    with pytest.raises(TypeError, match="list"):
        traced_model([1, 2, 3])


def test_wrapper_pickles(data: Data, pipeline: Pipeline) -> None:
    """A traced model survives pickling and predicts the same afterwards."""
    X, _ = data
    model = pickle.loads(pickle.dumps(traced_model(pipeline, name="p")))
    np.testing.assert_array_equal(model.predict(X[:3]), pipeline.predict(X[:3]))
    assert "traced_model(" in repr(model)


@pytest.mark.parametrize("row", [[0.2, 0.8], [0.7, 0.1, 0.2], [1.0], [np.nan, 0.5], [0.5, np.nan]])
def test_one_row_confidence_is_numpys(row: list[float]) -> None:
    """The one-row confidence (computed in Python) is the float numpy's max-then-mean gives, NaN included."""
    from mltrace_sklearn._model import _confidence

    proba = np.array([row])
    got = _confidence(proba)["ml.output.confidence"]
    want = float(proba.max(axis=1).mean())
    assert (got == want or (np.isnan(got) and np.isnan(want))) and type(got) is float


def test_inside_a_deferred_request_spans_are_the_same(spans: CapturedSpans, data: Data, pipeline: Pipeline) -> None:
    """Inside a request recorded with deferred spans, the stage and step spans are deferred and
    exported with the same names, nesting and attributes as outside a request."""
    X, _ = data
    model = traced_model(pipeline, name="churn")
    model.predict_proba(X[:1])
    outside = [(s.name, dict(s.attributes)) for s in spans.spans]
    spans.clear()
    with deferred_request() as request:
        result = model.predict_proba(X[:1])
        assert request.held and len(spans) == 0  # spans held, none handed to the SDK yet
    server_id = request.span.get_span_context().span_id
    np.testing.assert_array_equal(result, pipeline.predict_proba(X[:1]))
    inside = [s for s in spans.spans if s.name != "POST /predict"]
    assert [(s.name, dict(s.attributes)) for s in inside] == outside
    stage = spans.stage("inference")
    assert stage.parent is not None and stage.parent.span_id == server_id
    steps = [s for s in inside if s is not stage]
    assert len(steps) == 3 and all(s.parent is not None and s.parent.span_id == stage.context.span_id for s in steps)


def test_sampled_out_parent_makes_no_spans(spans: CapturedSpans, data: Data, pipeline: Pipeline) -> None:
    """Under a sampled-out parent a pipeline runs with no stage span and no step spans."""
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    X, _ = data
    parent = NonRecordingSpan(SpanContext(0x1234, 0x5678, is_remote=False, trace_flags=TraceFlags(0)))
    token = otel_context.attach(trace.set_span_in_context(parent))
    try:
        out = traced_model(pipeline).predict_proba(X[:3])
    finally:
        otel_context.detach(token)
    np.testing.assert_array_equal(out, pipeline.predict_proba(X[:3]))
    assert len(spans) == 0


def test_sampled_out_calls_still_feed_the_drift_monitor(spans: CapturedSpans, data: Data) -> None:
    """With a drift monitor, a sampled-out call still scores its input (drift windows count every
    request, as before the sampled-out shortcut) and makes no span. Its output is observed only
    when the span records (unchanged behaviour)."""
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    class Counting:
        def __init__(self) -> None:
            self.scored = self.observed = 0

        def score(self, obj: object) -> dict[str, float]:
            self.scored += 1
            return {}

        def span_attributes(self, result: object) -> dict[str, float]:
            return {}

        def observe_output(self, obj: object) -> None:
            self.observed += 1

    X, y = data
    monitor = Counting()
    model = traced_model(LogisticRegression().fit(X, y), drift=monitor)
    parent = NonRecordingSpan(SpanContext(0x1234, 0x5678, is_remote=False, trace_flags=TraceFlags(0)))
    token = otel_context.attach(trace.set_span_in_context(parent))
    try:
        model.predict_proba(X[:2])
    finally:
        otel_context.detach(token)
    assert (monitor.scored, monitor.observed) == (1, 0) and len(spans) == 0
