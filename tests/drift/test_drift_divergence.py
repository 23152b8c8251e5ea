"""Drift statistics against independent implementations (scipy) on the same data and bins."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

from mltrace.drift import DriftMonitor, ReferenceProfile
from mltrace.drift import _divergence as ds


def test_psi_hand_checked_example() -> None:
    """PSI on three bins matches the value worked out by hand, smoothing included."""
    # reference counts 50, 30, 20 (N = 100); current 30, 30, 40 (n = 100); B = 3 bins.
    # smoothed p = (c + 0.5) / (100 + 0.5 * 3) = (50.5, 30.5, 20.5) / 101.5
    #          q =                              (30.5, 30.5, 40.5) / 101.5
    # PSI = sum (q - p) ln(q / p)
    #     = (-20 / 101.5) ln(30.5 / 50.5) + 0 + (20 / 101.5) ln(40.5 / 20.5)
    #     = 0.197044 * (0.504247 + 0.680877) = 0.197044 * 1.185124 = 0.233522
    assert ds.psi([50, 30, 20], [30, 30, 40])[0] == pytest.approx(0.233522, abs=1e-6)


def test_psi_is_zero_for_identical_counts_and_ignores_bins_empty_in_both() -> None:
    """PSI is 0 for equal counts, and padding bins empty on both sides add nothing."""
    assert ds.psi([10, 20, 30], [10, 20, 30])[0] == pytest.approx(0.0, abs=1e-15)
    assert ds.psi([10, 20, 0, 30], [1, 2, 0, 3])[0] == pytest.approx(ds.psi([10, 20, 30], [1, 2, 3])[0])


def test_psi_new_bin_is_large_but_finite() -> None:
    """A bin empty in the reference but filled now gives a large, finite PSI (the smoothing)."""
    value = ds.psi([100, 100, 0], [50, 50, 100])[0]
    assert math.isfinite(value) and value > 1.0


@pytest.mark.parametrize("seed", range(5))
def test_js_distance_matches_scipy(seed: int) -> None:
    """Jensen–Shannon distance equals scipy's jensenshannon (natural log) on the same bins."""
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 50, size=12).astype(float)
    cur = rng.integers(0, 50, size=12).astype(float)
    cur[3] = 0
    assert ds.js_distance(ref, cur)[0] == pytest.approx(jensenshannon(ref, cur), abs=1e-12)


def test_psi_and_js_fast_path_matches_the_reference_functions() -> None:
    """The window's fused PSI/JS equals the separate functions, padding and new bins included."""
    rng = np.random.default_rng(1)
    ref = rng.integers(0, 100, size=(30, 11)).astype(float)
    cur = rng.integers(0, 40, size=(30, 11)).astype(float)
    ref[:, -2:] = 0
    cur[:5, -2:] = 0
    fused_psi, fused_js = ds.psi_and_js(ref, cur)
    np.testing.assert_allclose(fused_psi, ds.psi(ref, cur), rtol=1e-12)
    np.testing.assert_allclose(fused_js, ds.js_distance(ref, cur), rtol=1e-12)


def _piecewise_linear_w(ref: np.ndarray, cur: np.ndarray, bounds: np.ndarray) -> float:
    """Independent W1: integrate |F - G| on a fine grid, CDFs linear inside each bin."""
    grid = np.linspace(bounds[0], bounds[-1], 400_001)
    cdf = [np.interp(grid, bounds, np.concatenate([[0.0], np.cumsum(c) / c.sum()])) for c in (ref, cur)]
    return float(np.trapezoid(np.abs(cdf[0] - cdf[1]), grid))


@pytest.mark.parametrize("seed", range(4))
def test_binned_wasserstein_matches_numerical_integration(seed: int) -> None:
    """Binned W1 (mass uniform in each bin) equals a numerical integral of |F - G|, crossings included."""
    rng = np.random.default_rng(seed)
    bounds = np.sort(rng.normal(size=9)) * 3
    ref = rng.integers(1, 50, size=8).astype(float)
    cur = rng.integers(0, 50, size=8).astype(float) + 1
    widths = np.diff(bounds)
    expected = _piecewise_linear_w(ref, cur, bounds)
    assert ds.wasserstein_binned(ref, cur, widths)[0] == pytest.approx(expected, rel=1e-4, abs=1e-9)


def test_wasserstein_fast_path_matches_reference_function() -> None:
    """The window's W1 from precomputed CDF gaps equals the plain binned W1."""
    rng = np.random.default_rng(4)
    widths = rng.random((20, 12))
    widths[:, 0] = 0.0  # the below-range bin has no width
    widths[:, -1] = 0.0
    ref = rng.integers(1, 30, size=(20, 12)).astype(float)
    cur = rng.integers(0, 30, size=(20, 12)).astype(float)
    gap = np.cumsum(ref / ref.sum(1, keepdims=True) - cur / cur.sum(1, keepdims=True), axis=1)
    padded = np.concatenate([widths, np.zeros((20, 1))], axis=1)
    weight = 0.5 * (padded[:, :-1] + padded[:, 1:])
    np.testing.assert_allclose(
        ds.wasserstein_from_gap(gap, weight, widths), ds.wasserstein_binned(ref, cur, widths), rtol=1e-10
    )


def _window_report(ref: np.ndarray, cur: np.ndarray) -> dict[str, object]:
    profile = ReferenceProfile.from_data({"x": ref})
    monitor = DriftMonitor(profile, window=len(cur), recompute_every=len(cur))
    monitor.score(cur[:, None])
    feature: dict[str, object] = monitor.report()["features"]["x"]
    return feature


@pytest.mark.parametrize(("shift", "scale"), [(0.0, 1.0), (0.3, 1.0), (0.0, 1.5), (1.0, 0.7)])
def test_window_wasserstein_and_ks_agree_with_scipy_on_raw_samples(shift: float, scale: float) -> None:
    """A monitor's KS and W1 on 100 reference-quantile bins agree with scipy's exact values on the raw data."""
    rng = np.random.default_rng(5)
    ref = rng.normal(size=50_000)
    cur = rng.normal(shift, scale, size=2_000)
    feature = _window_report(ref, cur)
    exact_ks = sps.ks_2samp(ref, cur).statistic
    exact_w = sps.wasserstein_distance(ref, cur)
    # KS: evaluated only at bin edges (1% of the reference each), so never above and at most a bin below.
    assert exact_ks - 0.01 <= feature["ks"] <= exact_ks + 1e-9
    # W1: mass uniform inside each bin; values beyond the reference range sit at its edge.
    assert feature["wasserstein"] == pytest.approx(exact_w, abs=0.005 + 0.01 * exact_w)


def test_window_psi_and_js_agree_with_independent_computation_on_same_bins() -> None:
    """The window's PSI and JS equal the hand formulas on the profile's own decile bins."""
    rng = np.random.default_rng(6)
    ref = rng.normal(size=20_000)
    cur = rng.normal(0.4, 1.0, size=1_000)
    profile = ReferenceProfile.from_data({"x": ref})
    edges = np.asarray(profile.feature("x").bin_edges)  # type: ignore[union-attr]
    ca = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=len(edges) + 1).astype(float)
    cb = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=len(edges) + 1).astype(float)
    p = (ca + 0.5) / (ca.sum() + 0.5 * len(ca))
    q = (cb + 0.5) / (cb.sum() + 0.5 * len(cb))
    feature = _window_report(ref, cur)
    assert feature["psi"] == pytest.approx(float(np.sum((q - p) * np.log(q / p))), rel=1e-9)
    assert feature["js"] == pytest.approx(jensenshannon(ca, cb), rel=1e-9)


def test_chi_square_stat_matches_scipy_chisquare() -> None:
    """The window's Pearson chi-square against the smoothed reference equals scipy.stats.chisquare."""
    ref = np.array([500.0, 300.0, 150.0, 50.0, 0.0])
    cur = np.array([40.0, 35.0, 15.0, 5.0, 5.0])
    expected = (ref + 0.5) / (ref.sum() + 0.5 * 5) * cur.sum()
    want = sps.chisquare(cur, f_exp=expected)
    assert ds.chi_square_stat(ref, cur)[0] == pytest.approx(want.statistic, rel=1e-10)
    assert ds.chi2_sf(float(want.statistic), 4) == pytest.approx(want.pvalue, rel=1e-8, abs=1e-300)


@pytest.mark.parametrize("df", [1, 2, 4, 9, 49, 200])
def test_chi2_distribution_functions_match_scipy(df: int) -> None:
    """chi2_sf and chi2_ppf match scipy.stats.chi2 across the range the thresholds use."""
    for x in [0.01, 0.5, df * 0.7, df, df * 2.5, df * 6 + 30]:
        assert ds.chi2_sf(x, df) == pytest.approx(sps.chi2.sf(x, df), rel=1e-9, abs=1e-300)
    for q in [0.5, 0.9, 0.99, 0.999, 1 - 1e-5]:
        assert ds.chi2_ppf(q, df) == pytest.approx(sps.chi2.ppf(q, df), rel=1e-8)


@pytest.mark.parametrize("m", [1, 2, 5, 10, 11, 30, 100, 1000])
def test_fisher_combination_matches_scipy(m: int) -> None:
    """Fisher's combined p-value is exact up to 10 features and within 0.002 above."""
    totals = sps.chi2.ppf([0.001, 0.1, 0.5, 0.9, 0.999, 1 - 1e-9], 2 * m)
    got = ds.fisher_sf(totals, m)
    want = sps.chi2.sf(totals, 2 * m)
    np.testing.assert_allclose(got, want, atol=1e-12 if m <= 10 else 2e-3)
    np.testing.assert_allclose([ds.fisher_sf_scalar(t, m) for t in totals], got, rtol=1e-12, atol=1e-300)


def test_kolmogorov_distribution_matches_scipy() -> None:
    """The asymptotic KS survival function matches scipy's kstwobign."""
    for x in [0.3, 0.6, 1.0, 1.36, 1.95, 3.0]:
        assert ds.kolmogorov_sf(x) == pytest.approx(sps.kstwobign.sf(x), rel=1e-9, abs=1e-15)
    assert ds.kolmogorov_sf(ds.ks_critical(0.05)) == pytest.approx(0.05, rel=1e-3)


def test_psi_null_distribution_follows_the_chi_square_rule() -> None:
    """With no drift, PSI / (1/n + 1/N) exceeds the chi-square 99% point about 1% of the time."""
    rng = np.random.default_rng(7)
    probs = np.full(10, 0.1)
    n_ref, n = 100_000, 200
    ref = rng.multinomial(n_ref, probs).astype(float)
    cur = rng.multinomial(n, probs, size=20_000).astype(float)
    values = ds.psi(np.broadcast_to(ref, cur.shape), cur) / (1 / n + 1 / n_ref)
    rate = float(np.mean(values > ds.chi2_ppf(0.99, 9)))
    assert 0.005 < rate < 0.02


@pytest.mark.parametrize("m", [1, 5, 10, 11, 100, 1000])
def test_fisher_sf_for_a_fixed_m_equals_the_scalar_function(m: int) -> None:
    """The per-group Fisher function (constants computed once) gives the very same floats."""
    sf = ds.fisher_sf_for(m)
    for x in [-1.0, 0.0, 1e-9, 0.5, 3.7, 2.0 * m, 10.0 * m, 1e6, 1e300]:
        assert sf(x) == ds.fisher_sf_scalar(x, m)
