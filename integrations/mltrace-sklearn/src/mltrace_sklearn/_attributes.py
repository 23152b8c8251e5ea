"""What the scikit-learn spans carry: the static model attributes, computed once per fit.

Attribute keys this integration adds to mltrace's own (documented in ``docs/integrations.md``).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Final

import numpy as np

ML_MODEL_CLASS: Final = "ml.model.class"
ML_MODEL_METHOD: Final = "ml.model.method"
ML_MODEL_PARAMS_HASH: Final = "ml.model.params_hash"
ML_MODEL_N_FEATURES_IN: Final = "ml.model.n_features_in"
ML_MODEL_FEATURE_NAMES: Final = "ml.model.feature_names"
ML_PIPELINE_STEP: Final = "ml.pipeline.step"
ML_PIPELINE_STEP_INDEX: Final = "ml.pipeline.step.index"
ML_PIPELINE_STEPS: Final = "ml.pipeline.steps"

MAX_FEATURE_NAMES: Final = 32
MAX_NAME_CHARS: Final = 64


def class_path(obj: object) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def params_hash(estimator: Any) -> str | None:
    """A stable 16-hex-digit hash of ``get_params(deep=True)``: the same settings give the same hash
    across processes (nested estimators count through their flattened ``step__param`` entries)."""
    get_params = getattr(estimator, "get_params", None)
    if get_params is None:
        return None
    canonical = {str(k): _canon(v) for k, v in get_params(deep=True).items()}
    blob = json.dumps([class_path(estimator), canonical], sort_keys=True, default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _canon(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, type):
        return f"{value.__module__}.{value.__qualname__}"
    if hasattr(value, "get_params"):  # a nested estimator: its parameters appear flattened
        return class_path(value)
    if isinstance(value, list | tuple):
        return [_canon(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _canon(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, np.ndarray):
        digest = hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()[:16]
        return f"ndarray{value.shape}:{value.dtype}:{digest}"
    if isinstance(value, np.generic):
        return value.item()
    if callable(value):
        return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', type(value).__name__)}"
    text = repr(value)
    return class_path(value) if " at 0x" in text else text  # no memory addresses in the hash


def model_attributes(estimator: Any) -> dict[str, Any]:
    """Class, parameter hash, ``n_features_in_`` and (bounded) feature names, as span attributes."""
    attrs: dict[str, Any] = {ML_MODEL_CLASS: class_path(estimator)}
    digest = params_hash(estimator)
    if digest is not None:
        attrs[ML_MODEL_PARAMS_HASH] = digest
    n_features = getattr(estimator, "n_features_in_", None)
    if isinstance(n_features, int | np.integer):
        attrs[ML_MODEL_N_FEATURES_IN] = int(n_features)
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None and len(names):
        attrs[ML_MODEL_FEATURE_NAMES] = [str(n)[:MAX_NAME_CHARS] for n in list(names)[:MAX_FEATURE_NAMES]]
    return attrs
