"""A group of reference features compiled into flat numpy tables for the hot path.

One group is either a profile's inputs (its features, then each embedding's derived features) or
its outputs. Every table has one row per feature and one column per bin code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ._binning import NumericBinner, n_codes_for, numeric_spec
from ._features import CategoricalFeature, FeatureProfile, NumericalFeature

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]


def _mid_p_two_sided(counts: Sequence[int]) -> list[float]:
    """Per fine bin: two-sided mid-p of a value in that bin, ``2 min(F_mid, 1 - F_mid)``."""
    total = float(sum(counts)) or 1.0
    out: list[float] = []
    below = 0.0
    for c in counts:
        mid = (below + 0.5 * c) / total
        out.append(min(1.0, 2 * min(mid, 1 - mid)))
        below += c
    return out


def _mid_p_upper(counts: Sequence[int]) -> list[float]:
    """Per fine bin: one-sided (upper tail) mid-p, ``1 - F_mid``."""
    total = float(sum(counts)) or 1.0
    out: list[float] = []
    below = 0.0
    for c in counts:
        out.append(min(1.0, 1 - (below + 0.5 * c) / total))
        below += c
    return out


def _mid_p_categories(counts: Sequence[int]) -> list[float]:
    """Per category: the probability of a category at most as frequent (mid-p on ties)."""
    total = float(sum(counts)) or 1.0
    out: list[float] = []
    for c in counts:
        rarer = sum(o for o in counts if o < c)
        tied = sum(o for o in counts if o == c)
        out.append((rarer + 0.5 * tied) / total)
    return out


def _w_null_scale(counts: FloatArray, widths: FloatArray) -> float:
    """``sqrt(2/pi) * integral sqrt(F (1 - F)) dx``: with no drift, the mean of ``sqrt(n_eff) * W``
    (its Brownian-bridge limit), integrated over the reference's fine bins (CDF linear in each)."""
    total = counts.sum()
    if total <= 0:
        return 0.0
    cdf = np.concatenate([[0.0], np.cumsum(counts) / total])
    grid = np.linspace(0.0, 1.0, 9)
    inner = cdf[:-1, None] + np.diff(cdf)[:, None] * grid[None, :]
    root = np.sqrt(np.clip(inner * (1 - inner), 0, None)).mean(axis=1)
    return float(math.sqrt(2 / math.pi) * float((root * widths).sum()))


class CompiledGroup:
    """Reference tables for a group of features (numerical before categorical in code order)."""

    def __init__(self, features: Sequence[FeatureProfile], one_sided: frozenset[str] = frozenset()) -> None:
        self.features = tuple(features)
        self.names = tuple(f.name for f in features)
        self.m = m = len(features)
        self.n_codes = c = n_codes_for(features)
        self.missing_code = c - 1
        self.dtype: type[np.unsignedinteger] = np.uint8 if c <= 256 else np.uint16  # type: ignore[type-arg]
        self.numeric_pos = np.array(
            [i for i, f in enumerate(features) if isinstance(f, NumericalFeature)], dtype=np.int64
        )
        self.categorical_pos = [i for i, f in enumerate(features) if isinstance(f, CategoricalFeature)]
        numeric = [f for f in features if isinstance(f, NumericalFeature)]
        self.binner = NumericBinner([numeric_spec(f) for f in numeric], self.missing_code, self.numeric_pos.tolist(), m)
        self.category_codes = [
            {key: i for i, (key, _) in enumerate(f.categories)} for f in features if isinstance(f, CategoricalFeature)
        ]
        self.is_numeric = np.array([isinstance(f, NumericalFeature) for f in features], dtype=bool)
        self.ref_counts = np.zeros((m, c), dtype=np.float64)
        #: reference values behind the bin proportions (the sample, for big numerical columns)
        self.ref_n = np.array(
            [float(sum(f.counts)) if isinstance(f, NumericalFeature) else float(f.count) for f in features]
        )
        self.inv_ref_n = 1.0 / np.maximum(self.ref_n, 1.0)
        self.ref_missing_rate = np.array(
            [f.missing / (f.count + f.missing) if f.count + f.missing else 0.0 for f in features]
        )
        self.pvalue = np.ones((m, c), dtype=np.float64)
        self.widths = np.zeros((m, c - 1), dtype=np.float64)
        self.std = np.ones(m, dtype=np.float64)
        self.w_null_scale = np.zeros(m, dtype=np.float64)
        ends: list[list[int]] = []
        for i, f in enumerate(features):
            ends.append(self._fill(i, f, f.name in one_sided))
        width = max((len(e) for e in ends), default=1)
        self.group_end = np.array([e + [e[-1]] * (width - len(e)) for e in ends], dtype=np.int64).reshape(m, width)
        self.group_flat = (self.group_end + (np.arange(m, dtype=np.int64) * (c - 1))[:, None]).ravel()
        #: the same positions in the transposed ``(codes, features)`` cumulative counts
        self.group_flat_t = (self.group_end * m + np.arange(m, dtype=np.int64)[:, None]).ravel()
        ref_groups = self.coarse(self.ref_counts)
        self.ref_groups = ref_groups
        self.df = np.maximum((ref_groups > 0).sum(axis=1) - 1, 1)
        self.chi = -2.0 * np.log(self.pvalue)
        self.chi_flat = self.chi.ravel()
        self.row_offset = np.arange(m, dtype=np.int64) * c
        ref_fine = self.ref_counts[:, :-1]
        self.ref_cdf = np.cumsum(ref_fine, axis=1) / np.maximum(ref_fine.sum(axis=1, keepdims=True), 1.0)
        padded = np.concatenate([self.widths, np.zeros((m, 1))], axis=1)
        #: weight of |F_ref - F_cur| at each right bin edge when the CDFs are linear inside bins
        self.edge_weight = 0.5 * (padded[:, :-1] + padded[:, 1:])

    def _fill(self, i: int, f: FeatureProfile, one_sided: bool) -> list[int]:
        total = f.count + f.missing
        extreme = 1.0 / (self.ref_n[i] + 1)
        self.pvalue[i, self.missing_code] = max(f.missing / total if total else 0.0, 1.0 / (total + 1))
        self.ref_counts[i, self.missing_code] = f.missing
        if isinstance(f, NumericalFeature):
            k = len(f.counts)
            self.ref_counts[i, 1 : k + 1] = f.counts
            fine = _mid_p_upper(f.counts) if one_sided else _mid_p_two_sided(f.counts)
            self.pvalue[i, 1 : k + 1] = np.maximum(fine, extreme)
            self.pvalue[i, 0] = 1.0 if one_sided else extreme
            self.pvalue[i, k + 1] = extreme
            if f.min is not None and f.max is not None:
                bounds = np.array([f.min, *f.edges, f.max], dtype=np.float64)
                self.widths[i, 1 : k + 1] = np.diff(bounds)
                spread = f.std if f.std else f.max - f.min
                self.std[i] = spread if spread and math.isfinite(spread) else 1.0
                self.w_null_scale[i] = _w_null_scale(np.asarray(f.counts, float), np.diff(bounds)) / self.std[i]
            position = {edge: t for t, edge in enumerate(f.edges)}
            return [position[e] + 1 for e in f.bin_edges] + [k + 1]
        k = len(f.categories)
        counts = [n for _, n in f.categories]
        self.ref_counts[i, :k] = counts
        self.ref_counts[i, k] = f.other
        self.pvalue[i, :k] = np.maximum(_mid_p_categories([*counts, f.other]), extreme)[:k]
        self.pvalue[i, k] = max(0.5 * f.other / f.count if f.count else 0.0, extreme)
        return list(range(k + 1))

    def coarse(self, counts: FloatArray) -> FloatArray:
        """Sum fine code counts ``(m, n_codes)`` into the coarse bins PSI and JS use (missing excluded)."""
        return self.coarse_from_cumulative(np.cumsum(counts[:, :-1], axis=1))

    def coarse_from_cumulative(self, cum: npt.NDArray[Any]) -> npt.NDArray[Any]:
        """Coarse bin counts from cumulative fine counts (padding bins come out zero)."""
        at = cum.ravel()[self.group_flat].reshape(self.group_end.shape)
        out = np.array(at, copy=True)
        out[:, 1:] -= at[:, :-1]
        return out

    def coarse_from_cumulative_t(self, cum_t: npt.NDArray[Any]) -> FloatArray:
        """:meth:`coarse_from_cumulative` of integer counts given transposed, ``(codes, features)``
        C-ordered, as floats: the same integer differences (exact), converted once."""
        at = cum_t.take(self.group_flat_t).reshape(self.group_end.shape)
        out = np.empty(at.shape, dtype=np.float64)
        out[:, 0] = at[:, 0]
        np.subtract(at[:, 1:], at[:, :-1], out=out[:, 1:], casting="unsafe")
        return out
