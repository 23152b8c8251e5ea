"""Drift scoring of hostile or oversized requests: the shape is checked before any value is
converted, and a huge batch costs a bounded sample, never work proportional to its size.

Timings here are relative (the hostile call against a conversion of the same input measured in
the same run), with a generous factor, so a loaded machine cannot make them flaky.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import numpy as np
import pytest

from mltrace.drift import DriftMonitor, ProfileMismatchError, ReferenceProfile


@pytest.fixture(scope="module")
def monitor() -> DriftMonitor:
    rng = np.random.default_rng(7)
    profile = ReferenceProfile.from_data(
        {"a": rng.normal(size=5000), "b": rng.normal(size=5000), "c": rng.normal(size=5000)}
    )
    return DriftMonitor(profile, max_rows=1000)


def _best(fn: Callable[[], object], rounds: int = 3) -> float:
    best = float("inf")
    for _ in range(rounds):
        t0 = time.perf_counter()
        with contextlib.suppress(ProfileMismatchError):
            fn()
        best = min(best, time.perf_counter() - t0)
    return best


def test_a_ten_million_value_row_is_refused_before_conversion(monitor: DriftMonitor) -> None:
    """A 10M-int list raises ProfileMismatchError on its length alone (it took 457 ms to convert first)."""
    hostile = [0] * 10_000_000
    with pytest.raises(ProfileMismatchError, match=r"expected 3 values per row.*10,000,000 values"):
        monitor.score(hostile)
    refused = _best(lambda: monitor.score(hostile))
    converting = _best(lambda: np.asarray(hostile, dtype=np.float64), rounds=1)
    assert refused < converting / 50, (refused, converting)  # a length check: microseconds vs ~0.4 s


def test_a_wide_batch_is_refused_on_its_first_row(monitor: DriftMonitor) -> None:
    """A batch whose rows have the wrong width is refused from the first row, not after converting it."""
    hostile = [[0.0] * 1000] * 10_000
    with pytest.raises(ProfileMismatchError, match="a batch of 10,000 rows of 1000 values"):
        monitor.score(hostile)
    with pytest.raises(ProfileMismatchError, match="shape"):
        monitor.score(np.zeros((10, 4)))


def test_a_huge_feature_value_is_missing_without_walking_it(monitor: DriftMonitor) -> None:
    """A dict whose feature is a 10M-item list reads that feature as missing, without converting the list."""
    hostile = {"a": [1] * 10_000_000, "b": 0.1, "c": 0.2}
    result = monitor.score(hostile, update=False)
    assert result["missing_features"] == ["a"]
    scored = _best(lambda: monitor.score(hostile, update=False))
    converting = _best(lambda: np.asarray(hostile["a"], dtype=np.float64), rounds=1)
    assert scored < converting / 20, (scored, converting)


@pytest.mark.parametrize("shape", ["list", "array", "records"])
def test_a_huge_batch_is_scored_as_a_bounded_sample(monitor: DriftMonitor, shape: str) -> None:
    """A 200,000-row batch is scored as max_rows strided rows and says so (sampled_from)."""
    rng = np.random.default_rng(3)
    arr = rng.normal(size=(200_000, 3))
    batch: object = {
        "list": arr.tolist(),
        "array": arr,
        "records": [dict(zip("abc", r, strict=True)) for r in arr.tolist()],
    }[shape]
    result = monitor.score(batch, update=False)
    assert result["rows"] == 1000 and result["sampled_from"] == 200_000
    assert 0.4 < result["score"] < 0.6  # reference-like rows: the mean row score sits near 0.5
    assert result["max_score"] > 0.99 and result["unusual_share"] < 0.05


def test_batch_score_is_the_mean_row_with_the_worst_beside_it(monitor: DriftMonitor) -> None:
    """A batch of reference-like rows scores near 0.5 (not its saturated worst row); a drifted batch near 1."""
    rng = np.random.default_rng(5)
    calm = monitor.score(rng.normal(size=(100, 3)), update=False)
    assert 0.35 < calm["score"] < 0.65 and calm["max_score"] > 0.9
    drifted = monitor.score(rng.normal(3.0, 1.0, size=(100, 3)), update=False)
    assert drifted["score"] > 0.95 and drifted["unusual_share"] > 0.5
    attrs = monitor.span_attributes(calm)
    assert attrs["ml.drift.max_score"] == calm["max_score"]
    assert attrs["ml.drift.unusual_share"] == calm["unusual_share"]
    one = monitor.span_attributes(monitor.score([0.0, 0.0, 0.0], update=False))
    assert "ml.drift.max_score" not in one  # one row: its score is its own worst


def test_a_huge_embedding_is_refused_on_its_length() -> None:
    """An embedding given as a 10M-item list is refused on its length, before it is walked or converted."""
    rng = np.random.default_rng(9)
    profile = ReferenceProfile.from_data({"x": rng.normal(size=2000)}, embeddings={"emb": rng.normal(size=(2000, 8))})
    monitor = DriftMonitor(profile)
    hostile = [0.5] * 10_000_000
    with pytest.raises(ProfileMismatchError, match="10,000,000 items"):
        monitor.score({"x": 0.1, "emb": hostile})
    refused = _best(lambda: monitor.score({"x": 0.1, "emb": hostile}))
    converting = _best(lambda: np.asarray(hostile, dtype=np.float64), rounds=1)
    assert refused < converting / 50, (refused, converting)
    assert monitor.score({"x": 0.1, "emb": rng.normal(size=8).tolist()}, update=False)["rows"] == 1


def test_huge_output_batches_are_sampled_before_conversion() -> None:
    """observe_output of a 2M-prediction batch scores max_rows of them and says so."""
    rng = np.random.default_rng(11)
    profile = ReferenceProfile.from_data({"x": rng.normal(size=2000)}, outputs=rng.random(2000))
    monitor = DriftMonitor(profile, max_rows=500)
    result = monitor.observe_output(rng.random(2_000_000).tolist(), update=False)
    assert result is not None and result["rows"] == 500 and result["sampled_from"] == 2_000_000
    assert monitor.observe_output(0.5, update=False)["rows"] == 1  # type: ignore[index]
