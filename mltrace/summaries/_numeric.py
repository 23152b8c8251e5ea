"""numpy arrays, numeric lists and scalars: shape, dtype, counts and statistics over finite values."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import _fingerprint, _memo
from ._arrays import STAT_KINDS, put_stats, stride_sample
from ._keys import (
    DTYPE,
    FINGERPRINT,
    FINGERPRINT_SAMPLED,
    INF_COUNT,
    KIND,
    LENGTH,
    N_ROWS,
    NAN_COUNT,
    SAMPLE_SIZE,
    SAMPLED,
    SHAPE,
    SIZE,
    VALUE,
)
from ._tabular import put_array_features
from ._values import Summary, dtype_text, number, shape_list, text

_SAMPLED_KINDS = "biufcmM"  # dtype kinds whose statistics come from a sample when large


def put_fingerprint(out: Summary, fingerprint: tuple[str, bool]) -> None:
    out[FINGERPRINT] = fingerprint[0]
    if fingerprint[1]:
        out[FINGERPRINT_SAMPLED] = True


def put_array_body(out: Summary, arr: np.ndarray, max_features: int, limit: int) -> None:
    """Counts and statistics (from a strided sample when large), and 2-D per-feature stats."""
    kind = arr.dtype.kind
    if kind not in _SAMPLED_KINDS:
        return
    sample = stride_sample(arr, limit)
    if sample is not arr:
        out[SAMPLED] = True
        out[SAMPLE_SIZE] = int(sample.size)
    put_stats(out, sample)
    if arr.ndim == 2 and kind in STAT_KINDS:
        put_array_features(out, arr, max_features, limit)


def summarize_array(out: Summary, arr: np.ndarray, kind: str, max_features: int, limit: int) -> None:
    """An array's summary, into an empty ``out``; from the memo when the same content was just seen."""
    digest, sampled = _fingerprint.array_digest(arr)
    dtype = dtype_text(arr.dtype)
    entry = None
    if not sampled and arr.size <= limit and not arr.dtype.hasobject:
        entry = _memo.key(digest, kind, dtype, max_features, limit)
        found = _memo.recall(entry)
        if found is not None:
            out.update(found)
            return
    out[KIND] = kind
    out[SHAPE] = shape_list(arr.shape)
    out[DTYPE] = dtype
    out[SIZE] = int(arr.size)
    put_array_body(out, arr, max_features, limit)
    put_fingerprint(out, (_fingerprint.short(digest), sampled))
    if entry is not None:
        _memo.remember(entry, out)


def summarize_numeric_list(
    out: Summary, seq: Sequence[Any], arr: np.ndarray, step: int, kind: str, max_features: int, limit: int
) -> None:
    """A list converted to ``arr`` (from every ``step``-th row when it was large).

    Unsampled, the fingerprint equals that of ``np.asarray(seq)``.
    """
    n = len(seq)
    if step == 1:
        summarize_array(out, arr, kind, max_features, limit)
        out[LENGTH] = n
        return
    shape = (n, *arr.shape[1:])
    out[KIND] = kind
    out[SHAPE] = shape_list(shape)
    out[DTYPE] = dtype_text(arr.dtype)
    out[SIZE] = n * (arr.size // max(1, len(arr)))
    out[LENGTH] = n
    out[SAMPLED] = True
    out[SAMPLE_SIZE] = int(arr.size)
    put_array_body(out, arr, max_features, limit)
    if N_ROWS in out:
        out[N_ROWS] = n
    put_fingerprint(out, _fingerprint.of_sampled_array(arr, shape, step))


def summarize_scalar(out: Summary, value: object) -> None:
    out[KIND] = "scalar"
    out[DTYPE] = dtype_text(value.dtype) if isinstance(value, np.generic) else text(type(value).__name__)
    scalar = number(value)
    if scalar is not None:
        out[VALUE] = scalar
    elif isinstance(value, float | np.floating):
        out[NAN_COUNT] = int(math.isnan(value))
        out[INF_COUNT] = int(math.isinf(value))
    put_fingerprint(out, _fingerprint.of_object(value))
