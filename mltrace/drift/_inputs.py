"""Turning the shapes users hand us (arrays, frames, records, column dicts) into columns."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from .._errors import InputDataError
from ._features import to_float

FloatArray = npt.NDArray[np.float64]
AnyArray = npt.NDArray[Any]


def is_dataframe(data: object) -> bool:
    """A pandas DataFrame, recognised without importing pandas."""
    return type(data).__name__ == "DataFrame" and hasattr(data, "columns") and hasattr(data, "iloc")


def _names_or_default(n: int, feature_names: Sequence[str] | None) -> list[str]:
    if feature_names is None:
        return [f"x{j}" for j in range(n)]
    names = [str(name) for name in feature_names]
    if len(names) != n:
        raise InputDataError(f"feature_names has {len(names)} names for {n} columns")
    return names


def columns_of(data: object, feature_names: Sequence[str] | None = None) -> tuple[list[str], list[AnyArray]]:
    """``(names, columns)`` of tabular data: a 2-D array, a DataFrame, records or a column dict.

    With a DataFrame, records or a column dict, ``feature_names`` selects (and orders) columns;
    with an array it names them (default ``x0, x1, ...``).
    """
    if is_dataframe(data):
        frame: Any = data
        available = [str(c) for c in frame.columns]
        names = available if feature_names is None else [str(n) for n in feature_names]
        _require(names, available)
        lookup = {str(c): c for c in frame.columns}
        return names, [np.asarray(frame[lookup[n]].to_numpy()) for n in names]
    if isinstance(data, Mapping):
        available = [str(k) for k in data]
        names = available if feature_names is None else [str(n) for n in feature_names]
        _require(names, available)
        lookup = {str(k): k for k in data}
        cols = [_as_column(data[lookup[n]]) for n in names]
        lengths = {len(c) for c in cols}
        if len(lengths) > 1:
            raise InputDataError(f"columns have different lengths: {sorted(lengths)}")
        return names, cols
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)) and data and isinstance(data[0], Mapping):
        records: Sequence[Mapping[str, Any]] = data  # type: ignore[assignment]
        if feature_names is None:
            seen: dict[str, None] = {}
            for record in records:
                for key in record:
                    seen.setdefault(str(key), None)
            names = list(seen)
        else:
            names = [str(n) for n in feature_names]
        return names, [_as_column([r.get(n) for r in records]) for n in names]
    array = np.asarray(data)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise InputDataError(f"expected 2-D data (rows x features); got shape {array.shape}")
    names = _names_or_default(array.shape[1], feature_names)
    return names, [array[:, j] for j in range(array.shape[1])]


def _require(names: Sequence[str], available: Sequence[str]) -> None:
    missing = [n for n in names if n not in set(available)]
    if missing:
        raise InputDataError(f"columns not found: {missing}; available: {list(available)[:20]}")


def _as_column(values: object) -> AnyArray:
    if isinstance(values, np.ndarray):
        return values.reshape(-1) if values.ndim > 1 and values.shape[-1] == 1 else values
    if hasattr(values, "to_numpy"):
        return np.asarray(values.to_numpy())
    array = np.asarray(values)
    if array.ndim == 1:
        return array
    out = np.empty(len(array), dtype=object)  # a column of sequences stays one column of objects
    for i, value in enumerate(list(values)):  # type: ignore[call-overload]
        out[i] = value
    return out


def as_float_column(column: AnyArray) -> FloatArray:
    """A float64 view or copy of a column; entries that are not numbers become NaN."""
    if column.dtype.kind in "fiu":
        return np.asarray(column, dtype=np.float64)
    if column.dtype.kind == "b":
        return column.astype(np.float64)
    try:
        if column.dtype.kind == "O":
            raise TypeError
        return np.asarray(column, dtype=np.float64)
    except (TypeError, ValueError):
        return np.fromiter((to_float(v) for v in column), dtype=np.float64, count=len(column))


def looks_numeric(column: AnyArray) -> bool:
    """Whether a column is numerical: a number dtype, or objects of which at least 95% (of the
    first 1000 present) read as numbers; the rest then count as missing values."""
    kind = column.dtype.kind
    if kind in "fiu":
        return True
    if kind in "bUS":
        return False
    present = numbers = 0
    for value in column[: min(len(column), 1000)].tolist():
        if value is None or (isinstance(value, float) and value != value):
            continue
        present += 1
        if isinstance(value, bool):
            return False
        if isinstance(value, (int, float, np.integer, np.floating)) or to_float(value) == to_float(value):
            numbers += 1
    return numbers >= 0.95 * present  # an all-missing column is numerical
