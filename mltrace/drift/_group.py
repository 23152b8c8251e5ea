"""One monitored group of features (a profile's inputs, or its outputs): score, window, statistics."""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from . import _divergence
from ._binning import KEY_BITS as _KEY_BITS
from ._binning import clip_ufunc as _clip
from ._compiled import CompiledGroup
from ._features import CategoricalFeature, NumericalFeature, category_key
from ._thresholds import DriftThresholds, GroupThresholds
from ._window import CodeRing

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

TOP_K = 5
_add_reduce = np.add.reduce
#: a feature is named among a request's top features when its tail p-value is below this
TOP_P = 0.1
_TOP_CHI = -2 * math.log(TOP_P)
#: up to this many features past the threshold, top_features sorts them in Python (else with numpy)
FEW_HOT = 40
_first = operator.itemgetter(0)
#: numerical features from which the one-row search compares bit patterns (see GroupMonitor)
BIT_SEARCH_MIN = 64


@dataclass(frozen=True)
class WindowState:
    """The statistics of one recompute, per feature (arrays; ``out_of_range`` per numerical
    feature only, in order) and for the window."""

    n: int
    n_feature: FloatArray
    psi: FloatArray
    js: FloatArray
    ks: FloatArray
    wasserstein: FloatArray
    wasserstein_norm: FloatArray
    chi2: FloatArray
    missing_rate: FloatArray
    out_of_range: FloatArray
    psi_warn: FloatArray
    psi_alert: FloatArray
    js_threshold: FloatArray
    wasserstein_threshold: FloatArray
    ratio: FloatArray
    band: IntArray
    alert: BoolArray
    ready: BoolArray
    score: float
    window_alert: bool
    drifted_share: float
    top: tuple[str, ...]


BANDS = ("ok", "warn", "alert")


class GroupMonitor:
    """Codes, per-request scores and the window statistics of one compiled group."""

    def __init__(self, group: CompiledGroup, thresholds: DriftThresholds, window: int) -> None:
        self.g = group
        self.t = GroupThresholds(thresholds, group)
        self.ring = CodeRing(window, group.m, group.n_codes, group.dtype)
        self.state: WindowState | None = None
        num = group.is_numeric
        self._num = np.flatnonzero(num)
        self._cat = np.flatnonzero(~num)
        self.has_categories = bool(len(self._cat))
        #: the above-range code of each numerical feature (0 for categorical ones, unused)
        self._above = np.array(
            [len(f.edges) + 2 if isinstance(f, NumericalFeature) else 0 for f in group.features], dtype=np.int64
        )
        self._no_chi2 = np.full(group.m, np.nan)
        #: the code of a category the reference never saw (-1 where unknown ones may be in "other")
        self._unseen = np.array(
            [len(f.categories) if isinstance(f, CategoricalFeature) and f.other == 0 else -1 for f in group.features],
            dtype=np.int64,
        )
        #: the same in flat indices (-1 never matches)
        self._unseen_flat = np.where(self._unseen >= 0, group.row_offset + self._unseen, -1)
        self._missing_flat = group.row_offset + group.missing_code
        #: a missing numerical value's search index (past the end), and the contributions with a
        #: NaN there, so that a row with one sums to NaN
        self._sentinel = group.binner.size
        self._chi = np.append(group.chi_flat, np.nan)
        self._cached_thresholds: tuple[bytes, tuple[npt.NDArray[Any], ...]] | None = None
        self._ref_side = _divergence.reference_side(group.ref_groups)
        self._fisher = _divergence.fisher_sf_for(group.m)
        #: score_row searches the keys' bit patterns from this many numerical features: the integer
        #: compares save ~0.3 ns each, the view costs ~0.2 us (search alone, same process: 1 feature
        #: 0.34 float / 0.52 bits, 10: 0.74 / 0.88, 50: 2.62 / 2.61, 100: 5.27 / 4.97 us)
        self._bit_search = group.binner.n >= BIT_SEARCH_MIN
        self._below_flat = self._num * group.n_codes
        self._above_flat = self._num * group.n_codes + self._above[self._num]
        # One row's top features from its flat indices (see top_of_row): per flat index an integer
        # that orders by contribution, then by feature index (lower first); unique per feature, so
        # a plain sort ranks them with no tie left to chance.
        m = group.m
        unique, rank = np.unique(group.chi_flat, return_inverse=True)
        feature = np.repeat(np.arange(m, dtype=np.int64), group.n_codes)
        key = np.append(rank.reshape(-1).astype(np.int64) * max(m, 1) + (m - 1 - feature), -1)
        # int32 where it fits: half the table in cache beside the bins' keys and contributions
        self._top_key = key.astype(np.int32) if len(unique) * max(m, 1) < 2**31 else key
        #: the keys of contributions past the threshold (p < 0.1) are at least this
        self._top_cut = int(np.searchsorted(unique, _TOP_CHI, side="right")) * max(m, 1)

    # -- per request --------------------------------------------------------------------------

    def score_rows(
        self, numeric: FloatArray, categorical: list[list[object]]
    ) -> tuple[list[float], FloatArray, IntArray, bool]:
        """Per-row scores in [0, 1] (one minus Fisher's combined tail p-value), the per-feature
        contributions ``-2 ln p``, the ``(rows, features)`` flat indices ``feature * n_codes + code``
        and whether any value was missing.

        A missing numerical value is found without a pass of its own: its search index is past the
        end, where the contribution table holds NaN, so the row's total comes out NaN; only then
        are the indices fixed and looked up again.
        """
        g = self.g
        flat = g.binner.flat(numeric)
        missing = False
        if g.categorical_pos:
            flat, missing = self._with_categories(flat, categorical)
        chi = self._chi.take(flat)
        if len(flat) == 1:  # one request: plain floats beat numpy calls here
            total = float(_add_reduce(chi, None))  # = chi.sum(), without its Python wrapper (0.3 us)
            if total != total:
                flat, chi, missing = *self._fix_missing(flat), True
                total = float(_add_reduce(chi, None))
            return [1.0 - self._fisher(total)], chi, flat, missing
        totals = chi.sum(axis=1)
        if math.isnan(float(totals.sum())):
            flat, chi, missing = *self._fix_missing(flat), True
            totals = chi.sum(axis=1)
        return (1.0 - _divergence.fisher_sf(totals, g.m)).tolist(), chi, flat, missing

    def score_row(self, row: FloatArray) -> tuple[float, FloatArray, IntArray, bool]:
        """:meth:`score_rows` for one 1-D row of an all-numerical group, in one call: the score,
        the contributions, the flat indices (1-D) and whether a value was missing.

        The same arithmetic as :meth:`NumericBinner.flat` and :meth:`score_rows`, inlined: one
        request's path is a dozen numpy calls, and each Python call around them costs ~0.1-0.3 us.
        """
        b = self.g.binner
        if b.guard is not None:
            row = _clip(row, b.low_guard, b.guard)
        u = row * b.inv
        u += b.shift
        _clip(u, b.lower, b.upper, out=u)
        if self._bit_search:  # the same index as b.keys.searchsorted(u, side="right"): see KEY_BITS
            flat = b.key_bits.searchsorted(u.view(_KEY_BITS), side="right")
        else:
            flat = b.keys.searchsorted(u, side="right")
        chi = self._chi.take(flat)
        total = float(_add_reduce(chi, None))
        missing = total != total
        if missing:
            flat, chi = self._fix_missing(flat)
            total = float(_add_reduce(chi, None))
        return 1.0 - self._fisher(total), chi, flat, missing

    def _with_categories(self, nflat: IntArray, categorical: list[list[object]]) -> tuple[IntArray, bool]:
        g = self.g
        out = np.empty((nflat.shape[0], g.m), dtype=np.int64)
        out[:, g.numeric_pos] = nflat
        missing = False
        for i, (pos, values) in enumerate(zip(g.categorical_pos, categorical, strict=True)):
            mapping = g.category_codes[i]
            base = pos * g.n_codes
            other = base + len(mapping)
            col = out[:, pos]
            for r, value in enumerate(values):
                key = category_key(value)
                if key is None:
                    col[r] = base + g.missing_code
                    missing = True
                else:
                    col[r] = base + mapping[key] if key in mapping else other
        return out, missing

    def _fix_missing(self, flat: IntArray) -> tuple[IntArray, FloatArray]:
        """Indices with the past-the-end index of a missing numerical value replaced by its
        feature's missing code, and their contributions."""
        flat = np.where(flat == self._sentinel, self._missing_flat, flat)
        return flat, self._chi.take(flat)

    def top_features(self, chi_row: FloatArray) -> list[str]:
        """Up to five features with tail p-value below 0.1, most unusual first; features equally
        unusual in feature order (lowest index first).

        The tie rule is stable and stated: ``argpartition`` (used before) picked among ties at the
        fifth place by whatever its SIMD path on the CPU did. Only the features past the threshold
        are ranked (a reference-like row has about m / 10 of them), by a stable sort, so ties keep
        feature order: about the cost of argpartition (2.7 against 2.6 us at 100 features). One
        row takes :meth:`top_of_row` instead (the same list from its flat indices, faster).
        """
        names = self.g.names
        hot = (chi_row > _TOP_CHI).nonzero()[0]
        k = len(hot)
        if k <= FEW_HOT:
            if not k:
                return []
            # reverse=True keeps equal keys in their original (feature) order: the sort is stable
            ranked = sorted(zip(chi_row.take(hot).tolist(), hot.tolist()), key=_first, reverse=True)  # noqa: B905
            return [names[i] for _, i in ranked[:TOP_K]]
        # a drifted row with many features past the threshold: a stable numpy sort of them
        order = hot.take((-chi_row.take(hot)).argsort(kind="stable")[:TOP_K])
        return [names[i] for i in order.tolist()]

    def top_of_row(self, flat: IntArray) -> list[str]:
        """:meth:`top_features` of one row from its flat indices (the one-row hot path): the same
        list, from one lookup of precomputed order keys and a sort of the few past the threshold
        (2.0 us at 100 features against 2.7 for ranking the contributions)."""
        keys = self._top_key.take(flat)
        hot = keys[keys >= self._top_cut].tolist()
        if not hot:
            return []
        hot.sort(reverse=True)
        m, names = self.g.m, self.g.names
        return [names[m - 1 - k % m] for k in hot[:TOP_K]]

    def missing_names(self, flat: IntArray) -> list[str]:
        hit = (flat == self._missing_flat).any(axis=0)
        return [self.g.names[i] for i in np.flatnonzero(hit)]

    def unseen_names(self, flat: IntArray) -> list[str]:
        if not len(self._cat):
            return []
        hit = (flat[:, self._cat] == self._unseen_flat[self._cat]).any(axis=0)
        return [self.g.names[self._cat[i]] for i in np.flatnonzero(hit)]

    # -- window -------------------------------------------------------------------------------

    def recompute(self) -> WindowState:
        """Window statistics from the current counts (call with the monitor's lock held)."""
        self.state = state = self._statistics(self.ring.counts, self.ring.fill)
        return state

    def _statistics(self, counts: npt.NDArray[Any], n: int) -> WindowState:
        g, t = self.g, self.t
        m = g.m
        miss = g.missing_code
        # Cumulative counts along the codes, computed transposed: accumulating down the rows of a
        # (codes, features) copy adds whole rows at once, where np.cumsum(axis=1) walks each
        # feature's codes one by one (10 against 21 us at 100 features; integers, so exact either way)
        cum_t = np.array(counts[:, :miss].T, order="C")  # a copy (one feature's view is contiguous already)
        np.add.accumulate(cum_t, axis=0, out=cum_t)
        n_feat = cum_t[-1].astype(np.float64)
        cur_groups = g.coarse_from_cumulative_t(cum_t)
        psi, js = _divergence.psi_and_js(g.ref_groups, cur_groups, self._ref_side)
        # back in (features, codes) order for the per-feature reductions below (their summation order)
        cdf = np.multiply(cum_t.T, (1.0 / np.maximum(n_feat, 1.0))[:, None], order="C")
        gap = np.subtract(g.ref_cdf, cdf, out=cdf)
        num, cat = self._num, self._cat
        if len(cat):
            ks, wass, chi2 = np.full(m, np.nan), np.full(m, np.nan), np.full(m, np.nan)
            chi2[cat] = _divergence.chi_square_stat(g.ref_groups[cat], cur_groups[cat])
            if len(num):
                ks[num] = np.maximum.reduce(np.abs(gap[num]), axis=1)
                wass[num] = _divergence.wasserstein_from_gap(gap[num], g.edge_weight[num], g.widths[num])
        else:
            abs_gap = np.abs(gap)  # shared by KS and W1
            ks = np.maximum.reduce(abs_gap, axis=1)
            wass = _divergence.wasserstein_from_gap(gap, g.edge_weight, g.widths, abs_gap)
            chi2 = self._no_chi2
        wnorm = wass / g.std
        missing_counts = counts[:, miss]
        missing_rate = missing_counts / max(n, 1)
        # the below- and above-range counts of each numerical feature, by flat index (one take each)
        oor = (counts.take(self._below_flat) + counts.take(self._above_flat)) / np.maximum(n_feat[self._num], 1.0)
        psi_warn, psi_alert, js_thr, w_thr, ks_thr, ready = self._thresholds(n_feat)
        ratio = np.fmax(psi / psi_alert, js / js_thr)
        np.fmax(ratio, wnorm / w_thr, out=ratio)
        if t.has_ks:
            np.fmax(ratio, ks / ks_thr, out=ratio)
        if t.has_chi2:
            np.fmax(ratio, chi2 / t.chi2_crit, out=ratio)
        ratio = np.minimum(np.fmax(ratio, 0.0), 1e9)  # NaN (tests off, categorical KS...) -> 0
        ratio *= ready
        if n >= t.min_samples and (missing_counts.any() or g.ref_missing_rate.any()):
            ref_miss = g.ref_missing_rate
            se = np.sqrt(np.maximum(ref_miss * (1 - ref_miss), 1.0 / n) / n)
            miss_ratio = (missing_rate - ref_miss) / (np.fmax(t.missing, t.z * se) * t.missing_gate)
            np.fmax(ratio, np.minimum(miss_ratio, 1e9), out=ratio)
        alert = ratio >= 1.0
        band = np.where(ready, (psi >= psi_warn).astype(np.int64) + (psi >= psi_alert), 0)
        drifted = alert | (band >= 1)
        share = float(np.count_nonzero(drifted)) / m if m else 0.0
        share_alert = t.drift_share is not None and share >= t.drift_share and bool(ready.any())
        severity = ratio / (1.0 + ratio)
        score = float(severity.max()) if m else 0.0
        window_alert = bool(alert.any()) or share_alert
        if share_alert:
            score = max(score, 0.5)
        top: tuple[str, ...] = ()
        if drifted.any():
            order = np.argsort(-severity, kind="stable")[:TOP_K]
            top = tuple(g.names[i] for i in order if drifted[i])
        return WindowState(
            n=n,
            n_feature=n_feat,
            psi=psi,
            js=js,
            ks=ks,
            wasserstein=wass,
            wasserstein_norm=wnorm,
            chi2=chi2,
            missing_rate=missing_rate,
            out_of_range=oor,
            psi_warn=psi_warn,
            psi_alert=psi_alert,
            js_threshold=js_thr,
            wasserstein_threshold=w_thr,
            ratio=ratio,
            band=band,
            alert=alert,
            ready=ready,
            score=min(score, 1.0),
            window_alert=window_alert,
            drifted_share=share,
            top=top,
        )

    def _thresholds(self, n_feat: FloatArray) -> tuple[npt.NDArray[Any], ...]:
        """Per-feature thresholds (PSI warn and alert, JS, Wasserstein, KS) and readiness for these
        per-feature counts. They depend on the counts alone, which stay the same from one recompute
        to the next once the window is full (no missing values): the last ones are kept, keyed by
        the counts' bytes, and come back as the same (read-only) arrays, computed by the same
        expressions. 18 numpy calls, ~20 us of a 180 us recompute at 100 features."""
        key = n_feat.tobytes()
        cached = self._cached_thresholds
        if cached is not None and cached[0] == key:
            return cached[1]
        t = self.t
        f = 1.0 / np.maximum(n_feat, 1.0) + self.g.inv_ref_n  # no divisions by zero below: no warnings
        # max(fixed, null quantile); times a gate that is NaN where the test is off
        psi_warn = np.fmax(t.psi_warn, t.q_warn * f) * t.psi_warn_gate
        psi_alert = np.fmax(t.psi_alert, t.q_alert * f) * t.psi_alert_gate
        js_thr = np.fmax(t.js, np.sqrt(t.q_alert * f * 0.125)) * t.js_gate
        root_f = np.sqrt(f)
        w_thr = np.fmax(t.wasserstein, t.w_factor * root_f) * t.wasserstein_gate
        ks_thr = t.ks_c * root_f
        ready = n_feat >= t.min_samples
        out = (psi_warn, psi_alert, js_thr, w_thr, ks_thr, ready)
        for a in out:
            a.flags.writeable = False
        self._cached_thresholds = (key, out)  # one assignment: report() may read it beside a recompute
        return out

    def report(self, counts: npt.NDArray[Any], n: int) -> dict[str, Any]:
        """The window report from a counts snapshot (no lock needed)."""
        s = self._statistics(counts, n)
        g = self.g
        features: dict[str, Any] = {}
        for i, name in enumerate(g.names):
            numeric = bool(g.is_numeric[i])
            entry: dict[str, Any] = {
                "kind": "numerical" if numeric else "categorical",
                "n": int(s.n_feature[i]),
                "psi": _num(s.psi[i]),
                "js": _num(s.js[i]),
                "ks": _num(s.ks[i]) if numeric else None,
                "ks_pvalue": _divergence.ks_pvalue(s.ks[i], s.n_feature[i], g.ref_n[i]) if numeric else None,
                "wasserstein": _num(s.wasserstein[i]) if numeric else None,
                "wasserstein_norm": _num(s.wasserstein_norm[i]) if numeric else None,
                "chi2": None if numeric else _num(s.chi2[i]),
                "chi2_pvalue": None if numeric else _divergence.chi2_sf(float(s.chi2[i]), float(g.df[i])),
                "missing_rate": _num(s.missing_rate[i]),
                "reference_missing_rate": _num(g.ref_missing_rate[i]),
                "out_of_range": _num(s.out_of_range[int(np.searchsorted(self._num, i))]) if numeric else None,
                "thresholds": {
                    "psi_warn": _num(s.psi_warn[i]),
                    "psi_alert": _num(s.psi_alert[i]),
                    "js": _num(s.js_threshold[i]),
                    "wasserstein_norm": _num(s.wasserstein_threshold[i]) if numeric else None,
                },
                "band": BANDS[int(s.band[i])] if s.ready[i] else "insufficient",
                "alert": bool(s.alert[i]),
                "severity": _num(s.ratio[i] / (1 + s.ratio[i])),
            }
            features[name] = entry
        return {
            "alert": s.window_alert,
            "score": s.score,
            "n": n,
            "drifted_share": s.drifted_share,
            "top_features": list(s.top),
            "features": features,
        }


def _num(value: float | np.floating[Any]) -> float | None:
    v = float(value)
    return v if math.isfinite(v) else None
