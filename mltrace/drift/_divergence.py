"""Drift statistics on binned distributions, vectorised over features (one row per feature).

Every function takes count arrays of shape ``(features, bins)`` (a 1-D array is one feature) and
returns one value per feature. Padding bins that a feature does not use hold zero in both
samples; bins empty in both samples are ignored by every statistic.

- PSI smooths counts as ``p_i = (c_i + 0.5) / (n + 0.5 * B)`` (B = bins non-empty in either
  sample) so that a bin empty on one side gives a large but finite term.
- Jensen–Shannon distance uses the natural log and no smoothing (``0 * log 0 = 0``); it is the
  square root of the divergence, as ``scipy.spatial.distance.jensenshannon`` returns it.
- KS and Wasserstein work on the CDF at bin edges; Wasserstein spreads each bin's mass
  uniformly over the bin (so the CDF is piecewise linear) and integrates ``|F - G|`` exactly.
- Chi-square is Pearson's goodness-of-fit of the current counts against the smoothed reference.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache
from statistics import NormalDist

import numpy as np
import numpy.typing as npt

from .._errors import InvalidArgumentError

FloatArray = npt.NDArray[np.float64]
ArrayLike = npt.ArrayLike

SMOOTHING = 0.5


def _rows(counts: ArrayLike) -> FloatArray:
    arr = np.asarray(counts, dtype=np.float64)
    return arr[None, :] if arr.ndim == 1 else arr


def smoothed(ref: ArrayLike, cur: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Smoothed proportions ``(c + 0.5) / (n + 0.5 B)`` over the bins non-empty in either sample
    (zero in the others)."""
    r, c = _rows(ref), _rows(cur)
    used = np.sign(r + c)
    b = np.add.reduce(used, axis=1) * SMOOTHING
    rp = (r + SMOOTHING) * used * (1.0 / (np.add.reduce(r, axis=1) + b))[:, None]
    cp = (c + SMOOTHING) * used * (1.0 / (np.add.reduce(c, axis=1) + b))[:, None]
    return rp, cp


def psi(ref: ArrayLike, cur: ArrayLike) -> FloatArray:
    """Population stability index ``sum (q - p) ln(q / p)`` on smoothed proportions."""
    rp, cp = smoothed(ref, cur)
    unused = rp == 0  # only bins empty in both samples; they add nothing
    return np.asarray(np.add.reduce((cp - rp) * np.log((cp + unused) / (rp + unused)), axis=1), dtype=np.float64)


ReferenceSide = tuple[FloatArray, FloatArray, FloatArray, npt.NDArray[np.bool_]]


def reference_side(ref: FloatArray) -> ReferenceSide:
    """What :func:`psi_and_js` computes from the reference counts alone (totals, smoothed counts,
    proportions, empty bins): computed once per compiled group, the same arrays every recompute."""
    r_tot = np.add.reduce(ref, axis=1)
    p = ref * (1.0 / np.maximum(r_tot, 1e-300))[:, None]
    return r_tot, ref + SMOOTHING, p, p == 0


def psi_and_js(
    ref: FloatArray, cur: FloatArray, ref_side: ReferenceSide | None = None
) -> tuple[FloatArray, FloatArray]:
    """:func:`psi` and :func:`js_distance` of 2-D float counts in one pass (the window's hot path);
    ``ref_side`` is :func:`reference_side` of ``ref`` when the caller keeps it."""
    r_tot, ref_smoothed, p, pz = ref_side if ref_side is not None else reference_side(ref)
    c_tot = np.add.reduce(cur, axis=1)
    used = np.sign(ref + cur)
    half_b = np.add.reduce(used, axis=1) * SMOOTHING
    rp = ref_smoothed * used
    rp *= (1.0 / (r_tot + half_b))[:, None]
    cp = (cur + SMOOTHING) * used
    cp *= (1.0 / (c_tot + half_b))[:, None]
    unused = 1.0 - used
    psi_values = np.add.reduce((cp - rp) * np.log((cp + unused) / (rp + unused)), axis=1)
    q = cur * (1.0 / np.maximum(c_tot, 1e-300))[:, None]
    mix = 0.5 * (p + q)
    mix += unused  # bins empty in both: p = q = 0, log(1) = 0
    qz = q == 0
    div = np.add.reduce(p * np.log((p + pz) / mix) + q * np.log((q + qz) / mix), axis=1)
    return psi_values, np.sqrt(np.maximum(0.5 * div, 0.0))


def _proportions(counts: FloatArray) -> FloatArray:
    totals = np.add.reduce(counts, axis=1)
    return np.asarray(counts * (1.0 / np.maximum(totals, 1e-300))[:, None], dtype=np.float64)


def js_distance(ref: ArrayLike, cur: ArrayLike) -> FloatArray:
    """Jensen–Shannon distance (natural log, no smoothing), in ``[0, sqrt(ln 2)]``."""
    p, q = _proportions(_rows(ref)), _proportions(_rows(cur))
    m = 0.5 * (p + q)
    safe_m = m + (m == 0)
    div = 0.5 * np.add.reduce(p * np.log((p + (p == 0)) / safe_m) + q * np.log((q + (q == 0)) / safe_m), axis=1)
    return np.asarray(np.sqrt(np.maximum(div, 0.0)), dtype=np.float64)


def _cdf_gap(ref: ArrayLike, cur: ArrayLike) -> FloatArray:
    """``F_ref - F_cur`` at the right edge of every bin."""
    p, q = _proportions(_rows(ref)), _proportions(_rows(cur))
    return np.asarray(np.cumsum(p - q, axis=1), dtype=np.float64)


def wasserstein_binned(ref: ArrayLike, cur: ArrayLike, widths: ArrayLike) -> FloatArray:
    """First Wasserstein distance between two binned samples, mass uniform within each bin.

    ``widths`` holds each bin's width in feature units (same shape as the counts; zero-width
    bins hold mass at a point, such as the reference minimum and maximum for out-of-range
    values, which makes the result a lower bound when current values leave the range).
    """
    w = _rows(widths)
    gap = _cdf_gap(ref, cur)
    left = np.concatenate([np.zeros((gap.shape[0], 1)), gap[:, :-1]], axis=1)
    a, b = np.abs(left), np.abs(gap)
    same = left * gap >= 0
    with np.errstate(divide="ignore", invalid="ignore"):
        crossing = np.where(a + b > 0, (a * a + b * b) / (2 * (a + b)), 0.0)
    area = np.where(same, 0.5 * (a + b), crossing)
    return np.asarray((area * w).sum(axis=1), dtype=np.float64)


def wasserstein_from_gap(
    gap: FloatArray, edge_weight: FloatArray, widths: FloatArray, abs_gap: FloatArray | None = None
) -> FloatArray:
    """:func:`wasserstein_binned` from ``F_ref - F_cur`` at right bin edges, for precomputed tables.

    ``edge_weight[k] = (widths[k] + widths[k + 1]) / 2`` and ``widths[:, 0]`` must be zero (the
    below-range bin, or padding): with no sign change inside a bin the area
    is the trapezoid, ``w (|a| + |b|) / 2``; where the gap changes sign it is smaller by
    ``w |a| |b| / (|a| + |b|)``. ``abs_gap``: ``|gap|`` when the caller has it (for KS).
    """
    rows, cols = gap.shape
    flat = np.ascontiguousarray(gap).reshape(-1)
    a = np.abs(flat) if abs_gap is None else abs_gap.reshape(-1)
    total = np.einsum("ij,ij->i", a.reshape(rows, cols), edge_weight)
    # where the gap changes sign inside a bin: subtract w |a| |b| / (|a| + |b|) = -w (a b) / (|a| + |b|).
    # Worked on the flattened rows; pairs that straddle two rows meet a zero width (the below bin).
    crossing = np.empty_like(flat)
    crossing[0] = 0.0
    np.multiply(flat[:-1], flat[1:], out=crossing[1:])
    np.minimum(crossing, 0.0, out=crossing)
    spread = np.empty_like(flat)
    spread[0] = 1.0
    np.add(a[:-1], a[1:], out=spread[1:])
    spread += 1e-300
    crossing /= spread
    total += np.einsum("ij,ij->i", crossing.reshape(rows, cols), widths)
    return np.asarray(total, dtype=np.float64)


def chi_square_stat(ref: ArrayLike, cur: ArrayLike) -> FloatArray:
    """The Pearson statistic alone: ``sum (c - n p)^2 / (n p)``, ``p`` the smoothed reference."""
    r, c = _rows(ref), _rows(cur)
    rp, _ = smoothed(r, c)
    expected = rp * c.sum(axis=1, keepdims=True)
    safe = np.where(expected > 0, expected, 1.0)
    return np.asarray(np.where(expected > 0, (c - expected) ** 2 / safe, 0.0).sum(axis=1), dtype=np.float64)


# -- distributions (no scipy at run time) -------------------------------------------------------


def _gamma_q(a: float, x: float) -> float:
    """Regularised upper incomplete gamma ``Q(a, x)`` (series below ``a + 1``, else continued fraction)."""
    if x <= 0:
        return 1.0
    if math.isinf(x):
        return 0.0
    log_front = -x + a * math.log(x) - math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        ap = a
        for _ in range(10_000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(log_front))
    tiny = 1e-300
    b = x + 1 - a
    c = 1 / tiny
    d = 1 / b
    h = d
    for i in range(1, 10_000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return min(1.0, math.exp(log_front) * h)


def chi2_sf(x: float, df: float) -> float:
    """Survival function of the chi-square distribution."""
    if not math.isfinite(x):
        return 0.0 if x > 0 else 1.0
    return _gamma_q(df / 2, x / 2)


@lru_cache(maxsize=1024)
def chi2_ppf(q: float, df: float) -> float:
    """Quantile of the chi-square distribution (bisection on :func:`chi2_sf`)."""
    if not 0 < q < 1:
        raise InvalidArgumentError(f"quantile level must be in (0, 1); got {q}")
    tail = 1 - q
    lo, hi = 0.0, max(1.0, df)
    while chi2_sf(hi, df) > tail:
        hi *= 2
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if chi2_sf(mid, df) > tail:
            lo = mid
        else:
            hi = mid
        if hi - lo <= 1e-12 * hi:
            break
    return 0.5 * (lo + hi)


def fisher_sf(total: FloatArray, m: int) -> FloatArray:
    """P(χ²(2m) > total): the p-value of Fisher's method over ``m`` p-values, per row.

    Exact (the finite series) for ``m <= 10``; above, the Wilson–Hilferty cube-root normal
    approximation, which at 2m >= 22 degrees of freedom is within 0.002 of the exact value.
    """
    x = np.maximum(np.asarray(total, dtype=np.float64), 0.0)
    if m <= 10:
        half = 0.5 * x
        term = np.exp(-half)
        out = term.copy()
        for i in range(1, m):
            term = term * half / i
            out += term
        return np.asarray(np.minimum(out, 1.0), dtype=np.float64)
    k = 2.0 * m
    c = 2.0 / (9.0 * k)
    z = (np.cbrt(x / k) - (1.0 - c)) / math.sqrt(c)
    return np.asarray(0.5 * _erfc(z / math.sqrt(2.0)), dtype=np.float64)


def fisher_sf_scalar(x: float, m: int) -> float:
    """:func:`fisher_sf` for one total, in plain floats (one request's hot path)."""
    x = max(x, 0.0)
    if m <= 10:
        half = 0.5 * x
        term = math.exp(-half)
        out = term
        for i in range(1, m):
            term *= half / i
            out += term
        return min(out, 1.0)
    k = 2.0 * m
    c = 2.0 / (9.0 * k)
    z = ((x / k) ** (1.0 / 3.0) - (1.0 - c)) / math.sqrt(c)
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def fisher_sf_for(m: int) -> Callable[[float], float]:
    """:func:`fisher_sf_scalar` for a fixed ``m``, its constants computed once (the same
    expressions, so the same values): ~0.15 us less a request beside the search's 5.7."""
    if m <= 10:
        return lambda x: fisher_sf_scalar(x, m)
    k = 2.0 * m
    c = 2.0 / (9.0 * k)
    shift = 1.0 - c
    root_c = math.sqrt(c)
    root_2 = math.sqrt(2.0)
    erfc = math.erfc

    def sf(x: float) -> float:
        z = ((max(x, 0.0) / k) ** (1.0 / 3.0) - shift) / root_c
        return 0.5 * erfc(z / root_2)

    return sf


def _erfc(z: FloatArray) -> FloatArray:
    if z.size == 1:
        return np.array([math.erfc(float(z.reshape(-1)[0]))]).reshape(z.shape)
    return np.array([math.erfc(v) for v in z.ravel().tolist()]).reshape(z.shape)


def kolmogorov_sf(x: float) -> float:
    """Survival function of the Kolmogorov distribution (asymptotic two-sample KS p-value)."""
    if x <= 0:
        return 1.0
    total = 0.0
    for k in range(1, 101):
        term = 2 * (-1) ** (k - 1) * math.exp(-2 * k * k * x * x)
        total += term
        if abs(term) < 1e-16:
            break
    return min(1.0, max(0.0, total))


def ks_pvalue(stat: float, n: float, n_ref: float) -> float:
    """Asymptotic p-value of a two-sample KS statistic (Stephens' small-sample correction)."""
    if n <= 0 or n_ref <= 0:
        return 1.0
    en = math.sqrt(n * n_ref / (n + n_ref))
    return kolmogorov_sf((en + 0.12 + 0.11 / en) * stat)


def ks_critical(alpha: float) -> float:
    """``c(alpha)`` with ``P(sqrt(n_eff) * KS > c) ≈ alpha`` (first term of the Kolmogorov series)."""
    return math.sqrt(-0.5 * math.log(alpha / 2))


def normal_upper(alpha: float) -> float:
    """The standard normal quantile ``z`` with ``P(Z > z) = alpha``."""
    return NormalDist().inv_cdf(1 - alpha)
