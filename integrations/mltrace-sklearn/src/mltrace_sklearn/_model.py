"""``traced_model(est)``: a proxy whose ``predict``/``predict_proba``/``transform`` make stage spans."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np
import sklearn
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from mltrace import semconv
from mltrace.spans import StageScope, record_error, sampled_out
from mltrace.spans._stage import stage_attributes
from mltrace.spans._tracer import start_child  # mltrace.stage's own: deferred spans, sampled-out skip

from ._attributes import (
    ML_MODEL_CLASS,
    ML_MODEL_METHOD,
    ML_PIPELINE_STEP,
    ML_PIPELINE_STEP_INDEX,
    ML_PIPELINE_STEPS,
    class_path,
    model_attributes,
)

FRAMEWORK = "sklearn"

# Which stage each traced method makes. Other attributes pass straight through to the estimator.
STAGE_OF: dict[str, str] = {
    "predict": semconv.STAGE_INFERENCE,
    "predict_proba": semconv.STAGE_INFERENCE,
    "predict_log_proba": semconv.STAGE_INFERENCE,
    "decision_function": semconv.STAGE_INFERENCE,
    "score_samples": semconv.STAGE_INFERENCE,
    "transform": semconv.STAGE_PREPROCESS,
}
# Methods after which the static attributes (parameter hash, n_features_in_) are recomputed.
_REFRESH_AFTER = frozenset({"fit", "partial_fit", "fit_transform", "fit_predict", "set_params"})


class TracedModel:
    """A scikit-learn estimator or pipeline whose inference and transform calls are traced.

    Everything else (``fit``, ``classes_``, ``get_params`` ...) passes through to the wrapped
    estimator, which :attr:`estimator` returns. ``hasattr(traced, "predict_proba")`` answers as
    the estimator does.
    """

    __slots__ = (
        "_mltrace_attrs",
        "_mltrace_drift",
        "_mltrace_estimator",
        "_mltrace_name",
        "_mltrace_record_input",
        "_mltrace_record_output",
        "_mltrace_stage_attrs",
        "_mltrace_step_spans",
        "_mltrace_version",
    )

    def __init__(
        self,
        estimator: Any,
        *,
        name: str | None = None,
        version: str | None = None,
        record_input: bool = True,
        record_output: bool = True,
        step_spans: bool = True,
        drift: Any = None,
    ) -> None:
        if not hasattr(estimator, "get_params"):
            raise TypeError(f"traced_model() wraps a scikit-learn estimator, not {type(estimator).__name__}")
        self._mltrace_estimator = estimator
        self._mltrace_name = name or type(estimator).__name__
        self._mltrace_version = version
        self._mltrace_record_input = record_input
        self._mltrace_record_output = record_output
        self._mltrace_step_spans = step_spans
        self._mltrace_drift = drift
        self._mltrace_attrs: dict[str, dict[str, Any]] = {}
        self._mltrace_stage_attrs: dict[str, dict[str, Any]] = {}
        self.refresh()

    @property
    def estimator(self) -> Any:
        """The wrapped estimator, unchanged."""
        return self._mltrace_estimator

    def refresh(self) -> None:
        """Recompute the static span attributes; call after changing the estimator behind the
        wrapper's back (``fit`` and ``set_params`` through the wrapper do it for you)."""
        try:
            base = model_attributes(self._mltrace_estimator)
        except Exception:  # tracing never breaks the model: fall back to the class alone
            base = {ML_MODEL_CLASS: class_path(self._mltrace_estimator)}
        if isinstance(self._mltrace_estimator, Pipeline):
            base[ML_PIPELINE_STEPS] = [str(step_name) for step_name, _ in self._mltrace_estimator.steps]
        self._mltrace_attrs = {method: {**base, ML_MODEL_METHOD: method} for method in STAGE_OF}
        # Each method's whole static attribute set (stage, model, version, framework and the above),
        # built here once instead of on every call as mltrace.stage(...) would.
        self._mltrace_stage_attrs = {
            method: stage_attributes(
                stage_name,
                model=self._mltrace_name,
                version=self._mltrace_version,
                framework=FRAMEWORK,
                attributes=self._mltrace_attrs[method],
            )
            for method, stage_name in STAGE_OF.items()
        }

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_mltrace_"):  # an unset slot (during unpickling): never recurse
            raise AttributeError(name)
        attr = getattr(self._mltrace_estimator, name)  # AttributeError exactly when the estimator has none
        if name in STAGE_OF:
            return functools.partial(self._mltrace_call, name)
        if name in _REFRESH_AFTER and callable(attr):
            return functools.partial(self._mltrace_refreshing, attr)
        return attr

    def __repr__(self) -> str:
        return f"traced_model({self._mltrace_estimator!r})"

    def _mltrace_refreshing(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        result = method(*args, **kwargs)
        self.refresh()
        return self if result is self._mltrace_estimator else result

    def _mltrace_call(self, method: str, X: Any, *args: Any, **kwargs: Any) -> Any:
        if self._mltrace_drift is None and sampled_out():  # no span, no step spans: the estimator's call
            # (with a drift monitor the stage still runs: drift windows count sampled-out requests too)
            return getattr(self._mltrace_estimator, method)(X, *args, **kwargs)
        # What mltrace.stage(...) makes, with the static attributes prebuilt (refresh()).
        with StageScope(STAGE_OF[method], self._mltrace_stage_attrs[method], drift=self._mltrace_drift) as stage:
            if self._mltrace_record_input:
                stage.record_input(X)
            result = self._mltrace_run(self._mltrace_estimator, method, X, args, kwargs)
            if self._mltrace_record_output and stage.is_recording():
                stage.record_output(result)
                if method == "predict_proba":
                    stage.set_attributes(_confidence(result))
            return result

    def _mltrace_run(self, est: Any, method: str, X: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Any:
        # The config (a dict copied per call) is read only for pipelines, the one case it decides.
        if (
            self._mltrace_step_spans
            and isinstance(est, Pipeline)
            and not sklearn.get_config()["enable_metadata_routing"]
        ):
            return self._mltrace_run_pipeline(est, method, X, args, kwargs)
        return getattr(est, method)(X, *args, **kwargs)

    def _mltrace_run_pipeline(
        self, pipe: Pipeline, method: str, X: Any, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> Any:
        """What ``Pipeline.<method>`` does without metadata routing, one child span per step."""
        if method == "transform" and (args or kwargs):
            return pipe.transform(X, *args, **kwargs)  # the pipeline raises its own error for params
        if method != "transform":
            check_is_fitted(pipe)
        Xt = X
        *head, (final_name, final) = pipe.steps
        for index, (step_name, step) in enumerate(head):
            if step is None or isinstance(step, str):  # None or "passthrough"
                continue
            with _step_span(step_name, index, step, "transform"):
                Xt = self._mltrace_run(step, "transform", Xt, (), {})
        if final is None or isinstance(final, str):
            return Xt  # only transform reaches here: the pipeline has no predict without a final step
        with _step_span(final_name, len(head), final, method):
            return self._mltrace_run(final, method, Xt, args, kwargs)


@contextmanager
def _step_span(name: str, index: int, step: Any, method: str) -> Iterator[Span]:
    """One pipeline step's span: a child of the stage span, without ``ml.stage`` so that stage
    breakdowns do not count the step's time twice. Made as the stage span is (deferred inside a
    deferred request; none under a sampled-out parent)."""
    span, started = start_child(
        f"{FRAMEWORK}.{name}",
        {
            ML_PIPELINE_STEP: str(name),
            ML_PIPELINE_STEP_INDEX: index,
            ML_MODEL_CLASS: class_path(step),
            ML_MODEL_METHOD: method,
        },
    )
    if not started:
        yield span
        return
    token = otel_context.attach(trace.set_span_in_context(span))
    try:
        yield span
    except BaseException as exc:
        record_error(span, exc)
        raise
    finally:
        span.end()
        otel_context.detach(token)


def _confidence(proba: Any) -> dict[str, Any]:
    """``ml.output.confidence``: the top class probability (its mean over a batch)."""
    try:
        if type(proba) is np.ndarray and proba.ndim == 2 and proba.shape[0] == 1 and 0 < proba.size <= 64:
            # One row: its largest value, in Python (0.4 µs; numpy's max + mean cost 2.5 µs). The
            # same float: a max is exact, and the mean of one value is that value.
            values = proba.ravel().tolist()
            if all(v == v for v in values):  # a NaN takes numpy's path (its max propagates NaN)
                return {semconv.ML_OUTPUT_CONFIDENCE: float(max(values))}
        if isinstance(proba, np.ndarray) and proba.ndim == 2 and proba.size:
            return {semconv.ML_OUTPUT_CONFIDENCE: float(proba.max(axis=1).mean())}
    except Exception:  # odd output: no confidence, never an error
        pass
    return {}


def traced_model(
    estimator: Any,
    *,
    name: str | None = None,
    version: str | None = None,
    record_input: bool = True,
    record_output: bool = True,
    step_spans: bool = True,
    drift: Any = None,
) -> TracedModel:
    """Wrap a fitted scikit-learn estimator or pipeline so that its calls are traced.

    ``predict``, ``predict_proba``, ``predict_log_proba``, ``decision_function`` and
    ``score_samples`` make an ``inference`` stage span, ``transform`` a ``preprocess`` one, each
    with the model class, a hash of its parameters, ``n_features_in_``, the feature names and
    summaries of the input and output. A :class:`~sklearn.pipeline.Pipeline` gets one child span
    per step (``step_spans=False`` turns them off). ``drift`` takes a drift monitor, as
    ``mltrace.inference(drift=...)`` does.
    """
    return TracedModel(
        estimator,
        name=name,
        version=version,
        record_input=record_input,
        record_output=record_output,
        step_spans=step_spans,
        drift=drift,
    )
