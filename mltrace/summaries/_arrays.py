"""Array helpers: deterministic sampling, list conversion and statistics over finite values.

Speed comes from computing an ``isfinite`` mask once, then plain ufunc reductions on a contiguous
float64 copy (``np.nanmin`` and friends are several times slower), and no BLAS. ``np.errstate``
(about 1 µs) is entered only when a sum could overflow.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ._keys import INF_COUNT, MAX, MEAN, MIN, NAN_COUNT, STD
from ._values import Summary

STAT_KINDS = "biuf"  # dtype kinds that get min/max/mean/std
_SAFE = 1e300  # sums below this cannot overflow float64


def plain_moments_fit(lo: float, hi: float, n: int) -> bool:
    """Whether the sum and the squared deviations of ``n`` values in ``[lo, hi]`` stay finite.

    Bounded by the largest magnitude, not the spread: with values near 1e200 the mean's rounding
    error alone (~1e184) overflows when squared, however close together the values are.
    """
    big = max(-lo, hi)
    return big * n < _SAFE and big * big * n < _SAFE


def flat_step(shape: tuple[int, ...], limit: int) -> int:
    """A stride through the flattened array that takes at most ``limit`` elements.

    Coprime with the row length (the product of the trailing axes), so the sample visits every
    column rather than the same few: a stride of 10 through 1,000-wide rows would see only
    columns 0, 10, 20, ...
    """
    size = math.prod(shape)
    step = max(1, -(-size // limit))
    row = math.prod(shape[1:])
    for _ in range(64):
        if math.gcd(step, row) == 1:
            break
        step += 1
    return step


def stride_sample(arr: np.ndarray, limit: int) -> np.ndarray:
    """``arr`` itself when small, else a view of about ``limit`` evenly strided elements.

    Statistics do not depend on order, so an F-ordered array is strided in memory order too.
    """
    size = arr.size
    if size <= limit:
        return arr
    if arr.flags.c_contiguous:
        return arr.reshape(-1)[:: flat_step(arr.shape, limit)]
    if arr.flags.f_contiguous:
        return arr.T.reshape(-1)[:: flat_step(arr.T.shape, limit)]
    factor = size / limit
    slices = []
    for dim in arr.shape:  # stride the leading axes first, so rows stay whole when they can
        step = min(dim, math.ceil(factor)) if factor > 1 else 1
        slices.append(slice(None, None, step))
        factor /= step
    return arr[tuple(slices)]


def _row_size(first: object) -> int:
    size = 1
    item = first
    for _ in range(32):
        if isinstance(item, np.ndarray):
            return size * max(1, item.size)
        if not isinstance(item, list | tuple) or not item:
            break
        size *= len(item)
        item = item[0]
    return size


def list_array(seq: Sequence[Any], limit: int) -> tuple[np.ndarray, int] | None:
    """A numeric array from a list of numbers (or nested lists), and the row step used.

    Lists whose rows add up to more than ``limit`` elements are converted from every ``step``-th
    row only. None when the list is ragged, mixed or not numeric.
    """
    n = len(seq)
    rows = max(1, limit // _row_size(seq[0]))
    step = 1 if n <= rows else -(-n // rows)
    try:
        arr = np.asarray(seq if step == 1 else seq[::step])
    except (ValueError, TypeError, OverflowError):
        return None
    if arr.dtype.kind not in "biufc":
        return None
    return arr, step


def _squares(d: np.ndarray) -> float:
    """Sum of squares, in place. Not ``np.dot``: multithreaded BLAS took 1.2 ms for 100k values."""
    np.multiply(d, d, out=d)
    return float(np.add.reduce(d))


def moments(x: np.ndarray, *, scratch: bool = False) -> tuple[float, float, float, float]:
    """min, max, mean, population std of a non-empty 1-D float64 array of finite values.

    ``scratch``: ``x`` is ours to overwrite (saves an allocation the size of the sample).
    """
    lo = float(np.minimum.reduce(x))
    hi = float(np.maximum.reduce(x))
    n = x.size
    if plain_moments_fit(lo, hi, n):
        mean = float(np.add.reduce(x)) / n
        return lo, hi, mean, math.sqrt(_squares(np.subtract(x, mean, out=x if scratch else None)) / n)
    scale = max(-lo, hi)  # huge values: work on x / scale, which cannot overflow
    with np.errstate(all="ignore"):
        scaled = x / scale
        mean = float(np.add.reduce(scaled)) / n
        dev = math.sqrt(_squares(scaled - mean) / n)
    return lo, hi, mean * scale, dev * scale


def _as_float64(x: np.ndarray) -> np.ndarray:
    if x.dtype == np.float64:
        return x
    if x.dtype.kind == "f" and x.dtype.itemsize > 8:  # longdouble: may overflow float64
        with np.errstate(all="ignore"):
            x = x.astype(np.float64)
        kept: np.ndarray = x[np.isfinite(x)]
        return kept
    return x.astype(np.float64)


def put_moments(out: Summary, x: np.ndarray, prefix: str = "", *, std: bool = True, scratch: bool = False) -> None:
    """min/max/mean (and std) of finite float64 values under ``prefix``; nothing when empty."""
    if x.size == 0:
        return
    lo, hi, mean, dev = moments(x, scratch=scratch)
    out[prefix + MIN] = lo
    out[prefix + MAX] = hi
    if math.isfinite(mean):
        out[prefix + MEAN] = mean
    if std and math.isfinite(dev):
        out[prefix + STD] = dev


def finite_part(sample: np.ndarray) -> tuple[np.ndarray, int, int]:
    """A flat float64 array of the finite values, with the NaN and inf counts."""
    x = np.ascontiguousarray(sample).reshape(-1)
    nan = inf = 0
    if x.dtype.kind == "f":
        fin = np.isfinite(x)
        kept = int(np.count_nonzero(fin))
        if kept != x.size:
            nan = int(np.count_nonzero(np.isnan(x)))
            inf = x.size - kept - nan
            x = x[fin]
    return _as_float64(x), nan, inf


def put_stats(out: Summary, sample: np.ndarray) -> None:
    """nan_count, inf_count and min/max/mean/std (finite values) of a numeric array."""
    kind = sample.dtype.kind
    if kind in STAT_KINDS:
        x, nan, inf = finite_part(sample)
        out[NAN_COUNT] = nan
        out[INF_COUNT] = inf
        put_moments(out, x, scratch=not np.may_share_memory(x, sample))
    elif kind == "c":
        nan = int(np.count_nonzero(np.isnan(sample)))
        out[NAN_COUNT] = nan
        out[INF_COUNT] = sample.size - int(np.count_nonzero(np.isfinite(sample))) - nan
    elif kind in "mM":
        out[NAN_COUNT] = int(np.count_nonzero(np.isnat(sample)))


def put_columns(out: Summary, block: np.ndarray, keys: Sequence[str]) -> None:
    """Per-column min/max/mean/nan_count of a 2-D numeric block, one key prefix per column."""
    rows = block.shape[0]
    with np.errstate(all="ignore"):
        block = np.ascontiguousarray(block, dtype=np.float64)
        fin = np.isfinite(block)
        counts = fin.sum(axis=0)
        if int(counts.min()) == rows:
            lo, hi, total = block.min(axis=0), block.max(axis=0), block.sum(axis=0)
        else:
            lo = np.where(fin, block, np.inf).min(axis=0)
            hi = np.where(fin, block, -np.inf).max(axis=0)
            total = np.where(fin, block, 0.0).sum(axis=0)
        means = total / np.maximum(counts, 1)
    for key, count, low, high, mean in zip(
        keys, counts.tolist(), lo.tolist(), hi.tolist(), means.tolist(), strict=True
    ):
        out[f"{key}.{NAN_COUNT}"] = rows - count
        if count:
            out[f"{key}.{MIN}"] = low
            out[f"{key}.{MAX}"] = high
            if math.isfinite(mean):
                out[f"{key}.{MEAN}"] = mean
