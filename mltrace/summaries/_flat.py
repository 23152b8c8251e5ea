"""Scalars, strings and flat dicts without the general machinery: the general path's summary, sooner.

A served request summarises a feature dict, an output dict and a score, with cold CPU caches: the
general path's dispatch, ``put_value`` per feature and the fingerprint's ``_Walker`` cost several
times the work itself there (a 3-float dict: ~40 µs cold, ~20 here; a float: ~32, ~14).
``summarize`` looks the payload's exact type up in :data:`SHORT` before anything else. It covers

- exact ``float``, ``int`` (in the int64 range) and ``bool`` scalars, and numpy ``float64``,
  ``float32``, ``int64``, ``int32`` and ``bool_`` scalars; None; an exact ``str`` short enough to
  be hashed whole;
- an exact ``dict`` of at most :data:`DICT_MAX` entries, with ``str`` keys and values of exact
  ``float``, ``int`` (in the int64 range), ``bool``, ``str`` or None among the features described
  (past ``max_features``, any type the fingerprint hashes in one piece).

Anything else returns None and takes the general path. The output is the general path's, key for
key, type for type and bit for bit, fingerprint included: it hashes the same bytes
(``marshal`` format 2 for Python values, with the walker's ``{n|`` header for a dict; the array
header and the value's bytes for a numpy scalar; the walker's length header and UTF-8 for a str).
Nothing here is memoised or kept; the hashes are started ahead and copied, which with cold caches
costs a fraction of a new one (``hashlib.sha256()`` fetches the algorithm from OpenSSL each time).
"""

from __future__ import annotations

import hashlib
import marshal
import math
import struct
from collections.abc import Callable
from itertools import islice
from typing import Any

import numpy as np

from ._fingerprint import _FLAT, FULL_HASH_BYTES, NODE_BUDGET, hash_fingerprint
from ._keys import (
    DTYPE,
    FEATURE_PREFIX,
    FEATURES_TRUNCATED,
    FINGERPRINT,
    INF_COUNT,
    KIND,
    LENGTH,
    N_FEATURES,
    N_ROWS,
    NAN_COUNT,
    VALUE,
)
from ._values import MAX_NAME, Summary, dtype_text

DICT_MAX = 256  # entries; well inside the walker's node budget, so it always hashes the dict in one piece
_INT64_MIN = -(2**63)
_INT64_MAX = 2**63 - 1
_STR = frozenset({str})
_NAN_KEY = "." + NAN_COUNT
_LENGTH_KEY = "." + LENGTH
_dumps = marshal.dumps
_isfinite = math.isfinite
_pack_double = struct.Struct("<d").pack  # marshal format 2 writes a float as b"g" and these 8 bytes
_EMPTY = hashlib.sha256()
_FLOAT_HEADER = hashlib.sha256(b"g")
_DICT_HEADERS: list[Any] = [None] * (DICT_MAX + 1)  # by size: a hash fed the walker's b"{n|"

_Short = Callable[[Any, int], Summary | None]

assert DICT_MAX < NODE_BUDGET and _dumps(0.5, 2) == b"g" + _pack_double(0.5)


def _fingerprint(data: bytes) -> str:
    h = _EMPTY.copy()
    h.update(data)
    return hash_fingerprint(h)


def _float(value: float, max_features: int) -> Summary:
    h = _FLOAT_HEADER.copy()
    h.update(_pack_double(value))
    fingerprint = hash_fingerprint(h)
    if _isfinite(value):
        return {KIND: "scalar", DTYPE: "float", VALUE: value, FINGERPRINT: fingerprint}
    nan = 1 if value != value else 0
    return {KIND: "scalar", DTYPE: "float", NAN_COUNT: nan, INF_COUNT: 1 - nan, FINGERPRINT: fingerprint}


def _int(value: int, max_features: int) -> Summary | None:
    if not _INT64_MIN <= value <= _INT64_MAX:  # the general path records it as a float, or not at all
        return None
    return {KIND: "scalar", DTYPE: "int", VALUE: value, FINGERPRINT: _fingerprint(_dumps(value, 2))}


_BOOLS = {flag: _fingerprint(_dumps(flag, 2)) for flag in (False, True)}


def _bool(value: bool, max_features: int) -> Summary:
    return {KIND: "scalar", DTYPE: "bool", VALUE: value, FINGERPRINT: _BOOLS[value]}


def _none(value: None, max_features: int) -> Summary:
    return {KIND: "none"}


def _str(value: str, max_features: int) -> Summary | None:
    n = len(value)
    if n > FULL_HASH_BYTES // 4:  # the walker hashes a sample
        return None
    h = _EMPTY.copy()
    h.update(b"s%d|" % n)
    h.update(value.encode("utf-8", "surrogatepass"))
    return {KIND: "str", LENGTH: n, FINGERPRINT: hash_fingerprint(h)}


def _numpy_scalar(cls: type[np.generic], convert: Callable[[Any], bool | int | float]) -> _Short:
    """The summary of a numpy scalar of type ``cls``: its value as ``convert`` makes it, and the
    fingerprint of the 0-d array it is (header, then its native bytes)."""
    dtype = dtype_text(np.dtype(cls))
    header = hashlib.sha256(b"nd%s|()|" % dtype.encode())
    floating = issubclass(cls, np.floating)

    def summary(value: Any, max_features: int) -> Summary:
        h = header.copy()
        h.update(value.tobytes())
        fingerprint = hash_fingerprint(h)
        number = convert(value)
        if not floating or _isfinite(number):
            return {KIND: "scalar", DTYPE: dtype, VALUE: number, FINGERPRINT: fingerprint}
        nan = 1 if number != number else 0
        return {KIND: "scalar", DTYPE: dtype, NAN_COUNT: nan, INF_COUNT: 1 - nan, FINGERPRINT: fingerprint}

    return summary


def flat_dict(mapping: dict[Any, Any], max_features: int) -> Summary | None:
    """The summary of an exact dict of at most DICT_MAX str-keyed scalars or strings; else None."""
    n = len(mapping)
    if n > DICT_MAX:
        return None
    out: Summary = {KIND: "dict", N_ROWS: 1, N_FEATURES: n}
    if n > max_features:
        if not (set(map(type, mapping)) <= _STR and set(map(type, mapping.values())) <= _FLAT):
            return None
        out[FEATURES_TRUNCATED] = True
        items: Any = islice(mapping.items(), max_features)
    else:
        items = mapping.items()
    for name, value in items:
        if type(name) is not str:
            return None
        key = FEATURE_PREFIX + name if len(name) <= MAX_NAME else FEATURE_PREFIX + name[:MAX_NAME]
        cls = type(value)
        if cls is float:
            if _isfinite(value):
                out[key] = value
            else:
                out[key + _NAN_KEY] = 1
        elif cls is bool:
            out[key] = value
        elif cls is int:
            if not _INT64_MIN <= value <= _INT64_MAX:
                return None
            out[key] = value
        elif cls is str:
            out[key + _LENGTH_KEY] = len(value)
        elif value is None:
            out[key + _NAN_KEY] = 1
        else:
            return None
    blob = _dumps(mapping, 2)
    if len(blob) > FULL_HASH_BYTES:  # the walker hashes it item by item
        return None
    h = _DICT_HEADERS[n]
    if h is None:
        h = _DICT_HEADERS[n] = hashlib.sha256(b"{%d|" % n)
    h = h.copy()
    h.update(blob)
    out[FINGERPRINT] = hash_fingerprint(h)
    return out


SHORT: dict[type, _Short] = {
    float: _float,
    int: _int,
    bool: _bool,
    type(None): _none,
    str: _str,
    dict: flat_dict,
    np.float64: _numpy_scalar(np.float64, float),
    np.float32: _numpy_scalar(np.float32, float),
    np.int64: _numpy_scalar(np.int64, int),
    np.int32: _numpy_scalar(np.int32, int),
    np.bool_: _numpy_scalar(np.bool_, bool),
}
"""The short path by exact type: each takes the payload and ``max_features`` (at least 0), and
gives its summary or None."""


def summarize_flat(obj: object, max_features: int) -> Summary | None:
    """The short path's summary of ``obj``, or None where the general path is needed."""
    short = SHORT.get(type(obj))
    return None if short is None else short(obj, max(0, max_features))
