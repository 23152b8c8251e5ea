"""Building feature summaries from columns: moments and quantile edges, then bin counts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ._binning import edge_keys, feature_offset, inverse_span, keys, usable_edges
from ._features import QUANTILE_LEVELS, CategoricalFeature, FeatureProfile, NumericalFeature, category_key
from ._inputs import as_float_column, looks_numeric

FloatArray = npt.NDArray[np.float64]
AnyArray = npt.NDArray[Any]


def build_group(
    names: Sequence[str],
    columns: Sequence[AnyArray],
    categorical: Collection[str],
    *,
    bins: int,
    resolution: int,
    max_categories: int,
    sample: npt.NDArray[np.int64] | None,
    extra: Sequence[tuple[str, FloatArray]] = (),
) -> list[FeatureProfile]:
    """Summaries of ``columns`` (then of the numerical ``extra`` columns), in that order.

    Numerical features are numbered in this order; their bin codes depend on that number, so a
    monitor compiles them in the same order (see ``_binning``).
    """
    kinds = [name in categorical or not looks_numeric(col) for name, col in zip(names, columns, strict=True)]
    numeric_cols: list[tuple[str, FloatArray]] = [
        (name, as_float_column(col)) for name, col, is_cat in zip(names, columns, kinds, strict=True) if not is_cat
    ]
    numeric_cols.extend(extra)
    numeric = iter([_numerical(j, name, col, sample, bins, resolution) for j, (name, col) in enumerate(numeric_cols)])
    out: list[FeatureProfile] = []
    for name, col, is_cat in zip(names, columns, kinds, strict=True):
        out.append(_categorical(name, col, max_categories) if is_cat else next(numeric))
    out.extend(numeric)
    return out


def _numerical(
    j: int,
    name: str,
    column: FloatArray,
    sample: npt.NDArray[np.int64] | None,
    bins: int,
    resolution: int,
) -> NumericalFeature:
    """Moments and range from every value; quantile edges and bin counts from the (sorted) sample.

    Counts come from binary searches of the edge keys in the sorted sample's keys, which bins
    exactly as ``NumericBinner.codes`` does value by value, at the cost of one sort.
    """
    col = np.ascontiguousarray(column, dtype=np.float64)
    finite = np.isfinite(col)
    all_finite = bool(finite.all())
    values = col if all_finite else col[finite]
    count = len(values)
    if count == 0:
        return NumericalFeature(
            name=name, count=0, missing=len(col), mean=None, std=None, min=None, max=None,
            quantiles=(), edges=(), counts=(0,), bin_edges=(),
        )  # fmt: skip
    picked = col[sample] if sample is not None else col
    if not all_finite:
        picked = picked[np.isfinite(picked)]
    if len(picked) == 0:
        picked = values
    ordered = np.sort(picked)
    levels = fine_levels(resolution)
    raw = _sorted_quantiles(ordered, np.concatenate([levels, QUANTILE_LEVELS]))
    fine_raw, named = raw[: len(levels)], raw[len(levels) :]
    lo, hi = float(values.min()), float(values.max())
    edges = usable_edges(j, lo, hi, np.unique(fine_raw).tolist())
    at_level = dict(zip(levels.tolist(), fine_raw.tolist(), strict=True))
    bin_edges = tuple(sorted({at_level[t / bins] for t in range(1, bins)} & set(edges)))
    inv, offset = inverse_span(lo, hi), feature_offset(j)
    boundaries = np.searchsorted(keys(ordered, lo, inv, offset), edge_keys(j, lo, hi, edges), side="left")
    with np.errstate(over="ignore", invalid="ignore"):
        mean, std = float(values.mean()), float(values.std())
    return NumericalFeature(
        name=name,
        count=count,
        missing=len(col) - count,
        mean=mean,
        std=std,
        min=lo,
        max=hi,
        quantiles=tuple((lvl, float(v)) for lvl, v in zip(QUANTILE_LEVELS, named, strict=True)),
        edges=edges,
        counts=tuple(int(c) for c in np.diff(boundaries)),
        bin_edges=bin_edges,
    )


def _sorted_quantiles(ordered: FloatArray, levels: FloatArray) -> FloatArray:
    """Quantiles of sorted values, linear interpolation (numpy's default method)."""
    position = levels * (len(ordered) - 1)
    below = np.floor(position).astype(np.int64)
    above = np.minimum(below + 1, len(ordered) - 1)
    frac = position - below
    return np.asarray(ordered[below] + frac * (ordered[above] - ordered[below]), dtype=np.float64)


#: extra fine levels in the tails, so that the outermost bins are narrow (better tail p-values and
#: Wasserstein) without spending bins on the bulk
TAIL_LEVELS = (0.0005, 0.002, 0.005)


def fine_levels(resolution: int) -> npt.NDArray[np.float64]:
    """Quantile levels of the fine edges: ``k / resolution`` plus :data:`TAIL_LEVELS` in both tails."""
    levels = {k / resolution for k in range(1, resolution)}
    step = 1 / resolution
    levels |= {t for t in TAIL_LEVELS if t < step} | {1 - t for t in TAIL_LEVELS if t < step}
    return np.array(sorted(levels), dtype=np.float64)


def _categorical(name: str, column: AnyArray, max_categories: int) -> CategoricalFeature:
    counter = _category_counts(column)
    missing = counter.pop(None, 0)
    ranked = sorted(((k, n) for k, n in counter.items() if k is not None and n > 0), key=lambda kv: (-kv[1], kv[0]))
    top = [(str(k), int(n)) for k, n in ranked[:max_categories]]
    other = sum(n for _, n in ranked[max_categories:])
    return CategoricalFeature(
        name=name,
        count=sum(n for _, n in ranked),
        missing=int(missing),
        categories=tuple(top),
        other=int(other),
        cardinality=len(ranked),
    )


def _category_counts(column: AnyArray) -> Counter[str | None]:
    """Counts by category key; ``np.unique`` first (fast), a per-value pass for mixed objects."""
    counter: Counter[str | None] = Counter()
    try:
        uniques, counts = np.unique(column, return_counts=True)
    except TypeError:  # unorderable mixtures (None among strings, numbers among text)
        counter.update(category_key(v) for v in column.tolist())
        return counter
    for value, n in zip(uniques.tolist(), counts.tolist(), strict=True):
        counter[category_key(value)] += int(n)
    return counter
