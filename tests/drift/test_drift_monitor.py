"""DriftMonitor: per-request scores, windowed alerts on drift scenarios, safety under odd input and load."""

from __future__ import annotations

import threading
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mltrace import semconv
from mltrace.drift import DriftMonitor, DriftThresholds, ProfileMismatchError, ReferenceProfile

N_REF = 30_000
CITIES = ["paris", "lyon", "nice", "lille"]
CITY_P = [0.4, 0.3, 0.2, 0.1]

Generator = Callable[[np.random.Generator, int], pd.DataFrame]


def _data(
    rng: np.random.Generator, n: int, shift: float = 0.0, scale: float = 1.0, new_city: float = 0.0
) -> pd.DataFrame:
    """Ten numerical features (normal, log-normal, integer) and one categorical, optionally drifted."""
    frame = {f"n{j}": rng.normal(size=n) for j in range(6)}
    frame["n0"] = rng.normal(shift, scale, size=n)
    frame["ln"] = rng.lognormal(0, 1, size=n)
    frame["k"] = rng.integers(0, 5, size=n).astype(float)
    frame["u"] = rng.random(n)
    frame["t"] = rng.standard_t(4, size=n)
    cities = rng.choice(CITIES, size=n, p=CITY_P).astype(object)
    if new_city:
        cities[rng.random(n) < new_city] = "marseille"
    frame["city"] = cities
    return pd.DataFrame(frame)


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    return ReferenceProfile.from_data(_data(np.random.default_rng(0), N_REF))


def _stream(monitor: DriftMonitor, make: Generator, rows: int, seed: int, chunk: int = 100) -> list[bool]:
    """Feed ``rows`` rows in chunks (one recompute each); the alert flag after each chunk."""
    rng = np.random.default_rng(seed)
    alerts = []
    for _ in range(rows // chunk):
        alerts.append(bool(monitor.score(make(rng, chunk))["alert"]))
    return alerts


# -- per-request scores ---------------------------------------------------------------------------


def test_score_result_has_the_documented_keys(profile: ReferenceProfile) -> None:
    """score() returns score, top features, reference id, method, window state and odd-value lists."""
    result = DriftMonitor(profile).score(_data(np.random.default_rng(1), 1).iloc[0].to_dict())
    assert {
        "score",
        "top_features",
        "reference",
        "method",
        "window_score",
        "alert",
        "missing_features",
        "unseen_categories",
    } <= set(result)
    assert 0.0 <= result["score"] <= 1.0
    assert result["reference"] == profile.id
    assert result["window_score"] is None and result["alert"] is False


def test_score_is_calibrated_on_reference_data(profile: ReferenceProfile) -> None:
    """On fresh reference-like rows the score is about uniform: ~5% of rows score above 0.95."""
    monitor = DriftMonitor(profile)
    scores = monitor.score(_data(np.random.default_rng(2), 4000), update=False)["row_scores"]
    assert 0.4 < float(np.mean(scores)) < 0.6
    assert 0.02 < float(np.mean(np.asarray(scores) > 0.95)) < 0.08


def test_out_of_range_value_is_the_most_extreme(profile: ReferenceProfile) -> None:
    """A value beyond the reference range gives a high score and leads the top features."""
    row = _data(np.random.default_rng(3), 1).iloc[0].to_dict()
    row["u"] = 7.0
    result = DriftMonitor(profile).score(row)
    assert result["score"] > 0.99
    assert result["top_features"][0] == "u"


def test_unseen_category_and_missing_values_are_reported(profile: ReferenceProfile) -> None:
    """An unseen category and missing or non-numeric values are listed and raise the score."""
    row = _data(np.random.default_rng(4), 1).iloc[0].to_dict()
    row.update(city="marseille", n1=None, n2="not a number")
    del row["n3"]
    result = DriftMonitor(profile).score(row)
    assert result["unseen_categories"] == ["city"]
    assert set(result["missing_features"]) == {"n1", "n2", "n3"}
    assert result["score"] > 0.99
    assert set(result["top_features"]) >= {"city", "n1"}


@pytest.mark.parametrize("shape", ["dict", "row", "list", "records", "batch", "frame"])
def test_every_request_shape_scores_the_same(profile: ReferenceProfile, shape: str) -> None:
    """A dict, a row in feature order, a list, records, a 2-D batch and a DataFrame score identically."""
    frame = _data(np.random.default_rng(5), 3)
    rows = frame[list(profile.feature_names)]
    inputs: dict[str, Any] = {
        "dict": rows.iloc[0].to_dict(),
        "row": rows.to_numpy(dtype=object)[0],
        "list": rows.iloc[0].tolist(),
        "records": rows.to_dict("records"),
        "batch": rows.to_numpy(dtype=object),
        "frame": rows,
    }
    monitor = DriftMonitor(profile)
    expected = monitor.score(rows.iloc[0].to_dict(), update=False)["score"]
    result = monitor.score(inputs[shape], update=False)
    first = result["row_scores"][0] if "row_scores" in result else result["score"]
    assert first == pytest.approx(expected, abs=1e-12)
    if shape in {"records", "batch", "frame"}:
        assert result["rows"] == 3 and result["max_score"] == max(result["row_scores"])
        assert result["score"] == pytest.approx(sum(result["row_scores"]) / 3)


def test_numeric_only_profile_takes_float_arrays() -> None:
    """A profile of plain floats scores a 1-D numpy row and a 2-D batch."""
    rng = np.random.default_rng(6)
    monitor = DriftMonitor(ReferenceProfile.from_data(rng.normal(size=(5000, 4))))
    assert 0 <= monitor.score(rng.normal(size=4))["score"] <= 1
    assert len(monitor.score(rng.normal(size=(7, 4)))["row_scores"]) == 7


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.zeros(3), "expected 11 values per row"),
        (np.zeros((2, 12)), "expected 11 values per row"),
        ([[1.0, 2.0], [3.0]], "different lengths|expected"),
        ("a string", "cannot read a str"),
        ([], "empty request"),
    ],
)
def test_mismatched_shapes_raise_profile_mismatch(profile: ReferenceProfile, bad: object, message: str) -> None:
    """Inputs that cannot be aligned with the profile raise ProfileMismatchError saying why."""
    with pytest.raises(ProfileMismatchError, match=message):
        DriftMonitor(profile).score(bad)


def test_strict_mode_rejects_missing_features(profile: ReferenceProfile) -> None:
    """With strict=True a dict or DataFrame without some features raises, naming them."""
    row = _data(np.random.default_rng(7), 1).iloc[0].to_dict()
    del row["ln"]
    with pytest.raises(ProfileMismatchError, match=r"\['ln'\]"):
        DriftMonitor(profile, strict=True).score(row)
    with pytest.raises(ProfileMismatchError, match="ln"):
        DriftMonitor(profile, strict=True).score(pd.DataFrame([row]))
    assert DriftMonitor(profile).score(row)["missing_features"] == ["ln"]


_ODD = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**400), max_value=10**400),
    st.text(max_size=6),
    st.binary(max_size=4),
    st.none(),
    st.booleans(),
    st.sampled_from([*CITIES, "1e999", "nan", "-inf", "3.5"]),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(_ODD, min_size=11, max_size=11), as_dict=st.booleans(), drop=st.integers(0, 11))
def test_odd_values_never_raise(profile: ReferenceProfile, values: list[object], as_dict: bool, drop: int) -> None:
    """Arbitrary values (NaN, inf, huge ints, text, bytes, None, lists) score in [0, 1] and update the window."""
    monitor = _shared_monitor(profile)
    names = list(profile.feature_names)
    x: object = {n: v for i, (n, v) in enumerate(zip(names, values, strict=True)) if i != drop} if as_dict else values
    result = monitor.score(x, update=True)
    assert 0.0 <= result["score"] <= 1.0
    assert monitor._inputs.ring.counts.sum(axis=1).tolist() == [monitor._inputs.ring.fill] * len(names)


def test_values_near_float_max_score_without_overflow_warnings() -> None:
    """Binning multiplies by 1/width: 1.8e308 overflowed to inf (clipped correctly, but numpy
    warned, which warnings-as-errors turns into a failed score). Found by the test above."""
    profile = ReferenceProfile.from_data(np.random.default_rng(3).normal(size=(1000, 3)) * 1e-3)
    monitor = DriftMonitor(profile, window=50)
    result = monitor.score([1.7e308, -1.79e308, 3.0])
    assert 0.99 < result["score"] <= 1.0


_MONITORS: dict[str, DriftMonitor] = {}


def _shared_monitor(profile: ReferenceProfile) -> DriftMonitor:
    return _MONITORS.setdefault(profile.id, DriftMonitor(profile, window=50, recompute_every=7))


# -- the window ------------------------------------------------------------------------------------


def test_report_has_the_documented_keys(profile: ReferenceProfile) -> None:
    """report() gives the alert, score, fill, thresholds and per-feature statistics and bands."""
    monitor = DriftMonitor(profile, window=500)
    monitor.score(_data(np.random.default_rng(8), 500))
    report = monitor.report()
    assert {"alert", "score", "n", "features", "top_features", "reference", "thresholds", "output"} <= set(report)
    assert report["n"] == 500
    numeric, categorical = report["features"]["n0"], report["features"]["city"]
    assert {"psi", "js", "ks", "wasserstein", "wasserstein_norm", "alert", "band"} <= set(numeric)
    assert numeric["band"] in {"ok", "warn", "alert"}
    assert categorical["ks"] is None and categorical["chi2"] is not None


@pytest.mark.parametrize("window", [200, 1000])
def test_no_drift_raises_no_alarm_over_many_windows(profile: ReferenceProfile, window: int) -> None:
    """Reference-like traffic raises no alert in 400 recomputes (fixed PSI 0.1 alone would at window 200)."""
    monitor = DriftMonitor(profile, window=window)
    alerts = _stream(monitor, lambda rng, n: _data(rng, n), 40_000, seed=window)
    assert sum(alerts) == 0
    assert monitor.report()["alert"] is False


@pytest.mark.parametrize(
    ("make", "feature"),
    [
        (lambda rng, n: _data(rng, n, shift=0.5), "n0"),
        (lambda rng, n: _data(rng, n, scale=1.5), "n0"),
        (lambda rng, n: _data(rng, n, new_city=0.1), "city"),
    ],
    ids=["mean-shift", "variance", "new-category"],
)
def test_drift_is_detected_within_one_window(profile: ReferenceProfile, make: Generator, feature: str) -> None:
    """A 0.5 std mean shift, a 1.5x spread and a 10% new category alert within one 1000-row window."""
    monitor = DriftMonitor(profile, window=1000)
    alerts = _stream(monitor, make, 1000, seed=9)
    assert alerts[-1]
    report = monitor.report()
    assert report["alert"] and report["top_features"][0] == feature
    assert report["features"][feature]["alert"]
    assert sum(f["alert"] for f in report["features"].values()) == 1


def test_gradual_drift_is_detected(profile: ReferenceProfile) -> None:
    """A mean that creeps from 0 to 1 std over 20,000 requests is flagged before it reaches 0.6 std."""
    monitor = DriftMonitor(profile, window=1000)
    rng = np.random.default_rng(10)
    first_alert = None
    for step in range(200):
        shift = step / 200
        if monitor.score(_data(rng, 100, shift=shift))["alert"]:
            first_alert = shift
            break
    assert first_alert is not None and first_alert < 0.6


def test_missing_rate_rise_alerts(profile: ReferenceProfile) -> None:
    """A feature that goes missing in 30% of requests alerts on its missing rate."""
    monitor = DriftMonitor(profile, window=500)
    data = _data(np.random.default_rng(11), 500)
    data.loc[data.sample(frac=0.3, random_state=1).index, "ln"] = np.nan
    monitor.score(data)
    feature = monitor.report()["features"]["ln"]
    assert feature["alert"] and feature["missing_rate"] == pytest.approx(0.3, abs=0.01)


def test_per_feature_thresholds_can_silence_a_feature(profile: ReferenceProfile) -> None:
    """Turning a feature's tests off (None) per feature stops it alerting; the others still do."""
    off = {"psi_alert": None, "psi_warn": None, "js": None, "wasserstein": None}
    monitor = DriftMonitor(profile, window=1000, thresholds=DriftThresholds(features={"n0": off}))
    monitor.score(_data(np.random.default_rng(12), 1000, shift=1.0))
    assert monitor.report()["alert"] is False
    monitor.score(_data(np.random.default_rng(13), 1000, new_city=0.2))
    assert monitor.report()["top_features"] == ["city"]


def test_threshold_settings_are_validated() -> None:
    """Negative thresholds, bad alphas and unknown per-feature keys raise ValueError naming them."""
    with pytest.raises(ValueError, match="psi_alert"):
        DriftThresholds(psi_alert=-1)
    with pytest.raises(ValueError, match="alpha"):
        DriftThresholds(alpha=2)
    with pytest.raises(ValueError, match="unknown keys"):
        DriftThresholds(features={"x": {"psii": 0.2}})


def test_window_score_waits_for_min_samples(profile: ReferenceProfile) -> None:
    """No window score or alert before min_samples values are in the window."""
    monitor = DriftMonitor(profile, recompute_every=10, thresholds=DriftThresholds(min_samples=50))
    rng = np.random.default_rng(14)
    assert monitor.score(_data(rng, 40, shift=3.0))["window_score"] is None
    result = monitor.score(_data(rng, 20, shift=3.0))
    assert result["window_score"] is not None and result["alert"]


def test_recompute_every_t_seconds(profile: ReferenceProfile) -> None:
    """With recompute_seconds, a request after the interval refreshes the window state."""
    monitor = DriftMonitor(profile, recompute_every=10**9, recompute_seconds=0.01)
    monitor.score(_data(np.random.default_rng(15), 200))
    time.sleep(0.02)
    assert monitor.score(_data(np.random.default_rng(16), 1))["window_score"] is not None


def test_batch_and_row_updates_give_the_same_window(profile: ReferenceProfile) -> None:
    """Pushing rows one by one or in batches of any size leaves identical window counts."""
    data = _data(np.random.default_rng(17), 730)
    one, many = DriftMonitor(profile, window=300), DriftMonitor(profile, window=300)
    for record in data.to_dict("records"):
        one.score(record)
    for start, size in [(0, 5), (5, 250), (255, 301), (556, 174)]:
        many.score(data.iloc[start : start + size])
    np.testing.assert_array_equal(one._inputs.ring.counts, many._inputs.ring.counts)
    ring = many._inputs.ring
    recount = np.stack([np.bincount(ring.codes[:, j], minlength=ring.n_codes) for j in range(ring.m)])
    np.testing.assert_array_equal(ring.counts, recount)


def test_memory_is_bounded(profile: ReferenceProfile) -> None:
    """A full window keeps its size: arrays, byte count and traced memory stay flat under traffic."""
    monitor = DriftMonitor(profile, window=200, recompute_every=20)
    rng = np.random.default_rng(18)
    records = _data(rng, 3000).to_dict("records")
    for record in records[:1000]:
        monitor.score(record)
    nbytes, shape = monitor.nbytes, monitor._inputs.ring.codes.shape
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for record in records[1000:]:
        monitor.score(record)
    growth = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert monitor.nbytes == nbytes and monitor._inputs.ring.codes.shape == shape
    assert monitor._inputs.ring.fill == 200 and monitor._inputs.ring.seen == 3000
    assert growth < 64 * 1024


def test_memory_per_monitor_is_as_documented() -> None:
    """A 1000-row window over 100 numerical features holds 100 KB of uint8 codes (plus counts)."""
    profile = ReferenceProfile.from_data(np.random.default_rng(19).normal(size=(5000, 100)))
    ring = DriftMonitor(profile, window=1000)._inputs.ring
    assert ring.codes.dtype == np.uint8 and ring.codes.nbytes == 100_000
    assert ring.nbytes < 200_000


def test_concurrent_scores_and_reports_stay_consistent(profile: ReferenceProfile) -> None:
    """Threads scoring while another reports lose no update and never see torn counts."""
    monitor = DriftMonitor(profile, window=500, recompute_every=25)
    batches = [_data(np.random.default_rng(20 + i), 400).to_dict("records") for i in range(6)]
    errors: list[BaseException] = []
    done = threading.Event()

    def score(records: list[dict[str, Any]]) -> None:
        try:
            for record in records:
                monitor.score(record)
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)

    def report() -> None:
        try:
            while not done.is_set():
                r = monitor.report()
                assert all(f["n"] <= 500 for f in r["features"].values())
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=score, args=(b,)) for b in batches]
    reporter = threading.Thread(target=report)
    reporter.start()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    done.set()
    reporter.join()
    assert not errors
    ring = monitor._inputs.ring
    assert ring.seen == 2400 and ring.fill == 500
    recount = np.stack([np.bincount(ring.codes[:, j], minlength=ring.n_codes) for j in range(ring.m)])
    np.testing.assert_array_equal(ring.counts, recount)


async def test_score_is_usable_from_async_handlers(profile: ReferenceProfile) -> None:
    """score() is synchronous and short, so async handlers call it directly (no await needed)."""
    import asyncio

    monitor = DriftMonitor(profile, window=100, recompute_every=10)
    records = _data(np.random.default_rng(26), 200).to_dict("records")

    async def handler(record: dict[str, Any]) -> float:
        await asyncio.sleep(0)
        return float(monitor.score(record)["score"])

    scores = await asyncio.gather(*(handler(r) for r in records))
    assert len(scores) == 200 and monitor._inputs.ring.fill == 100


# -- span attributes, outputs, embeddings ---------------------------------------------------------


def test_span_attributes_are_a_handful_of_primitives(profile: ReferenceProfile) -> None:
    """span_attributes gives at most seven ml.drift.* attributes with primitive values."""
    monitor = DriftMonitor(profile, window=200)
    monitor.score(_data(np.random.default_rng(21), 200, shift=2.0))
    attrs = monitor.span_attributes(monitor.score(_data(np.random.default_rng(22), 1, shift=2.0)))
    allowed = {
        semconv.ML_DRIFT_SCORE,
        semconv.ML_DRIFT_WINDOW_SCORE,
        semconv.ML_DRIFT_METHOD,
        semconv.ML_DRIFT_TOP_FEATURES,
        semconv.ML_DRIFT_ALERT,
        semconv.ML_DRIFT_REFERENCE,
        semconv.ML_DRIFT_WINDOW_FEATURES,
    }
    assert set(attrs) <= allowed and len(attrs) <= 7
    assert attrs[semconv.ML_DRIFT_ALERT] is True
    assert attrs[semconv.ML_DRIFT_REFERENCE] == profile.id
    assert attrs[semconv.ML_DRIFT_WINDOW_FEATURES] == ["n0"]
    for value in attrs.values():
        assert isinstance(value, (str, bool, float, list))
        if isinstance(value, list):
            assert all(isinstance(v, str) for v in value)


def test_output_drift_is_reported_under_output() -> None:
    """observe_output() feeds an output window reported under report()['output']."""
    rng = np.random.default_rng(23)
    profile = ReferenceProfile.from_data(rng.normal(size=(20_000, 3)), outputs=rng.beta(2, 5, 20_000))
    monitor = DriftMonitor(profile, window=500)
    for value in rng.beta(2, 5, 500):
        monitor.observe_output(float(value))
    assert monitor.report()["output"]["alert"] is False
    result = monitor.observe_output(rng.beta(5, 2, 500))
    assert result["alert"] is True
    assert monitor.report()["output"]["features"]["output"]["alert"]
    without = DriftMonitor(ReferenceProfile.from_data(rng.normal(size=(100, 2))))
    assert without.has_outputs is False and monitor.has_outputs is True
    assert without.observe_output(1.0) is None  # output drift is optional: nothing to score, no error
    assert without.report()["output"] is None


def test_class_label_outputs_drift() -> None:
    """Categorical outputs (class labels) drift when the predicted class mix changes."""
    rng = np.random.default_rng(24)
    profile = ReferenceProfile.from_data(rng.normal(size=(20_000, 2)), outputs=rng.choice(3, 20_000, p=[0.6, 0.3, 0.1]))
    monitor = DriftMonitor(profile, window=500)
    monitor.observe_output(rng.choice(3, 500, p=[0.2, 0.3, 0.5]))
    assert monitor.report()["output"]["alert"] is True


def test_embedding_centroid_drift_is_detected() -> None:
    """Embeddings whose centroid moves alert through the centroid distance and projections."""
    rng = np.random.default_rng(25)
    basis = rng.normal(size=(32,))
    profile = ReferenceProfile.from_data(
        {"x": rng.normal(size=10_000)}, embeddings={"emb": rng.normal(size=(10_000, 32))}
    )
    calm, moved = DriftMonitor(profile, window=500), DriftMonitor(profile, window=500)
    calm.score(rng.normal(size=(500, 1)), embeddings={"emb": rng.normal(size=(500, 32))})
    moved.score(rng.normal(size=(500, 1)), embeddings={"emb": rng.normal(size=(500, 32)) + 0.3 * basis})
    assert calm.report()["alert"] is False
    report = moved.report()
    assert report["alert"] and report["embeddings"]["emb"]["alert"]
    assert report["embeddings"]["emb"]["centroid_distance"] > 0.2
    one = moved.score({"x": 0.1, "emb": list(rng.normal(size=32))})
    assert 0 <= one["score"] <= 1
    assert set(moved.score({"x": [1, 2], "emb": None})["missing_features"]) == {"x", "emb"}
    with pytest.raises(ProfileMismatchError, match="32 dimensions"):
        moved.score({"x": 0.1, "emb": [1.0, 2.0]})


@pytest.mark.parametrize("m", [3, 12, 100])
def test_top_features_rank_ties_by_feature_index(m: int) -> None:
    """Features equally unusual are ranked by feature index, whether few or many features are past
    the threshold (a Python sort up to 40, a numpy sort beyond); the most unusual come first."""
    rng = np.random.default_rng(7)
    monitor = DriftMonitor(ReferenceProfile.from_data(rng.normal(size=(5000, m))), window=50)
    names = list(monitor.profile.inputs.names)
    above = np.full(m, 1e6)  # every feature above its reference range: all tied at the extreme p-value
    assert monitor.score(above)["top_features"] == names[:5]
    above[0] = 0.0  # one typical value: out of the list, the next ones move up
    assert monitor.score(above)["top_features"] == names[1:6]
    typical = np.zeros(m)
    typical[[m - 1, 1]] = 1e6  # two features out of range, the rest typical: the later index still second
    assert monitor.score(typical)["top_features"][:2] == [names[1], names[m - 1]]


def test_one_row_top_features_from_order_keys_match_the_contributions_ranking() -> None:
    """The one-row path ranks precomputed order keys of its flat indices; the batch path ranks the
    contributions: the same lists, ties, missing and out-of-range values included."""
    rng = np.random.default_rng(8)
    train = rng.normal(size=(5000, 60))
    train[:, 1] = np.round(train[:, 1])  # ties in the quantile edges
    group = DriftMonitor(ReferenceProfile.from_data(train), window=50)._inputs
    rows = rng.normal(size=(400, 60)) * rng.choice([1.0, 3.0, 10.0], size=(400, 1))
    rows[rng.random(rows.shape) < 0.05] = np.nan
    rows[rng.random(rows.shape) < 0.05] = 1e9
    for row in rows:
        _, chi, flat, _ = group.score_row(row)
        assert group.top_of_row(flat) == group.top_features(chi)


@pytest.mark.parametrize("bit_search", [True, False])
def test_one_row_bit_pattern_search_bins_special_values_like_the_float_search(bit_search: bool) -> None:
    """score_row searches the keys' uint64 bit patterns (mltrace.drift._binning.KEY_BITS): every
    special float (both NaNs, both zeros, both infinities, subnormals, huge values, the exact
    edges and their neighbours) lands on the float search's flat index; both NaNs are missing."""
    rng = np.random.default_rng(5)
    # ranges wide, narrow (the overflow guard) and degenerate
    train = np.column_stack([rng.normal(size=4000), rng.normal(size=4000) * 1e-9, np.full(4000, 3.0)])
    monitor = DriftMonitor(ReferenceProfile.from_data(train), window=50)
    group = monitor._inputs
    assert not group._bit_search  # 3 features search floats (BIT_SEARCH_MIN); both paths are checked here
    group._bit_search = bit_search
    binner = group.g.binner
    neg_nan = -np.abs(np.float64("nan"))
    assert np.signbit(neg_nan) and np.isnan(neg_nan)
    special = [np.nan, neg_nan, 0.0, -0.0, np.inf, -np.inf, 5e-324, -5e-324, 1e308, -1e308, 3.0, 1.0, -1.0]
    edges = [e for f in monitor.profile.features for e in (*f.edges, f.min, f.max)]  # type: ignore[attr-defined]
    special += edges + [np.nextafter(e, np.inf) for e in edges] + [np.nextafter(e, -np.inf) for e in edges]
    checked = 0
    for a in special:
        for j in range(3):
            row = train[0].copy()
            row[j] = a
            _, _, flat, missing = group.score_row(row)
            expected = binner.flat(row[None])[0]
            nan = bool(np.isnan(a))
            assert missing is nan
            if nan:  # the float search puts NaN past the end; score_row then maps it to missing
                assert expected[j] == binner.size and flat[j] == group._missing_flat[j]
                expected[j] = flat[j]
            np.testing.assert_array_equal(flat, expected)
            checked += 1
    assert checked == 3 * len(special)
