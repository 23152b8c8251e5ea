"""The demo's model: scikit-learn's breast-cancer classifier when scikit-learn is installed (the
``serve`` extra), else a numpy logistic regression on synthetic data of the same shape."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from ..drift import DriftMonitor

FloatArray = npt.NDArray[np.float64]
MODEL_NAME = "breast-cancer"


@dataclass(frozen=True)
class DemoModel:
    predict_proba: Callable[[FloatArray], FloatArray]
    feature_names: list[str]
    training: FloatArray
    classes: tuple[str, str]
    framework: str


def _sklearn() -> DemoModel:
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    data = load_breast_cancer()
    model: Any = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    model.fit(data.data, data.target)
    return DemoModel(
        predict_proba=lambda x: np.asarray(model.predict_proba(x), dtype=np.float64),
        feature_names=[str(n) for n in data.feature_names],
        training=np.asarray(data.data, dtype=np.float64),
        classes=("malignant", "benign"),
        framework="sklearn",
    )


def _numpy(seed: int = 0) -> DemoModel:
    rng = np.random.default_rng(seed)
    n, k = 569, 30
    X = rng.lognormal(mean=1.0, sigma=0.5, size=(n, k))
    mu, sd = X.mean(axis=0), X.std(axis=0)
    w = rng.normal(size=k)
    y = ((X - mu) / sd @ w + rng.normal(scale=0.5, size=n) > 0).astype(np.float64)
    Z = (X - mu) / sd
    beta = np.zeros(k)
    for _ in range(300):  # plain gradient descent on the logistic loss
        p = 1.0 / (1.0 + np.exp(-Z @ beta))
        beta -= 0.1 * Z.T @ (p - y) / n

    def predict_proba(x: FloatArray) -> FloatArray:
        p1 = 1.0 / (1.0 + np.exp(-((x - mu) / sd) @ beta))
        return np.column_stack([1.0 - p1, p1])

    return DemoModel(predict_proba, [f"feature_{i}" for i in range(k)], X, ("negative", "positive"), "numpy")


def load_model() -> DemoModel:
    """scikit-learn's model if it is importable, else the numpy stand-in."""
    try:
        return _sklearn()
    except ImportError:
        return _numpy()


def drift_monitor(model: DemoModel) -> DriftMonitor | None:
    """A :class:`mltrace.drift.DriftMonitor` on the training data, or ``None`` where that module is absent."""
    try:
        from ..drift import DriftMonitor, ReferenceProfile
    except ImportError:
        return None
    profile = ReferenceProfile.from_data(model.training, feature_names=model.feature_names)
    return DriftMonitor(profile, window=200, recompute_every=50, model=MODEL_NAME)
