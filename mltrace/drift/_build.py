"""Building feature summaries from columns: moments and quantile edges, then bin counts."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ._binning import NumericBinner, usable_edges
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
    partial = [_numeric_partial(j, name, col, sample, bins, resolution) for j, (name, col) in enumerate(numeric_cols)]
    binner = NumericBinner([(p["min"] or 0.0, p["max"] or 0.0, p["edges"]) for p in partial], missing_code=-1)
    numeric: list[FeatureProfile] = []
    for j, ((_, col), p) in enumerate(zip(numeric_cols, partial, strict=True)):
        k = len(p["edges"]) + 1
        finite = col[np.isfinite(col)]
        codes = binner.column_codes(j, finite) if len(finite) else np.zeros(0, dtype=np.int64)
        counts = np.bincount(codes, minlength=k + 2)[1 : k + 1]
        numeric.append(NumericalFeature(counts=tuple(int(c) for c in counts), **p))
    out: list[FeatureProfile] = []
    it = iter(numeric)
    for name, col, is_cat in zip(names, columns, kinds, strict=True):
        out.append(_categorical(name, col, max_categories) if is_cat else next(it))
    out.extend(it)
    return out


def _numeric_partial(
    j: int,
    name: str,
    col: FloatArray,
    sample: npt.NDArray[np.int64] | None,
    bins: int,
    resolution: int,
) -> dict[str, Any]:
    finite_mask = np.isfinite(col)
    values = col if finite_mask.all() else col[finite_mask]
    count = len(values)
    base: dict[str, Any] = {"name": name, "count": count, "missing": len(col) - count}
    if count == 0:
        return {
            **base,
            "mean": None,
            "std": None,
            "min": None,
            "max": None,
            "quantiles": (),
            "edges": (),
            "bin_edges": (),
        }
    picked = col[sample] if sample is not None else col
    picked = picked[np.isfinite(picked)]
    if len(picked) == 0:
        picked = values[: len(sample) if sample is not None else None]
    levels = fine_levels(resolution)
    raw = np.quantile(picked, np.concatenate([levels, QUANTILE_LEVELS]))
    named = raw[len(levels) :]
    fine_raw = raw[: len(levels)]
    lo, hi = float(values.min()), float(values.max())
    edges = usable_edges(j, lo, hi, np.unique(fine_raw).tolist())
    at_level = dict(zip(levels.tolist(), fine_raw.tolist(), strict=True))
    kept = set(edges)
    bin_edges = tuple(sorted({at_level[t / bins] for t in range(1, bins)} & kept))
    with np.errstate(over="ignore", invalid="ignore"):
        mean, std = float(values.mean()), float(values.std())
    return {
        **base,
        "mean": mean,
        "std": std,
        "min": lo,
        "max": hi,
        "quantiles": tuple((lvl, float(v)) for lvl, v in zip(QUANTILE_LEVELS, named, strict=True)),
        "edges": edges,
        "bin_edges": bin_edges,
    }


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
    if hasattr(column, "dtype") and column.dtype.kind == "b":
        counter: Counter[str | None] = Counter({"True": int(column.sum()), "False": int((~column).sum())})
    else:
        counter = Counter(category_key(v) for v in column.tolist())
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
