"""Attribute value types and the conversions that keep every value a bounded, finite primitive."""

from __future__ import annotations

import math
import sys
from typing import Any, TypeAlias

import numpy as np

from .._types import AttrValue as AttrValue

Summary: TypeAlias = dict[str, AttrValue]

MAX_TEXT = 128  # characters in any string value
MAX_ITEMS = 16  # items in any list value
MAX_NAME = 64  # characters of a feature name inside a key

_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1


def text(value: str) -> str:
    return value if len(value) <= MAX_TEXT else value[:MAX_TEXT]


_DTYPE_TEXT: dict[np.dtype[Any], str] = {}  # str(dtype) costs ~2.7 µs; dtypes in use are few


def dtype_text(dtype: np.dtype[Any]) -> str:
    name = _DTYPE_TEXT.get(dtype)
    if name is None:
        name = text(str(dtype))
        if len(_DTYPE_TEXT) < 256 and dtype.fields is None:  # equal structs may print differently
            _DTYPE_TEXT[dtype] = name
    return name


def type_name(obj: object) -> str:
    cls = type(obj)
    name = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    return text(name)


def shape_list(shape: tuple[int, ...]) -> list[int]:
    return [int(d) for d in shape[:MAX_ITEMS]]


def feature_key(name: object) -> str:
    label = name if type(name) is str else str(name)
    return "feature." + (label if len(label) <= MAX_NAME else label[:MAX_NAME])


def finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def number(value: object) -> bool | int | float | None:
    """A bool, int64-range int or finite float for a Python or numpy number; None otherwise."""
    if isinstance(value, bool):
        return value
    if type(value) is float:
        return value if math.isfinite(value) else None
    if isinstance(value, int | np.integer):
        as_int = int(value)  # type: ignore[call-overload]
        if _INT64_MIN <= as_int <= _INT64_MAX:
            return as_int
        try:
            return finite(float(as_int))
        except OverflowError:
            return None
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, float | np.floating):
        return finite(float(value))
    return None


def is_missing(value: object) -> bool:
    """None, a NaN/inf float, or pandas' NA/NaT (without importing pandas)."""
    if value is None:
        return True
    if isinstance(value, float | np.floating):
        return not math.isfinite(value)
    pd = sys.modules.get("pandas")
    return pd is not None and (value is getattr(pd, "NA", None) or value is getattr(pd, "NaT", None))
