"""pandas DataFrames and Series, summarised only when pandas is already imported by the caller.

pandas is never imported here: an object can only be a DataFrame if its module is loaded, so
``sys.modules`` tells us whether to look.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from . import _fingerprint
from ._arrays import finite_part, put_columns, put_moments, put_stats
from ._keys import (
    DTYPE,
    FEATURES_TRUNCATED,
    KIND,
    N_FEATURES,
    N_ROWS,
    NAN_COUNT,
    SAMPLE_SIZE,
    SAMPLED,
    SHAPE,
    SIZE,
    TYPE,
)
from ._numeric import put_fingerprint, summarize_array
from ._tabular import put_value
from ._values import Summary, feature_key, shape_list, text

_MAX_HASHED_COLUMNS = 256
_ARRAY_KINDS = "biufcmM"  # columns hashed as one numpy array (no pandas hashing)


def pandas_kind(obj: object) -> str | None:
    """The kind, ``dataframe`` or ``series``, when ``obj`` is one (pandas already loaded)."""
    pd = sys.modules.get("pandas")
    if pd is None:
        return None
    frame, series = getattr(pd, "DataFrame", None), getattr(pd, "Series", None)
    if isinstance(frame, type) and isinstance(obj, frame):
        return "dataframe"
    if isinstance(series, type) and isinstance(obj, series):
        return "series"
    return None


def _is_numeric(pd: Any, dtype: Any) -> bool:
    return bool(pd.api.types.is_numeric_dtype(dtype)) and getattr(dtype, "kind", "") != "c"


def _row_step(n_rows: int, width: int, limit: int) -> int:
    return max(1, -(-n_rows // max(1, limit // max(1, width))))


def _put_series_column(out: Summary, pd: Any, key: str, col: Any) -> None:
    if _is_numeric(pd, col.dtype):
        x, nan, inf = finite_part(col.to_numpy(dtype=np.float64, na_value=np.nan))
        out[f"{key}.{NAN_COUNT}"] = nan + inf
        put_moments(out, x, f"{key}.", std=False)
    else:
        out[f"{key}.{TYPE}"] = text(str(col.dtype))
        out[f"{key}.{NAN_COUNT}"] = int(col.isna().sum())


def _put_frame_columns(out: Summary, pd: Any, sub: Any, keys: list[str]) -> None:
    """Numeric columns in one block (one pandas call, vectorised stats); the others one by one."""
    numeric = [j for j, dtype in enumerate(sub.dtypes) if _is_numeric(pd, dtype)]
    if numeric:
        block = sub.iloc[:, numeric].to_numpy(dtype=np.float64, na_value=np.nan)
        put_columns(out, block, [keys[j] for j in numeric])
    if len(numeric) < len(keys):
        chosen = set(numeric)
        for j, (_, col) in enumerate(sub.items()):
            if j not in chosen:
                _put_series_column(out, pd, keys[j], col)


def summarize_frame(out: Summary, df: Any, max_features: int, limit: int) -> None:
    pd = sys.modules["pandas"]
    n_rows, n_cols = df.shape
    out[KIND] = "dataframe"
    out[SHAPE] = [int(n_rows), int(n_cols)]
    out[SIZE] = int(n_rows * n_cols)
    out[N_ROWS] = int(n_rows)
    out[N_FEATURES] = int(n_cols)
    if n_cols > max_features:
        out[FEATURES_TRUNCATED] = True
    count = min(n_cols, max_features)
    keys = [feature_key(name) for name in df.columns[:count]]
    if n_rows == 1:
        for j, key in enumerate(keys):
            put_value(out, key, df.iat[0, j], limit)
    elif n_rows > 1 and count:
        step = _row_step(n_rows, count, limit)
        sub = df.iloc[::step, :count]
        if step > 1:
            out[SAMPLED] = True
            out[SAMPLE_SIZE] = len(sub)
        _put_frame_columns(out, pd, sub, keys)
    _put_pandas_fingerprint(out, pd, df, limit)


def summarize_series(out: Summary, series: Any, max_features: int, limit: int) -> None:
    pd = sys.modules["pandas"]
    dtype = series.dtype
    if isinstance(dtype, np.dtype):  # numpy-backed: same summary and fingerprint as the array
        arr = series.to_numpy()
        summarize_array(out, arr, "series", max_features, limit)
        if dtype.kind == "O":
            out[NAN_COUNT] = int(series.iloc[:: _row_step(len(series), 1, limit)].isna().sum())
        return
    n = len(series)
    out[KIND] = "series"
    out[SHAPE] = shape_list(series.shape)
    out[DTYPE] = text(str(dtype))
    out[SIZE] = int(n)
    step = _row_step(n, 1, limit)
    sub = series.iloc[::step]
    if step > 1:
        out[SAMPLED] = True
        out[SAMPLE_SIZE] = len(sub)
    if _is_numeric(pd, dtype):
        put_stats(out, sub.to_numpy(dtype=np.float64, na_value=np.nan))
    else:
        out[NAN_COUNT] = int(sub.isna().sum())
    _put_pandas_fingerprint(out, pd, series, limit)


def _put_pandas_fingerprint(out: Summary, pd: Any, obj: Any, limit: int) -> None:
    try:
        fingerprint = _pandas_fingerprint(pd, obj, limit)
    except (TypeError, ValueError):  # unhashable cells (lists, dicts): no fingerprint
        return
    put_fingerprint(out, fingerprint)


def _pandas_fingerprint(pd: Any, obj: Any, limit: int) -> tuple[str, bool]:
    """Shape, column names and dtypes, and pandas' own stable per-row hashes (sampled when large)."""
    sampled = False
    is_frame = obj.ndim == 2
    shape = str(obj.shape).encode()
    if is_frame and obj.shape[1] > _MAX_HASHED_COLUMNS:
        obj = obj.iloc[:, :: -(-obj.shape[1] // _MAX_HASHED_COLUMNS)]
        sampled = True
    width = obj.shape[1] if is_frame else 1
    step = _row_step(len(obj), width, limit)
    if step > 1:
        obj = obj.iloc[::step]
        sampled = True
    names = [str(c) for c in obj.columns] if is_frame else [str(obj.name)]
    dtypes = list(obj.dtypes) if is_frame else [obj.dtype]
    names_hash, names_sampled = _fingerprint.of_object([names, [str(t) for t in dtypes]])
    content = b""
    if all(isinstance(t, np.dtype) and t.kind in _ARRAY_KINDS for t in dtypes):
        values = np.asarray(obj.to_numpy())
        if values.dtype.kind != "O":  # datetimes beside numbers come out as objects
            digest, values_sampled = _fingerprint.of_array(values)
            content, sampled = digest.encode(), sampled or values_sampled
    if not content:
        content = pd.util.hash_pandas_object(obj, index=False).to_numpy().tobytes()
    digest = _fingerprint.of_parts(
        b"frame" if is_frame else b"series", shape, b"%d" % step, names_hash.encode(), content
    )
    return digest, sampled or names_sampled
