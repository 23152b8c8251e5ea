"""Which attribute values separate slow traces from the rest, and how strongly.

Numeric attributes: the threshold that best separates the two groups (the largest difference
in the share of each group beyond it, i.e. the two-sample Kolmogorov–Smirnov statistic) and the
rank-biserial correlation (Mann–Whitney U, rescaled to -1..1). Categorical attributes (and
"is the attribute set at all"): the value whose share differs most between the groups. Only
differences unlikely by chance are kept: the KS statistic or a two-proportion z-test beyond its
critical value at ``FAMILY_ALPHA`` divided by the number of attributes tested (Bonferroni).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

BoolArray = npt.NDArray[np.bool_]
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

FAMILY_ALPHA = 0.01  # the chance of any false cause among all the attributes tested (Bonferroni)
MAX_CATEGORIES = 50
MIN_GROUP = 3


@dataclass(frozen=True)
class Condition:
    """``attribute op value`` (e.g. ``ml.input.size >= 512``) and how it splits slow from other."""

    attribute: str
    op: str  # ">=", "<", "=", "is set", "is not set"
    value: Any
    mask: BoolArray  # over every trace: which satisfy the condition
    slow_count: int
    slow_total: int
    other_count: int
    other_total: int
    separation: float  # share of slow traces meeting it minus share of the others
    effect_size: float  # rank-biserial for numeric attributes, else the separation

    def text(self) -> str:
        if self.op in ("is set", "is not set"):
            return f"{self.attribute} {self.op}"
        return f"{self.attribute} {self.op} {format_value(self.value)}"


def format_value(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return str(value).lower()
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() and abs(value) < 1e15 else f"{value:.4g}"
    return str(value)


class Column:
    """One attribute across all traces, sorted once so that each split costs O(n).

    Every test takes ``slow`` (the traces in the slow group) and ``active`` (the traces taking
    part; the rest are ignored), both boolean arrays over all traces.
    """

    def __init__(self, key: str, raw: Sequence[Any], alpha: float = FAMILY_ALPHA) -> None:
        self.key = key
        self.ks_factor = math.sqrt(-math.log(alpha / 2.0) / 2.0)
        self.z_critical = NormalDist().inv_cdf(1.0 - alpha)
        # A NaN is a missing value: sorted last, it counted as above every threshold in the KS
        # statistic while the condition's mask left it out, which cost the cause its separation.
        raw = [None if isinstance(v, float) and math.isnan(v) else v for v in raw]
        self.n = len(raw)
        self.present: BoolArray = np.array([v is not None for v in raw], dtype=bool)
        values = [v for v in raw if v is not None]
        self.numeric = bool(values) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        self.integral = self.numeric and all(isinstance(v, int) for v in values)
        if self.numeric:
            full = np.array([float(v) if v is not None else np.nan for v in raw], dtype=np.float64)
            index = np.flatnonzero(self.present)
            self.index: IntArray = index[np.argsort(full[index], kind="stable")]
            self.sorted: FloatArray = full[self.index]
            self.values = full
            self.distinct = int(np.count_nonzero(np.diff(self.sorted))) + 1 if len(self.sorted) else 0
        else:
            cats: dict[Any, int] = {}
            codes = np.array([cats.setdefault(v, len(cats)) if v is not None else -1 for v in raw], dtype=np.int64)
            self.codes: IntArray = codes
            self.categories = list(cats)
            self.distinct = len(cats)

    def usable(self) -> bool:
        if self.distinct < 1 or (self.distinct < 2 and self.present.all()):
            return False
        return self.numeric or self.distinct <= min(MAX_CATEGORIES, max(2, self.n // 2))

    def best(self, slow: BoolArray, active: BoolArray) -> Condition | None:
        """The condition on this attribute that best separates ``slow`` from the other active traces."""
        found = [self._presence(slow, active)]
        found.append(self._numeric(slow, active) if self.numeric else self._categorical(slow, active))
        kept = [c for c in found if c is not None]
        return max(kept, key=lambda c: abs(c.separation)) if kept else None

    # -- numeric ------------------------------------------------------------------------------
    def _numeric(self, slow: BoolArray, active: BoolArray) -> Condition | None:
        keep = active[self.index]
        values = self.sorted[keep]
        if len(values) < 2 * MIN_GROUP or values[0] == values[-1]:
            return None
        y = slow[self.index[keep]]
        n1 = int(y.sum())
        n0 = len(y) - n1
        if n1 < MIN_GROUP or n0 < MIN_GROUP:
            return None
        starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
        counts = np.diff(np.r_[starts, len(values)])
        ranks = np.repeat(starts + (counts + 1) / 2.0, counts)  # 1-based mid-ranks
        u1 = float(ranks[y].sum()) - n1 * (n1 + 1) / 2.0
        rank_biserial = 2.0 * u1 / (n1 * n0) - 1.0
        cum1 = np.cumsum(y)
        cum0 = np.arange(1, len(y) + 1) - cum1
        cut = starts[1:]  # "x >= values[cut]" holds for positions cut..end
        above1 = n1 - cum1[cut - 1]
        above0 = n0 - cum0[cut - 1]
        diff = above1 / n1 - above0 / n0
        hi, lo = int(np.argmax(diff)), int(np.argmin(diff))
        critical = self.ks_factor * math.sqrt((n1 + n0) / (n1 * n0))
        if diff[hi] >= -diff[lo]:
            if diff[hi] < critical:
                return None
            threshold = float(values[cut[hi]])
            mask = active & self.present & (np.nan_to_num(self.values, nan=-np.inf) >= threshold)
            return self._condition(">=", threshold, mask, int(above1[hi]), n1, int(above0[hi]), n0, rank_biserial)
        if -diff[lo] < critical:
            return None
        threshold = float(values[cut[lo]])
        mask = active & self.present & (np.nan_to_num(self.values, nan=np.inf) < threshold)
        below1, below0 = n1 - int(above1[lo]), n0 - int(above0[lo])
        return self._condition("<", threshold, mask, below1, n1, below0, n0, -rank_biserial)

    # -- categorical --------------------------------------------------------------------------
    def _categorical(self, slow: BoolArray, active: BoolArray) -> Condition | None:
        s, o = slow & active, ~slow & active
        n1, n0 = int(s.sum()), int(o.sum())
        if n1 < MIN_GROUP or n0 < MIN_GROUP or len(self.categories) < 2:
            return None
        present = self.codes >= 0
        k = len(self.categories)
        c1 = np.bincount(self.codes[s & present], minlength=k)
        c0 = np.bincount(self.codes[o & present], minlength=k)
        diff = c1 / n1 - c0 / n0
        best = int(np.argmax(diff))
        if not self._significant(int(c1[best]), n1, int(c0[best]), n0):
            return None
        mask = active & (self.codes == best)
        return self._condition("=", self.categories[best], mask, int(c1[best]), n1, int(c0[best]), n0, None)

    def _presence(self, slow: BoolArray, active: BoolArray) -> Condition | None:
        s, o = slow & active, ~slow & active
        n1, n0 = int(s.sum()), int(o.sum())
        if n1 < MIN_GROUP or n0 < MIN_GROUP:
            return None
        s1, s0 = int((self.present & s).sum()), int((self.present & o).sum())
        if s1 + s0 in (0, n1 + n0):
            return None
        if s1 / n1 >= s0 / n0:
            if not self._significant(s1, n1, s0, n0):
                return None
            return self._condition("is set", None, active & self.present, s1, n1, s0, n0, None)
        if not self._significant(n1 - s1, n1, n0 - s0, n0):
            return None
        return self._condition("is not set", None, active & ~self.present, n1 - s1, n1, n0 - s0, n0, None)

    def _significant(self, a: int, n1: int, b: int, n0: int) -> bool:
        """Two-proportion z-test: is a/n1 larger than b/n0 beyond chance?"""
        p1, p0 = a / n1, b / n0
        pooled = (a + b) / (n1 + n0)
        var = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n0)
        if var <= 0.0:
            return p1 > p0
        return (p1 - p0) / math.sqrt(var) > self.z_critical

    def _condition(
        self, op: str, value: Any, mask: BoolArray, a: int, n1: int, b: int, n0: int, effect: float | None
    ) -> Condition:
        separation = a / n1 - b / n0
        if self.integral and isinstance(value, float):
            value = int(value)
        return Condition(self.key, op, value, mask, a, n1, b, n0, separation,
                         effect if effect is not None else separation)


def top_mask(values: FloatArray, quantile: float, minimum: int) -> BoolArray:
    """The traces in the top ``1 - quantile`` of ``values`` (at least ``minimum``, never all)."""
    n = len(values)
    k = max(math.ceil(n * (1.0 - quantile)), min(minimum, n // 2))
    k = min(k, n - 1)
    mask = np.zeros(n, dtype=bool)
    if k <= 0:
        return mask
    mask[np.argpartition(-values, k - 1)[:k]] = True
    return mask
