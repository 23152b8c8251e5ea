"""Old and new drift hot paths give identical results (issue 13's rework of binning and the window).

The package as it was before the rework is loaded from git (tests/_drift_before.py) and fed the
same traffic as today's: random rows, shifted rows, hostile values (NaN, ±inf, ±1e308, values
far outside narrow ranges), dicts with absent features, unseen and missing categories, batches,
batches over ``max_rows``, outputs and embeddings. Every result dict, the window state after
each recompute, the reports, the window counts and the cumulative totals exporters read must be
equal: bit for bit (``==`` on floats), no tolerance.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from _drift_before import load_before

from mltrace.drift import DriftMonitor, ReferenceProfile

OLD = load_before()
pytestmark = pytest.mark.skipif(OLD is None, reason="git history with the commit before the rework is needed")
_TOP_CHI = -2 * math.log(0.1)


def _stable_top(self: Any, chi_row: np.ndarray) -> list[str]:
    """The old code's top features re-ranked by the stable rule (most unusual first, ties by feature
    index), written plainly; the contributions chosen must match the old code's own choice."""
    values = chi_row.tolist()
    ranked = sorted(range(len(values)), key=lambda i: (-values[i], i))[:5]
    chosen = [i for i in ranked if values[i] > _TOP_CHI]
    names = list(self.g.names)
    own = _OLD_TOP(self, chi_row)
    assert sorted(values[names.index(n)] for n in own) == sorted(values[i] for i in chosen)
    return [names[i] for i in chosen]


if OLD is not None:
    _OLD_TOP = OLD._group.GroupMonitor.top_features
    OLD._group.GroupMonitor.top_features = _stable_top


def _pair(profile: ReferenceProfile, **kwargs: Any) -> tuple[DriftMonitor, Any]:
    old: ModuleType = OLD  # type: ignore[assignment]
    old_profile = old.ReferenceProfile.from_dict(profile.to_dict())
    return DriftMonitor(profile, **kwargs), old.DriftMonitor(old_profile, **kwargs)


def _same_state(new: DriftMonitor, old: Any) -> None:
    with new._lock:
        new_counts = new._inputs.ring.counts.copy()
        new._inputs.ring.fold()
        new_totals = new._inputs.ring.totals.copy()
    old._inputs.ring.fold()
    np.testing.assert_array_equal(new_counts, old._inputs.ring.counts)
    np.testing.assert_array_equal(new_totals, old._inputs.ring.totals)
    assert new.window_state() == old.window_state()
    assert new._window == old._window
    assert new.report() == old.report()


def _feed(new: DriftMonitor, old: Any, requests: list[tuple[object, dict[str, Any]]]) -> None:
    for i, (x, kwargs) in enumerate(requests):
        got, want = new.score(x, **kwargs), old.score(x, **kwargs)
        assert got == want, f"request {i}: {x!r:.200}"
        if i % 37 == 0:
            _same_state(new, old)
    _same_state(new, old)


#: a NaN with the sign bit set: as a signed integer its bit pattern is negative (see _binning.KEY_BITS)
_NEG_NAN = float(np.copysign(np.nan, -1.0))


def _hostile_row(rng: np.random.Generator, m: int) -> np.ndarray:
    row = rng.normal(size=m)
    picks = rng.integers(0, m, size=rng.integers(1, 4))
    row[picks] = rng.choice(
        [np.nan, _NEG_NAN, np.inf, -np.inf, 1e308, -1e308, 1.7e308, 5e-324, 1e30, -1e30], size=len(picks)
    )
    return row


@pytest.mark.parametrize("m", [30, 70])  # 70: one rows search the keys' bit patterns (BIT_SEARCH_MIN)
def test_numerical_rows_batches_and_hostile_values_score_identically(m: int) -> None:
    rng = np.random.default_rng(1)
    train = rng.normal(size=(20_000, m))
    train[:, 0] = rng.random(20_000) * 1e-3  # a narrow range: huge values would overflow the affine map
    train[:, 1] = np.round(rng.normal(size=20_000))  # ties in the quantile edges
    train[:, 2] = 7.0  # a constant feature
    new, old = _pair(ReferenceProfile.from_data(train), window=300, recompute_every=50, max_rows=40)
    requests: list[tuple[object, dict[str, Any]]] = []
    for i in range(1500):
        kind = i % 10
        if kind < 5:
            requests.append((rng.normal(size=m) + (0.8 if i > 900 else 0.0), {}))
        elif kind == 5:
            requests.append((_hostile_row(rng, m), {}))
        elif kind == 6:
            requests.append((rng.normal(size=(int(rng.integers(2, 30)), m)), {}))
        elif kind == 7:
            batch = rng.normal(size=(int(rng.integers(41, 200)), m))  # over max_rows: a strided sample
            batch[rng.integers(0, len(batch)), rng.integers(0, m)] = np.nan
            requests.append((batch, {}))
        elif kind == 8:
            requests.append((rng.normal(size=m).tolist(), {"update": bool(i % 3)}))
        else:
            requests.append((np.full(m, rng.choice([np.nan, np.inf, -np.inf, 1e308])), {}))
    _feed(new, old, requests)


def test_mixed_dicts_with_absent_unseen_and_missing_values_score_identically() -> None:
    rng = np.random.default_rng(2)
    n = 10_000
    train: dict[str, Any] = {f"n{j}": rng.normal(size=n) for j in range(6)}
    train["c0"] = rng.choice(["a", "b", "c"], size=n)
    train["n6"] = rng.exponential(size=n)
    train["c1"] = rng.choice(["x", "y", "z", "w"], size=n, p=[0.7, 0.2, 0.09, 0.01])
    new, old = _pair(ReferenceProfile.from_data(train), window=200, recompute_every=25)
    names = list(train)
    requests: list[tuple[object, dict[str, Any]]] = []
    for i in range(800):
        record: dict[str, Any] = {k: (v[i] if k.startswith("c") else float(v[i])) for k, v in train.items()}
        if i % 7 == 0:
            record.pop(names[i % len(names)])
        if i % 5 == 0:
            record["c0"] = ["a", "zz", None, float("nan"), 3][int(rng.integers(0, 5))]
        if i % 11 == 0:
            record["n3"] = [None, "text", float("nan"), float("inf"), [1, 2]][int(rng.integers(0, 5))]
        if i > 500:
            record["n0"] = float(record.get("n0", 0.0)) + 2.0
        requests.append((record if i % 13 else [record, dict(record)], {}))
    _feed(new, old, requests)


def test_outputs_and_embeddings_score_identically() -> None:
    rng = np.random.default_rng(3)
    n = 8000
    profile = ReferenceProfile.from_data(
        rng.normal(size=(n, 4)), outputs=rng.beta(2, 5, n), embeddings={"emb": rng.normal(size=(n, 8))}
    )
    new, old = _pair(profile, window=150, recompute_every=20)
    for i in range(600):
        shift = 0.5 if i > 300 else 0.0
        x = rng.normal(size=(1 if i % 4 else 5, 4))
        vectors = rng.normal(size=(len(x), 8)) + shift
        if i % 9 == 0:
            vectors[0, 0] = np.nan
        assert new.score(x, embeddings={"emb": vectors}) == old.score(x, embeddings={"emb": vectors})
        y: object = float(rng.beta(2, 5) + shift) if i % 3 else rng.beta(2, 5, size=7) + shift
        assert new.observe_output(y) == old.observe_output(y)
    _same_state(new, old)
    np.testing.assert_array_equal(new._outputs.ring.counts, old._outputs.ring.counts)  # type: ignore[union-attr]


def test_reset_then_traffic_scores_identically() -> None:
    rng = np.random.default_rng(4)
    new, old = _pair(ReferenceProfile.from_data(rng.normal(size=(5000, 5))), window=64, recompute_every=10)
    rows = rng.normal(size=(400, 5))
    for i, row in enumerate(rows):
        assert new.score(row) == old.score(row)
        if i in (100, 101, 250):
            new.reset()
            old.reset()
    _same_state(new, old)
