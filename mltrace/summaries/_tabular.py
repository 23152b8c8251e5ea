"""Tabular inputs: a dict of features (one row), a list of records, a 2-D array of unnamed columns.

One row records each feature's value (numbers and bools only: a string records its length, never
its text). Many rows record ``mean``/``min``/``max``/``nan_count`` per feature, from a
deterministic subsample of rows when there are more than ``sample_size`` cells.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence, Sized
from itertools import islice
from typing import Any

import numpy as np

from ._arrays import STAT_KINDS, finite_part, list_array, put_columns, put_moments, stride_sample
from ._keys import (
    FEATURES_TRUNCATED,
    KIND,
    LENGTH,
    N_FEATURES,
    N_ROWS,
    NAN_COUNT,
    SAMPLE_SIZE,
    SAMPLED,
    SIZE,
    TYPE,
)
from ._values import Summary, feature_key, is_missing, number, type_name

_INDEX_KEYS = tuple(feature_key(j) for j in range(256))
_NUMBER_TYPES = frozenset({int, float, bool, type(None)})


def index_keys(count: int) -> list[str]:
    return [_INDEX_KEYS[j] if j < len(_INDEX_KEYS) else feature_key(j) for j in range(count)]


def put_value(out: Summary, key: str, value: object, limit: int) -> None:
    """One feature of one row: the number itself, else its size and stats, length or type."""
    cls = type(value)
    if cls is float:
        if math.isfinite(value):  # type: ignore[arg-type]
            out[key] = value  # type: ignore[assignment]
        else:
            out[f"{key}.{NAN_COUNT}"] = 1
        return
    scalar = number(value)
    if scalar is not None:
        out[key] = scalar
    elif is_missing(value):
        out[f"{key}.{NAN_COUNT}"] = 1
    elif isinstance(value, str | bytes | bytearray):
        out[f"{key}.{LENGTH}"] = len(value)
    elif not _put_numeric_items(out, key, value, limit):
        if isinstance(value, Sized) and not isinstance(value, np.ndarray):
            out[f"{key}.{LENGTH}"] = len(value)
        else:
            out[f"{key}.{TYPE}"] = type_name(value)


def _put_numeric_items(out: Summary, key: str, value: object, limit: int) -> bool:
    if isinstance(value, np.ndarray):
        arr, size = value, value.size
    elif isinstance(value, list | tuple) and value:
        converted = list_array(value, limit)
        if converted is None:
            return False
        arr, step = converted
        size = arr.size if step == 1 else len(value) * (arr.size // max(1, len(arr)))
    else:
        return False
    if arr.dtype.kind not in STAT_KINDS:
        return False
    out[f"{key}.{SIZE}"] = int(size)
    put_moments(out, finite_part(stride_sample(arr, limit))[0], f"{key}.", std=False)
    return True


def put_features(out: Summary, mapping: Mapping[Any, Any], max_features: int, limit: int) -> None:
    n = len(mapping)
    out[N_ROWS] = 1
    out[N_FEATURES] = n
    if n > max_features:
        out[FEATURES_TRUNCATED] = True
    for name, value in islice(mapping.items(), max_features):
        put_value(out, feature_key(name), value, limit)


def put_column(out: Summary, key: str, values: list[Any]) -> None:
    """mean/min/max/nan_count of a column of Python values; type and nan_count if not numeric."""
    types = set(map(type, values))
    if all(t in _NUMBER_TYPES or issubclass(t, np.integer | np.floating | np.bool_) for t in types):
        try:
            col = np.array(values, dtype=np.float64)  # None becomes NaN
        except (OverflowError, ValueError, TypeError):
            col = None
        if col is not None:
            x, _, _ = finite_part(col)
            out[f"{key}.{NAN_COUNT}"] = len(values) - x.size
            put_moments(out, x, f"{key}.", std=False)
            return
    present = types - {type(None)}
    if len(present) == 1:
        out[f"{key}.{TYPE}"] = type_name(values[next(i for i, v in enumerate(values) if v is not None)])
    else:
        out[f"{key}.{TYPE}"] = "mixed" if present else "none"
    out[f"{key}.{NAN_COUNT}"] = sum(1 for v in values if v is None)


def put_records(out: Summary, rows: Sequence[Any], max_features: int, limit: int) -> None:
    """A list of dicts: features named by the first row's keys; other rows may lack some."""
    first = rows[0]
    if len(rows) == 1:
        put_features(out, first, max_features, limit)
        return
    names = list(islice(first, max_features))
    out[N_ROWS] = len(rows)
    out[N_FEATURES] = len(first)
    if len(first) > max_features:
        out[FEATURES_TRUNCATED] = True
    if not names:
        return
    step = max(1, -(-len(rows) // max(1, limit // len(names))))
    sample = rows[::step] if step > 1 else rows
    if step > 1:
        out[SAMPLED] = True
        out[SAMPLE_SIZE] = len(sample)
    dicts = [row if isinstance(row, dict) else {} for row in sample]
    for name in names:
        put_column(out, feature_key(name), [row.get(name) for row in dicts])


def put_array_features(out: Summary, arr: np.ndarray, max_features: int, limit: int) -> None:
    """A 2-D numeric array as rows × unnamed features ``feature.0``, ``feature.1``, ..."""
    n_rows, n_cols = arr.shape
    out[N_ROWS] = n_rows
    out[N_FEATURES] = n_cols
    if n_cols > max_features:
        out[FEATURES_TRUNCATED] = True
    count = min(n_cols, max_features)
    if not count or not n_rows:
        return
    keys = index_keys(count)
    if n_rows == 1:
        for key, value in zip(keys, arr[0, :count].tolist(), strict=True):
            put_value(out, key, value, limit)
        return
    step = max(1, -(-n_rows // max(1, limit // count)))
    put_columns(out, arr[::step, :count], keys)


def summarize_mapping(out: Summary, mapping: Mapping[Any, Any], kind: str, max_features: int, limit: int) -> None:
    out[KIND] = kind
    put_features(out, mapping, max_features, limit)
