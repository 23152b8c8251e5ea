"""Per-feature reference summaries and the value conversions shared by profiles and monitors."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._errors import ProfileFormatError

NUMERICAL = "numerical"
CATEGORICAL = "categorical"
QUANTILE_LEVELS = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)


def to_float(value: object) -> float:
    """A numeric reading of ``value``; NaN for anything missing or not a number (never raises)."""
    if isinstance(value, float):
        return value
    if isinstance(value, (int, bool)):
        try:
            return float(value)
        except OverflowError:
            return math.inf if value > 0 else -math.inf
    if value is None:
        return math.nan
    if isinstance(value, (str, bytes)):
        try:
            return float(value)
        except ValueError:
            return math.nan
    try:
        return float(value)  # type: ignore[arg-type]  # numpy scalars, Decimal, Fraction, ...
    except (TypeError, ValueError, OverflowError):
        return math.nan


def category_key(value: object) -> str | None:
    """The string a category is stored under; ``None`` for a missing value (never raises).

    Integral numbers read as integers (``1.0``, ``1`` and ``np.int8(1)`` are one category),
    booleans as ``"True"``/``"False"``, bytes as UTF-8 text; ``None``, NaN and pandas' NA are
    missing.
    """
    if value is None:
        return None
    if isinstance(value, str):
        return str(value)
    if isinstance(value, (bool, np.bool_)):
        return "True" if value else "False"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        number = float(value)
        if math.isnan(number):
            return None
        return str(int(number)) if number.is_integer() else repr(number)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if type(value).__name__ in ("NAType", "NaTType"):
        return None
    try:
        return str(value)
    except Exception:  # an object whose __str__ fails must still not break a request
        return "<unprintable>"


def _opt_float(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


@dataclass(frozen=True)
class NumericalFeature:
    """A numerical feature: reference-quantile bins at two resolutions plus moments.

    ``edges`` are the fine interior edges (quantiles at ``k / resolution`` plus 0.05%, 0.2% and 0.5%
    in each tail; ties and edges at the minimum dropped) and ``counts`` the reference values per
    fine bin (``len(edges) + 1``); edges and counts come from a sample when the data has more rows
    than ``sample_size`` (then ``sum(counts) < count``), moments and range from every value.
    ``bin_edges`` are the coarse edges used by PSI and Jensen–Shannon (``bins`` quantiles); each is
    one of ``edges``.
    """

    name: str
    count: int
    missing: int
    mean: float | None
    std: float | None
    min: float | None
    max: float | None
    quantiles: tuple[tuple[float, float], ...]
    edges: tuple[float, ...]
    counts: tuple[int, ...]
    bin_edges: tuple[float, ...]

    kind = NUMERICAL

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": NUMERICAL,
            "count": self.count,
            "missing": self.missing,
            "mean": _opt_float(self.mean),
            "std": _opt_float(self.std),
            "min": _opt_float(self.min),
            "max": _opt_float(self.max),
            "quantiles": {repr(level): value for level, value in self.quantiles},
            "bin_edges": list(self.bin_edges),
            "edges": list(self.edges),
            "counts": list(self.counts),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> NumericalFeature:
        name = str(data["name"])
        edges = tuple(float(e) for e in data["edges"])
        counts = tuple(int(c) for c in data["counts"])
        bin_edges = tuple(float(e) for e in data["bin_edges"])
        if len(counts) != len(edges) + 1:
            raise ProfileFormatError(f"feature {name!r}: {len(counts)} counts for {len(edges)} edges")
        if sum(counts) > int(data["count"]):
            raise ProfileFormatError(f"feature {name!r}: counts add up to more than count")
        if not set(bin_edges) <= set(edges):
            raise ProfileFormatError(f"feature {name!r}: bin_edges must be a subset of edges")
        if int(data["count"]) > 0 and (data["min"] is None or data["max"] is None):
            raise ProfileFormatError(f"feature {name!r}: min and max are required when count > 0")
        return cls(
            name=name,
            count=int(data["count"]),
            missing=int(data["missing"]),
            mean=_opt_float(data.get("mean")),
            std=_opt_float(data.get("std")),
            min=_opt_float(data.get("min")),
            max=_opt_float(data.get("max")),
            quantiles=tuple(sorted((float(k), float(v)) for k, v in dict(data["quantiles"]).items())),
            edges=edges,
            counts=counts,
            bin_edges=bin_edges,
        )


@dataclass(frozen=True)
class CategoricalFeature:
    """A categorical feature: the most frequent categories (at most ``max_categories``) with
    their counts, the rest pooled in ``other``; ``cardinality`` is the number of distinct
    categories seen in the reference."""

    name: str
    count: int
    missing: int
    categories: tuple[tuple[str, int], ...]
    other: int
    cardinality: int

    kind = CATEGORICAL

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": CATEGORICAL,
            "count": self.count,
            "missing": self.missing,
            "cardinality": self.cardinality,
            "categories": [[key, n] for key, n in self.categories],
            "other": self.other,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CategoricalFeature:
        name = str(data["name"])
        categories = tuple((str(k), int(n)) for k, n in data["categories"])
        other = int(data["other"])
        if sum(n for _, n in categories) + other != int(data["count"]):
            raise ProfileFormatError(f"feature {name!r}: category counts do not add up to count")
        if len({k for k, _ in categories}) != len(categories):
            raise ProfileFormatError(f"feature {name!r}: duplicate categories")
        return cls(
            name=name,
            count=int(data["count"]),
            missing=int(data["missing"]),
            categories=categories,
            other=other,
            cardinality=int(data["cardinality"]),
        )


FeatureProfile = NumericalFeature | CategoricalFeature


def feature_from_dict(data: Mapping[str, Any]) -> FeatureProfile:
    """Read one feature entry of a saved profile."""
    kind = data.get("kind")
    try:
        if kind == NUMERICAL:
            return NumericalFeature.from_dict(data)
        if kind == CATEGORICAL:
            return CategoricalFeature.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, ProfileFormatError):
            raise
        raise ProfileFormatError(f"feature {data.get('name')!r}: {type(exc).__name__}: {exc}") from exc
    raise ProfileFormatError(f"feature {data.get('name')!r}: unknown kind {kind!r}")
