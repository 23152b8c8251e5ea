"""Small numeric inputs in pure Python: the summary the numpy path gives, without numpy's dispatch.

A served request summarises with cold CPU caches, where numpy's per-call machinery costs far more
than the arithmetic on a few dozen numbers: a 32-float list took 93 µs cold through numpy. This
path covers the common serving shapes up to :data:`FAST_MAX` elements: a flat list or tuple of
exact ``float``/``int`` (or one such row inside a list, ``[[...]]``), and a C-contiguous native
float64/float32/int64 ndarray of shape ``(n,)`` or ``(1, n)``. Anything else, and any input with a
NaN, an inf or a value large enough for the sums to need scaling, returns None and takes the numpy
path.

The output is the numpy path's, key for key and bit for bit: the sums follow numpy's pairwise
summation (:func:`pairwise_sum`), and the fingerprint hashes the same header and bytes. One
exception, by choice: when the smallest (or largest) value is a zero that occurs with both signs,
``min`` (``max``) here is the first such zero, where numpy's SIMD reduction picks a sign that
depends on the positions; the two compare equal. Summaries go through the memo (``_memo.py``).
"""

from __future__ import annotations

import hashlib
import math
import sys
from array import array
from collections.abc import Callable, Sequence
from functools import reduce
from operator import add
from typing import Any

import numpy as np

from . import _memo
from ._arrays import plain_moments_fit
from ._fingerprint import short
from ._keys import (
    DTYPE,
    FEATURES_TRUNCATED,
    FINGERPRINT,
    INF_COUNT,
    KIND,
    LENGTH,
    MAX,
    MEAN,
    MIN,
    N_FEATURES,
    N_ROWS,
    NAN_COUNT,
    SHAPE,
    SIZE,
    STD,
)
from ._tabular import index_keys
from ._values import Summary

FAST_MAX = 128  # elements: past this, pure Python loses warm and gains little cold (bench_summaries.py --sweep)
_BLOCK = 128  # numpy's PW_BLOCKSIZE
_INT64_MIN = -(2**63)
_UINT64_END = 2**64
_LITTLE = sys.byteorder == "little"  # the fingerprint hashes little-endian bytes
_FLOAT = frozenset({float})
_INT = frozenset({int})
_MIXED = frozenset({int, float})
_HEADERS: dict[tuple[str, tuple[int, ...]], Any] = {}  # a hash fed the fingerprint's header, per dtype and shape
_ARRAY_DTYPES = {np.dtype(np.float64): "float64", np.dtype(np.float32): "float32", np.dtype(np.int64): "int64"}


def _run_reduce(values: Sequence[float], start: float = 0.0) -> float:
    return reduce(add, values, start)


# Left-to-right float addition, as numpy's accumulators do it. ``sum`` does that in C up to 3.11;
# from 3.12 it compensates rounding errors, so it would no longer match numpy.
_run: Callable[..., float] = sum if sys.version_info < (3, 12) else _run_reduce


def pairwise_sum(values: Sequence[float]) -> float:
    """``float(np.add.reduce(np.array(values)))``, bit for bit: numpy's pairwise summation.

    numpy starts from the identity 0.0 and sums blocks of up to 128 values with eight interleaved
    accumulators, combining them as ``((r0+r1)+(r2+r3))+((r4+r5)+(r6+r7))`` and adding the last
    ``n % 8`` values one by one; longer runs are split in two at a multiple of eight. (The sign of
    a zero accumulator never shows: the result adds it to something nonzero or to the 0.0.)
    """
    n = len(values)
    return 0.0 + (_run(values, -0.0) if n < 8 else _pairwise(values, 0, n))


def _pairwise(a: Sequence[float], lo: int, n: int) -> float:
    if n > _BLOCK:
        half = n // 2
        half -= half % 8
        return _pairwise(a, lo, half) + _pairwise(a, lo + half, n - half)
    end = lo + n - n % 8
    run = _run
    r0, r1, r2, r3 = run(a[lo:end:8]), run(a[lo + 1 : end : 8]), run(a[lo + 2 : end : 8]), run(a[lo + 3 : end : 8])
    r4, r5 = run(a[lo + 4 : end : 8]), run(a[lo + 5 : end : 8])
    r6, r7 = run(a[lo + 6 : end : 8]), run(a[lo + 7 : end : 8])
    return run(a[end : lo + n], ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7)))


def summarize_small(obj: object, max_features: int, limit: int) -> Summary | None:
    """The summary of a small numeric list, tuple or ndarray; None for anything else."""
    cls = type(obj)
    if cls is list or cls is tuple:
        return _sequence(obj, "tuple" if cls is tuple else "list", max_features, limit)  # type: ignore[arg-type]
    if cls is np.ndarray:
        return _ndarray(obj, max_features, limit)  # type: ignore[arg-type]
    return None


def _sequence(seq: list[Any] | tuple[Any, ...], kind: str, max_features: int, limit: int) -> Summary | None:
    n = len(seq)
    if not 0 < n <= min(FAST_MAX, limit) or not _LITTLE:
        return None
    row = seq[0]
    if type(row) is list or type(row) is tuple:  # a single-row batch, [[...]]
        if n != 1:
            return None
        size = len(row)
        if not 0 < size <= min(FAST_MAX, limit):
            return None
        shape: tuple[int, ...] = (1, size)
    else:
        row, shape = seq, (n,)
    types = set(map(type, row))
    data: array[Any]
    values: Sequence[float]
    if types == _FLOAT:
        data, values, dtype = array("d", row), row, "float64"
    elif types == _INT:
        try:
            data = array("q", row)  # int64, as np.asarray makes it; beyond that numpy picks another dtype
        except OverflowError:
            return None
        values, dtype = list(map(float, row)), "int64"
    elif types == _MIXED:
        ints = [v for v in row if type(v) is int]
        if min(ints) < _INT64_MIN or max(ints) >= _UINT64_END:  # numpy makes an object array
            return None
        data = array("d", row)
        values, dtype = data.tolist(), "float64"
        row = values  # the features of a float64 row are floats
    else:
        return None
    out = _summary(kind, shape, dtype, values, data, row, max_features, limit)
    if out is not None:
        out[LENGTH] = n
    return out


def _ndarray(arr: np.ndarray, max_features: int, limit: int) -> Summary | None:
    dtype = _ARRAY_DTYPES.get(arr.dtype)
    shape = arr.shape
    if dtype is None or not (len(shape) == 1 or (len(shape) == 2 and shape[0] == 1)):
        return None
    size = shape[-1]
    if not 0 < size <= min(FAST_MAX, limit) or not arr.flags.c_contiguous:
        return None
    items = arr.tolist() if len(shape) == 1 else arr.tolist()[0]
    values = items if dtype != "int64" else list(map(float, items))
    return _summary("ndarray", shape, dtype, values, arr, items, max_features, limit)


def _summary(
    kind: str,
    shape: tuple[int, ...],
    dtype: str,
    values: Sequence[float],
    data: Any,
    items: list[Any] | tuple[Any, ...],
    max_features: int,
    limit: int,
) -> Summary | None:
    """Statistics of finite ``values``, features of a single row, and the fingerprint of ``data``.

    ``data`` is a buffer of the values in ``dtype``; ``items`` the row's values as numpy's
    ``tolist`` gives them. None when a value is not finite or the sums would need scaling.
    """
    started = _HEADERS.get((dtype, shape))
    if started is None:
        started = hashlib.sha256(b"nd%s|%s|" % (dtype.encode(), str(shape).encode()))
        if len(_HEADERS) < 1024:
            _HEADERS[dtype, shape] = started
    h = started.copy()  # a third of the cost of a new one, cold
    h.update(data)
    digest = h.digest()
    entry = _memo.key(digest, kind, dtype, max_features, limit)
    found = _memo.recall(entry)
    if found is not None:
        return found
    n = len(values)
    total = pairwise_sum(values)
    if not math.isfinite(total):  # a NaN or an inf (or an overflow): the numpy path counts them
        return None
    lo = min(values)
    hi = max(values)
    if not plain_moments_fit(lo, hi, n):
        return None
    mean = total / n
    std = math.sqrt(pairwise_sum([(d := v - mean) * d for v in values]) / n)
    if not math.isfinite(std):  # huge equal-ish values: the mean's rounding error squared overflows
        return None  # numpy's path warns and leaves std out
    out: Summary = {
        KIND: kind,
        SHAPE: list(shape),
        DTYPE: dtype,
        SIZE: n,
        NAN_COUNT: 0,
        INF_COUNT: 0,
        MIN: lo,
        MAX: hi,
        MEAN: mean,
        STD: std,
    }
    if len(shape) == 2:
        _put_row(out, items, max_features)
    out[FINGERPRINT] = short(digest)
    _memo.remember(entry, out)
    return out


def _put_row(out: Summary, items: list[Any] | tuple[Any, ...], max_features: int) -> None:
    """A (1, n) input's features, as ``put_array_features`` records them: each value itself."""
    n = len(items)
    out[N_ROWS] = 1
    out[N_FEATURES] = n
    if n > max_features:
        out[FEATURES_TRUNCATED] = True
    count = min(n, max_features)
    out.update(zip(index_keys(count), items[:count], strict=True))
