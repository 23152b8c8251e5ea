"""``summarize``: dispatch on the payload's type, never raise, keep nothing."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Mapping, Sequence, Set
from typing import Any, cast

import numpy as np

from . import _fingerprint
from ._arrays import list_array
from ._fast import summarize_small
from ._flat import SHORT
from ._frames import pandas_kind, summarize_frame, summarize_series
from ._keys import DTYPE, ERROR, ITEM_TYPE, KIND, LENGTH, SHAPE, SIZE, TYPE
from ._numeric import put_fingerprint, summarize_array, summarize_numeric_list, summarize_scalar
from ._tabular import put_records, summarize_mapping
from ._torch import is_tensor, summarize_tensor
from ._values import MAX_ITEMS, Summary, shape_list, text, type_name

_SCALARS = (float, int, bool, complex)
_NUMERIC_ITEMS = (int, float, list, tuple, np.ndarray, np.number, np.bool_)
_KINDS = {
    np.ndarray: "ndarray",
    float: "scalar",
    int: "scalar",
    bool: "scalar",
    complex: "scalar",
    str: "str",
    bytes: "bytes",
    dict: "dict",
    list: "list",
    tuple: "tuple",
    type(None): "none",
}
_TYPE_SAMPLE = 64  # elements looked at to name a list's item type


def summarize(obj: object, *, max_features: int = 16, sample_size: int = 100_000) -> Summary:
    """A small, bounded set of attributes describing ``obj``; keys are unprefixed.

    Never raises: a failure returns ``{"kind": ..., "error": "<ExceptionType>"}``. Never keeps a
    reference to ``obj``. Text is never recorded, only its length (and, in the fingerprint, its
    hash). Statistics of inputs larger than ``sample_size`` elements come from a deterministic
    strided subsample (``sampled=True``). At most ``max_features`` features are described, so a
    summary has at most ``20 + 4 * max_features`` keys.
    """
    short = SHORT.get(type(obj))  # scalars, str, None, flat dicts: the general path's summary, sooner
    if short is not None and type(max_features) is int and type(sample_size) is int:
        try:
            out = short(obj, max_features if max_features > 0 else 0)
        except Exception:
            out = None  # the general path gives the error summary
        if out is not None:
            return out
        return _guarded(obj, max_features, sample_size, fast=False)  # none of these is a list or array
    return _guarded(obj, max_features, sample_size, fast=True)


def summarize_general(obj: object, *, max_features: int = 16, sample_size: int = 100_000) -> Summary:
    """``summarize`` without the short paths (``_fast.py``, ``_flat.py``): what they must equal.

    Internal, for tests and benchmarks. The memo still applies: clear it (``_memo.clear()``) before
    comparing the two paths.
    """
    return _guarded(obj, max_features, sample_size, fast=False)


def _guarded(obj: object, max_features: int, sample_size: int, *, fast: bool) -> Summary:
    try:
        features, limit = max(0, int(max_features)), max(1, int(sample_size))
        small = summarize_small(obj, features, limit) if fast else None
        if small is not None:
            return small
        out: Summary = {}
        _summarize(out, obj, features, limit)
        return out
    except Exception as exc:
        return {KIND: _kind_of(obj), ERROR: text(type(exc).__name__)}


def _kind_of(obj: object) -> str:
    return _KINDS.get(type(obj), "object")


def _summarize(out: Summary, obj: object, max_features: int, limit: int) -> None:
    cls = type(obj)
    if cls is np.ndarray:
        summarize_array(out, obj, "ndarray", max_features, limit)  # type: ignore[arg-type]
    elif obj is None:
        out[KIND] = "none"
    elif cls in _SCALARS:
        summarize_scalar(out, obj)
    elif isinstance(obj, str):
        out[KIND] = "str"
        out[LENGTH] = len(obj)
        put_fingerprint(out, _fingerprint.of_object(obj))
    elif isinstance(obj, dict):
        summarize_mapping(out, obj, "dict", max_features, limit)
        put_fingerprint(out, _fingerprint.of_object(obj))
    elif isinstance(obj, list | tuple):
        _summarize_sequence(out, obj, max_features, limit)
    elif isinstance(obj, np.ndarray):  # subclasses: matrix, masked array, memmap
        summarize_array(out, obj.view(np.ndarray), "ndarray", max_features, limit)
    elif isinstance(obj, (np.generic, *_SCALARS)):
        summarize_scalar(out, obj)
    elif isinstance(obj, bytes | bytearray | memoryview):
        _summarize_bytes(out, obj)
    else:
        _summarize_other(out, obj, max_features, limit)


def _summarize_sequence(out: Summary, seq: Sequence[Any], max_features: int, limit: int) -> None:
    kind = "tuple" if isinstance(seq, tuple) else "list"
    if seq:
        first = seq[0]
        if isinstance(first, dict):
            out[KIND] = "records"
            put_records(out, seq, max_features, limit)
            put_fingerprint(out, _fingerprint.of_object(seq))
            return
        if isinstance(first, _NUMERIC_ITEMS):
            converted = list_array(seq, limit)
            if converted is not None:
                summarize_numeric_list(out, seq, *converted, kind, max_features, limit)
                return
    out[KIND] = kind
    out[LENGTH] = len(seq)
    if seq:
        types = {type(item) for item in seq[:_TYPE_SAMPLE]}
        out[ITEM_TYPE] = type_name(seq[0]) if len(types) == 1 else "mixed"
    put_fingerprint(out, _fingerprint.of_object(seq))


def _summarize_bytes(out: Summary, data: bytes | bytearray | memoryview) -> None:
    out[KIND] = "bytes"
    view = memoryview(data)
    out[SIZE] = view.nbytes
    if view.c_contiguous:
        put_fingerprint(out, _fingerprint.of_bytes(view.cast("B")))


def _summarize_other(out: Summary, obj: object, max_features: int, limit: int) -> None:
    kind = pandas_kind(obj)
    if kind == "dataframe":
        summarize_frame(out, obj, max_features, limit)
    elif kind == "series":
        summarize_series(out, obj, max_features, limit)
    elif is_tensor(obj):
        summarize_tensor(out, obj, max_features, limit)
    elif (fields := _model_fields(obj)) is not None:
        summarize_mapping(out, fields[1], fields[0], max_features, limit)
        out[TYPE] = type_name(obj)
        put_fingerprint(out, _fingerprint.of_object(fields[1]))
    elif isinstance(obj, Set | Mapping):
        out[KIND] = "set" if isinstance(obj, Set) else "mapping"
        out[TYPE] = type_name(obj)
        out[LENGTH] = len(obj)
    else:
        out[KIND] = "object"
        out[TYPE] = type_name(obj)
        _put_array_like(out, obj)


def _model_fields(obj: object) -> tuple[str, dict[str, Any]] | None:
    """("pydantic", model_dump()) or ("dataclass", its fields, shallow) or None."""
    pydantic = sys.modules.get("pydantic")
    base = getattr(pydantic, "BaseModel", None) if pydantic is not None else None
    if isinstance(base, type) and isinstance(obj, base):
        return "pydantic", cast(Any, obj).model_dump()
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return "dataclass", {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}
    return None


def _put_array_like(out: Summary, obj: object) -> None:
    """shape and dtype of an array from a library we do not know (jax, cupy, ...), never its data."""
    shape = getattr(obj, "shape", None)
    dtype = getattr(obj, "dtype", None)
    if not isinstance(shape, tuple) or dtype is None or len(shape) > MAX_ITEMS:
        return
    if all(isinstance(d, int) for d in shape):
        out[SHAPE] = shape_list(shape)
        out[DTYPE] = text(str(dtype))
        out[SIZE] = int(np.prod(shape, dtype=np.int64))
