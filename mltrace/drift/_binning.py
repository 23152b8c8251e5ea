"""Bin codes: raw values to small integers, for every feature of a group at once.

A numerical feature's codes are ``0`` (below the reference minimum), ``1..K`` (its ``K`` fine
reference-quantile bins) and ``K + 1`` (above the reference maximum); a categorical feature's
are ``0..K-1`` (its stored categories) and ``K`` (other or unseen). Code ``n_codes - 1`` is
*missing* for every feature. Codes fit in ``uint8`` for up to 253 fine bins or categories.

All numerical features are binned by one ``np.searchsorted``: feature ``j``'s value ``x`` becomes
the key ``clip(x / s_j + (o_j - min_j / s_j), o_j - 1, o_j + 2)`` with ``s_j = max_j - min_j`` and
``o_j = 4 j + 1.5``, so each feature owns its own stretch of the key line and one sorted array holds
every feature's edge keys. The map is monotone, so bins are exact up to rounding at about 1e-12
of the feature's range; the same arithmetic bins the reference when a profile is built, so
reference and live codes agree exactly.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from .._errors import InputDataError

try:  # the clip ufunc itself: np.clip reaches it through two Python wrappers (1.6 us against 0.65 here)
    from numpy._core.umath import clip as _clip  # type: ignore[attr-defined,unused-ignore]
except ImportError:  # numpy 1.x
    from numpy.core.umath import clip as _clip  # type: ignore[attr-defined,unused-ignore,no-redef]
from ._features import FeatureProfile, NumericalFeature

#: the clip ufunc, for the other modules of the hot path
clip_ufunc = _clip

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

STRIDE = 4.0

#: The one-row search runs over the keys' bit patterns viewed as ``uint64`` (0.25 us less than the
#: float search at 100 features, 5.0 against 5.3 us; from _group.BIT_SEARCH_MIN features, below which
#: the view costs more than it saves): an integer compare, no NaN handling. It gives
#: the float search's index for every mapped value: after the clip a value is either a NaN or a
#: finite float in ``[o_j - 1, o_j + 2]``, at least 0.5 (so never -0.0, and +-inf clip to the
#: bounds); for non-negative floats the unsigned bit pattern is monotone in the value; any NaN,
#: of either sign, has the exponent all ones and a non-zero fraction, so its pattern is above
#: +inf's (0x7FF0...) and every finite key's: past the end, where numpy's float search puts NaN.
KEY_BITS = np.uint64


def feature_offset(j: int) -> float:
    """Where numerical feature ``j``'s keys start on the shared key line."""
    return STRIDE * j + 1.5


def inverse_span(lo: float, hi: float) -> float:
    span = hi - lo
    return 1.0 / span if span > 0 and math.isfinite(span) else 1.0


def keys(values: npt.ArrayLike, lo: float, inv: float, offset: float) -> FloatArray:
    """Map raw values of one feature to its keys (NaN stays NaN)."""
    u = np.asarray(values, dtype=np.float64) * inv
    u += offset - lo * inv
    np.minimum(u, offset + 2.0, out=u)
    np.maximum(u, offset - 1.0, out=u)
    return u


def usable_edges(j: int, lo: float, hi: float, edges: Sequence[float]) -> tuple[float, ...]:
    """The edges in ``(lo, hi]`` whose keys are strictly increasing (ties and duplicates dropped)."""
    if not edges:
        return ()
    inv = inverse_span(lo, hi)
    arr = np.asarray(edges, dtype=np.float64)
    k = keys(arr, lo, inv, feature_offset(j))
    k_lo = keys(np.array([lo]), lo, inv, feature_offset(j))[0]
    k_hi = keys(np.array([hi]), lo, inv, feature_offset(j))[0]
    kept: list[float] = []
    last = k_lo
    for edge, key in zip(arr.tolist(), k.tolist(), strict=True):
        if lo < edge <= hi and last < key <= k_hi:
            kept.append(edge)
            last = key
    return tuple(kept)


def edge_keys(j: int, lo: float, hi: float, edges: Sequence[float]) -> FloatArray:
    """Feature ``j``'s boundary keys: its minimum, its edges, and just above its maximum.

    A value's code is the number of boundary keys at or below its key: 0 below the minimum,
    ``1..K`` inside, ``K + 1`` above the maximum.
    """
    k = keys(np.asarray([lo, *edges, hi], dtype=np.float64), lo, inverse_span(lo, hi), feature_offset(j))
    k[-1] = np.nextafter(k[-1], np.inf)  # a value equal to the maximum is in range
    if np.any(np.diff(k) <= 0):
        raise InputDataError(f"numerical feature {j}: edges must be strictly increasing inside (min, max]")
    return k


class NumericBinner:
    """Bins a ``(rows, features)`` float matrix of numerical features in one ``searchsorted``.

    The key array is padded so that the search lands directly on *flat* indices: numerical
    feature ``j`` at group position ``p_j`` owns ``stride`` slots (its boundary keys, then padding
    keys between its stretch of the key line and the next feature's), so a value's search index is
    ``p_j * stride + code``: the row of the group's per-bin tables with no subtraction. Categorical
    positions own only padding. A NaN lands past the end (index ``positions * stride``), which the
    caller maps to the missing code. The boundary keys themselves are unchanged (the reference was
    binned with them), so codes are identical to the unpadded search's.
    """

    def __init__(
        self,
        specs: Sequence[tuple[float, float, Sequence[float]]],
        missing_code: int,
        positions: Sequence[int] | None = None,
        width: int | None = None,
    ) -> None:
        n = len(specs)
        self.n = n
        self.missing_code = missing_code
        self.stride = stride = missing_code + 1
        pos = list(range(n)) if positions is None else list(positions)
        self.width = width = n if width is None else width
        self.lo = np.array([s[0] for s in specs], dtype=np.float64)
        self.hi = np.array([s[1] for s in specs], dtype=np.float64)
        self.inv = np.array([inverse_span(s[0], s[1]) for s in specs], dtype=np.float64)
        self.offset = np.array([feature_offset(j) for j in range(n)], dtype=np.float64)
        self.keys = np.zeros(width * stride, dtype=np.float64)
        at = dict(zip(pos, range(n), strict=True))
        pad = 0.0  # below every key (the lowest clipped key is feature_offset(0) - 1 = 0.5)
        for p in range(width):
            j = at.get(p)
            block = self.keys[p * stride : (p + 1) * stride]
            if j is not None:
                lo, hi, edges = specs[j]
                k = edge_keys(j, lo, hi, edges)
                block[: len(k)] = k
                block[len(k) :] = pad = float(self.offset[j]) + 2.5  # between o_j + 2 and the next o - 1
            else:
                block[:] = pad
        self.size = width * stride
        #: the keys' IEEE bit patterns as unsigned integers, for :meth:`GroupMonitor.score_row`'s
        #: search: every key is finite and non-negative (+0.0 padding, else at least 0.5), where the
        #: unsigned bit pattern orders exactly as the value does; see :data:`KEY_BITS`
        self.key_bits = self.keys.view(KEY_BITS)
        if not (np.isfinite(self.keys).all() and not np.signbit(self.keys).any()):
            raise InputDataError("numerical keys must be finite and non-negative")  # never: by construction
        self.start = np.asarray(pos, dtype=np.int64) * stride
        self.shift = self.offset - self.lo * self.inv
        self.upper = self.offset + 2.0
        self.lower = self.offset - 1.0
        # x * inv overflows only where inv > 1 (ranges narrower than 1) and |x| > float max / inv;
        # clipping x to 1e300 / inv first costs one ufunc (0.35 us) where np.errstate cost 0.8 us,
        # and changes no code: such values map beyond the clamp either way
        self.guard: FloatArray | None = 1e300 / self.inv if bool((self.inv > 1.0).any()) else None
        self.low_guard = -self.guard if self.guard is not None else None

    def flat(self, values: FloatArray) -> IntArray:
        """Flat indices ``position * stride + code`` for a ``(rows, features)`` float matrix; a NaN
        gives :attr:`size` (±inf is out of range)."""
        if self.guard is not None:
            values = _clip(values, self.low_guard, self.guard)
        u = values * self.inv
        u += self.shift
        _clip(u, self.lower, self.upper, out=u)  # = min(max(u, lower), upper); NaN stays NaN
        return self.keys.searchsorted(u, side="right")

    def codes(self, values: FloatArray) -> tuple[IntArray, bool]:
        """Codes for a ``(rows, features)`` float matrix (NaN: missing; ±inf: out of range), and
        whether any value was missing."""
        idx = self.flat(values)
        idx -= self.start
        nan = np.isnan(values)
        if not nan.any():
            return idx, False
        idx[nan] = self.missing_code
        return idx, True


def n_codes_for(features: Sequence[FeatureProfile]) -> int:
    """Codes needed by a group of features, the shared missing code included."""
    widest = 1
    for f in features:
        widest = max(widest, len(f.edges) + 3 if isinstance(f, NumericalFeature) else len(f.categories) + 1)
    return widest + 1


def numeric_spec(f: NumericalFeature) -> tuple[float, float, tuple[float, ...]]:
    lo = f.min if f.min is not None else 0.0
    hi = f.max if f.max is not None else lo
    return lo, hi, f.edges
