"""Embedding summaries: centroid, RMS radius and a few random projections.

An embedding is monitored through numerical features derived from it: the distance to the
reference centroid (``<name>.distance``, one-sided: only far is unusual) and ``k`` random sign
projections of the centred vector (``<name>.rp0`` ...), each binned like any numerical feature.
The window also tracks the distance between its own centroid and the reference centroid.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Any

import numpy as np
import numpy.typing as npt

from .._errors import InputDataError
from ._errors import ProfileFormatError
from ._features import NumericalFeature, feature_from_dict

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class EmbeddingProfile:
    """Reference summary of one embedding (or any fixed-length vector input)."""

    name: str
    dim: int
    count: int
    missing: int
    centroid: tuple[float, ...]
    rms_radius: float
    projection: tuple[tuple[int, ...], ...]
    features: tuple[NumericalFeature, ...] = ()

    @property
    def distance_name(self) -> str:
        return f"{self.name}.distance"

    def derived_names(self) -> list[str]:
        return [self.distance_name, *(f"{self.name}.rp{i}" for i in range(len(self.projection)))]

    @cached_property
    def _centroid(self) -> FloatArray:
        return np.asarray(self.centroid, dtype=np.float64)

    @cached_property
    def _projection(self) -> FloatArray:
        signs = np.asarray(self.projection, dtype=np.float64).reshape(len(self.projection), self.dim)
        return np.ascontiguousarray(signs.T / math.sqrt(self.dim))

    def derive(self, vectors: FloatArray) -> FloatArray:
        """``(rows, 1 + k)``: distance to the centroid, then the projections (NaN rows stay NaN)."""
        centred = vectors - self._centroid
        out = np.empty((vectors.shape[0], 1 + len(self.projection)), dtype=np.float64)
        out[:, 0] = np.sqrt(np.einsum("ij,ij->i", centred, centred))
        out[:, 1:] = centred @ self._projection
        return out

    def with_features(self, features: Sequence[NumericalFeature]) -> EmbeddingProfile:
        return replace(self, features=tuple(features))

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "dim": self.dim,
            "count": self.count,
            "missing": self.missing,
            "rms_radius": self.rms_radius,
            "centroid": list(self.centroid),
            "projection": ["".join("+" if s > 0 else "-" for s in row) for row in self.projection],
            "features": [f.to_dict() for f in self.features],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EmbeddingProfile:
        dim = int(data["dim"])
        projection = tuple(tuple(1 if ch == "+" else -1 for ch in row) for row in data["projection"])
        if any(len(row) != dim for row in projection) or len(data["centroid"]) != dim:
            raise ProfileFormatError(f"embedding {data.get('name')!r}: centroid or projection is not {dim}-D")
        features = tuple(feature_from_dict(f) for f in data["features"])
        if not all(isinstance(f, NumericalFeature) for f in features):
            raise ProfileFormatError(f"embedding {data.get('name')!r}: derived features must be numerical")
        profile = cls(
            name=str(data["name"]),
            dim=dim,
            count=int(data["count"]),
            missing=int(data["missing"]),
            centroid=tuple(float(c) for c in data["centroid"]),
            rms_radius=float(data["rms_radius"]),
            projection=projection,
            features=features,  # type: ignore[arg-type]
        )
        if [f.name for f in features] != profile.derived_names():
            raise ProfileFormatError(f"embedding {profile.name!r}: derived features are not {profile.derived_names()}")
        return profile


def build_embedding(name: str, vectors: FloatArray, *, projections: int, seed: int) -> EmbeddingProfile:
    """Centroid, RMS radius and sign projections of the rows of ``vectors`` without NaN or inf."""
    finite = np.isfinite(vectors).all(axis=1)
    good = vectors[finite]
    dim = vectors.shape[1]
    if dim == 0:
        raise InputDataError(f"embedding {name!r} has no dimensions")
    centroid = good.mean(axis=0) if len(good) else np.zeros(dim)
    radius = float(np.sqrt(((good - centroid) ** 2).sum(axis=1).mean())) if len(good) else 0.0
    signs = np.random.default_rng(seed).integers(0, 2, size=(projections, dim)) * 2 - 1
    return EmbeddingProfile(
        name=name,
        dim=dim,
        count=int(finite.sum()),
        missing=int((~finite).sum()),
        centroid=tuple(float(c) for c in centroid),
        rms_radius=radius,
        projection=tuple(tuple(int(s) for s in row) for row in signs),
    )
