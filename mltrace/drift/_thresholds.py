"""Alert thresholds: fixed peer-style values, raised to what the window size can support.

A fixed threshold (PSI 0.1 / 0.25, Jensen–Shannon 0.1, normed Wasserstein 0.1) is only meaningful
when the window is large: with no drift at all, PSI on ``B`` bins is about ``(1/n + 1/N) χ²(B-1)``
(n window values, N reference values), so a window of 100 crosses 0.1 a third of the time. Every
threshold is therefore ``max(fixed, null quantile)``, the null quantile taken at ``alpha / m``
(Bonferroni over the ``m`` monitored features) so that a window without drift raises an alert
with probability about ``alpha`` however many features there are (see docs/drift.md).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from .._errors import InvalidArgumentError
from ._compiled import CompiledGroup
from ._divergence import chi2_ppf, ks_critical, normal_upper

FloatArray = npt.NDArray[np.float64]

_PER_FEATURE = ("psi_warn", "psi_alert", "js", "wasserstein", "ks_alpha", "chi2_alpha", "missing", "centroid")

#: Null quantiles of ``sqrt(n_eff) * W / (std * mu)`` (mu: its Brownian-bridge mean) measured on
#: normal, log-normal, uniform, exponential, t(3), 5-level integer and bimodal references at windows
#: of 100 and 1000 stay below ``1.1 * sqrt(2 ln(1/a))`` for a = 1e-2, 1e-3 and 1e-4.
W_TAIL_FACTOR = 1.1


@dataclass(frozen=True)
class DriftThresholds:
    """When a feature, and the window, counts as drifted. ``None`` turns a test off.

    Per feature the statistic must reach ``max(fixed, null quantile at alpha / m)``:

    - ``psi_warn`` / ``psi_alert``: PSI bands (peers: 0.1 and 0.25); the null quantiles are
      ``(1/n + 1/N) χ²(df)`` at ``1 - warn_alpha / m`` and ``1 - alpha / m``.
    - ``js``: Jensen–Shannon distance (natural log; Evidently 0.1); null ``sqrt(PSI null / 8)``.
    - ``wasserstein``: Wasserstein distance over the reference std (Evidently 0.1); null
      ``1.1 sqrt(2 ln(m / alpha)) mu sqrt(1/n + 1/N)``, ``mu`` the no-drift mean of ``sqrt(n) W / std``.
    - ``ks_alpha`` / ``chi2_alpha``: also alert when the KS (numerical) or chi-square (categorical)
      p-value is below this over ``m``; off by default (they flag tiny, harmless shifts in big windows).
    - ``missing``: rise of the missing-value rate over the reference (0.1), at least ``z`` standard errors.
    - ``centroid``: embedding centroid distance over the reference RMS radius (0.1).

    The window alerts when any feature alerts, or when at least ``drift_share`` of the features are
    at least in the PSI warn band (Evidently's share rule, 0.5). No alert before ``min_samples``
    values. ``features`` overrides per feature: ``{"age": {"psi_alert": 0.5, "js": None}}``.
    """

    psi_warn: float | None = 0.1
    psi_alert: float | None = 0.25
    js: float | None = 0.1
    wasserstein: float | None = 0.1
    ks_alpha: float | None = None
    chi2_alpha: float | None = None
    missing: float | None = 0.1
    centroid: float | None = 0.1
    alpha: float = 0.001
    warn_alpha: float = 0.01
    drift_share: float | None = 0.5
    min_samples: int = 100
    features: Mapping[str, Mapping[str, float | None]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in _PER_FEATURE:
            _check_value(name, getattr(self, name))
        for name in ("alpha", "warn_alpha"):
            value = getattr(self, name)
            if not 0 < value < 1:
                raise InvalidArgumentError(f"{name} must be in (0, 1); got {value!r}")
        if self.drift_share is not None and not 0 < self.drift_share <= 1:
            raise InvalidArgumentError(f"drift_share must be in (0, 1]; got {self.drift_share!r}")
        if self.min_samples < 1:
            raise InvalidArgumentError(f"min_samples must be at least 1; got {self.min_samples!r}")
        for feature, overrides in self.features.items():
            unknown = sorted(set(overrides) - set(_PER_FEATURE))
            if unknown:
                raise InvalidArgumentError(
                    f"thresholds for {feature!r}: unknown keys {unknown}; allowed: {list(_PER_FEATURE)}"
                )
            for name, value in overrides.items():
                _check_value(f"{feature}.{name}", value)

    def for_feature(self, name: str) -> DriftThresholds:
        """These thresholds with ``features[name]`` applied."""
        overrides = self.features.get(name)
        return replace(self, **overrides) if overrides else self  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "features"}
        out["features"] = {k: dict(v) for k, v in self.features.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DriftThresholds:
        return cls(**dict(data))


def _check_value(name: str, value: object) -> None:
    if value is None:
        return
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) or value <= 0:
        raise InvalidArgumentError(f"threshold {name} must be a positive number or None; got {value!r}")
    if name.endswith("alpha") and value >= 1:
        raise InvalidArgumentError(f"threshold {name} must be below 1; got {value!r}")


def _column(values: list[float | None]) -> FloatArray:
    return np.array([math.nan if v is None else float(v) for v in values], dtype=np.float64)


def _gate(fixed: FloatArray) -> FloatArray:
    """1 where a test is on, NaN where it is off (multiplying a threshold by it switches it off)."""
    return np.where(np.isnan(fixed), np.nan, 1.0)


class GroupThresholds:
    """Thresholds resolved for one compiled group: per-feature arrays, NaN where a test is off."""

    def __init__(self, thresholds: DriftThresholds, group: CompiledGroup) -> None:
        m = max(group.m, 1)
        per = [thresholds.for_feature(name) for name in group.names]
        self.settings = thresholds
        self.psi_warn = _column([t.psi_warn for t in per])
        self.psi_alert = _column([t.psi_alert for t in per])
        self.js = _column([t.js for t in per])
        self.wasserstein = _column([t.wasserstein for t in per])
        self.missing = _column([t.missing for t in per])
        self.centroid = thresholds.centroid
        df = group.df.astype(float)
        self.q_warn = np.array([chi2_ppf(1 - thresholds.warn_alpha / m, d) for d in df])
        self.q_alert = np.array([chi2_ppf(1 - thresholds.alpha / m, d) for d in df])
        self.w_factor = W_TAIL_FACTOR * math.sqrt(2 * math.log(m / thresholds.alpha)) * group.w_null_scale
        self.z = normal_upper(thresholds.alpha / m)
        self.z_two_sided = normal_upper(thresholds.alpha / (2 * m))
        self.ks_c = _column([None if t.ks_alpha is None else ks_critical(t.ks_alpha / m) for t in per])
        self.chi2_crit = np.array(
            [
                math.nan if t.chi2_alpha is None else chi2_ppf(1 - t.chi2_alpha / m, d)
                for t, d in zip(per, df, strict=True)
            ]
        )
        self.has_ks = bool(np.isfinite(self.ks_c).any())
        self.has_chi2 = bool(np.isfinite(self.chi2_crit).any())
        self.psi_warn_gate = _gate(self.psi_warn)
        self.psi_alert_gate = _gate(self.psi_alert)
        self.js_gate = _gate(self.js)
        self.wasserstein_gate = _gate(self.wasserstein)
        self.missing_gate = _gate(self.missing)
        self.drift_share = thresholds.drift_share
        self.min_samples = thresholds.min_samples
