"""The pure-Python path for small numeric inputs and the content memo give what numpy's path gives."""

from __future__ import annotations

import gc
import math
import weakref
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from _threads import mismatches_under_threads
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mltrace.summaries import _fast, _memo, summarize
from mltrace.summaries._core import summarize_general
from mltrace.summaries._fast import FAST_MAX, pairwise_sum, summarize_small

_EDGE = [0.0, -0.0, 5e-324, -2.2250738585072014e-308, 1e-300, 1e300, -1.7e308, 1.7e308, 1e150, 3e153]


@pytest.fixture(autouse=True)
def empty_memo() -> Iterator[None]:
    _memo.clear()
    yield
    _memo.clear()


def both(obj: object, **options: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """``summarize`` and the numpy path's summary of ``obj``, each computed afresh (memo cleared)."""
    _memo.clear()
    fast = summarize(obj, **options)
    _memo.clear()
    slow = summarize_general(obj, **options)
    _memo.clear()
    return fast, slow


def assert_same(fast: dict[str, Any], slow: dict[str, Any]) -> None:
    """Same keys in the same order, same value types, equal values."""
    assert list(fast) == list(slow)
    for key, value in slow.items():
        assert type(fast[key]) is type(value), key
        assert fast[key] == value, (key, fast[key], value)


def assert_equivalent(obj: object, **options: Any) -> None:
    assert_same(*both(obj, **options))


def shapes_of(values: list[Any]) -> list[object]:
    """The list in the shapes a server sees: list, tuple, single-row batch, and numpy arrays of it."""
    out: list[object] = [values, tuple(values), [values], (list(values),)]
    try:
        arr = np.asarray(values)
    except (ValueError, TypeError, OverflowError):
        return out
    out += [arr, arr[None, :], arr[::2], arr[None, ::-1]]
    if arr.dtype.kind == "f":
        with np.errstate(over="ignore"):
            out += [arr.astype(np.float32), arr.astype(">f8")]
    return out


# -- the fast path and numpy's path agree --------------------------------------------------------


def test_pairwise_sum_is_numpys_sum_bit_for_bit() -> None:
    """The pairwise summation matches np.add.reduce exactly, on every block boundary."""
    rng = np.random.default_rng(0)
    for n in [*range(1, 40), 127, 128, 129, 136, 255, 256, 257, 1000, 1025, 4096]:
        for scale in (1e-12, 1.0, 1e12):
            x = rng.normal(size=n) * scale * rng.choice([1.0, 1e-8, 1e8], size=n)
            assert pairwise_sum(x.tolist()) == float(np.add.reduce(x)), n


def test_pairwise_sum_without_builtin_sum_agrees(monkeypatch: pytest.MonkeyPatch) -> None:
    """The reduce-based addition used from Python 3.12 (where sum() compensates) gives the same sums."""
    monkeypatch.setattr(_fast, "_run", _fast._run_reduce)
    rng = np.random.default_rng(1)
    for n in (1, 7, 8, 9, 31, 128, 129, 300):
        x = rng.normal(size=n) * 10.0 ** rng.uniform(-20, 20, size=n)
        assert pairwise_sum(x.tolist()) == float(np.add.reduce(x))
    assert_equivalent(rng.random(33).tolist())


_FLOATS = st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from(_EDGE)
_INTS = st.integers(min_value=-(2**64), max_value=2**65) | st.integers(min_value=-10, max_value=10)
_ITEMS = _FLOATS | _INTS | st.booleans()


@settings(max_examples=300, deadline=None)
@given(st.lists(_FLOATS, max_size=FAST_MAX + 2))
def test_float_lists_match_numpys_path(values: list[float]) -> None:
    """Lists of floats, with NaN, inf, -0.0, subnormals and huge values, in every serving shape."""
    for obj in shapes_of(values):
        assert_equivalent(obj)


@settings(max_examples=200, deadline=None)
@given(st.lists(_INTS, max_size=40))
def test_int_lists_match_numpys_path(values: list[int]) -> None:
    """Lists of ints, in and beyond the int64 range: int64 stats as floats, features as ints."""
    for obj in shapes_of(values):
        assert_equivalent(obj)


@settings(max_examples=300, deadline=None)
@given(st.lists(_ITEMS, max_size=40))
def test_mixed_lists_match_numpys_path(values: list[Any]) -> None:
    """Mixed ints, floats and bools: float64 where numpy makes one, else numpy's path."""
    for obj in shapes_of(values):
        assert_equivalent(obj)


@settings(max_examples=150, deadline=None)
@given(
    hnp.arrays(
        st.sampled_from([np.float64, np.float32, np.int64, np.float16, np.int32, np.uint64]),
        st.integers(1, FAST_MAX + 1),
    ),
    st.sampled_from([0, 3, 16, 1000]),
)
def test_arrays_match_numpys_path(arr: np.ndarray, max_features: int) -> None:
    """1-D and single-row arrays of any dtype, contiguous or not, with any max_features."""
    for obj in (arr, arr[None, :], arr[::3], arr[None, ::2], np.asfortranarray(arr[None, :])):
        assert_equivalent(obj, max_features=max_features)


@pytest.mark.parametrize("n", [1, 2, 7, 8, 9, 127, 128, 129, FAST_MAX - 1, FAST_MAX, FAST_MAX + 1])
@pytest.mark.parametrize("sample_size", [100_000, 100, 1])
def test_sizes_around_the_thresholds_match(n: int, sample_size: int) -> None:
    """Either side of FAST_MAX, of numpy's 128-value block, and of sample_size."""
    rng = np.random.default_rng(n)
    x = rng.normal(size=n) * 1e3
    for obj in [*shapes_of(x.tolist()), *shapes_of(rng.integers(-(10**12), 10**12, size=n).tolist())]:
        assert_equivalent(obj, sample_size=sample_size)


@pytest.mark.parametrize(
    "obj",
    [
        [0.5, 1.5],
        (0.5, 1.5),
        [[0.5, 1.5]],
        [1, 2, 3],
        [1, 2.5],
        [2**63 - 1, -(2**63)],
        [2**64 - 1, 0.5],
        np.arange(4.0),
        np.arange(4.0, dtype=np.float32),
        np.arange(4),
        np.arange(4.0)[None, :],
        np.ones((1, FAST_MAX)),
    ],
    ids=repr,
)
def test_serving_shapes_take_the_fast_path(obj: object) -> None:
    """Small numeric lists, tuples, single-row batches and 1-D/(1, n) arrays are summarised in Python."""
    assert summarize_small(obj, 16, 100_000) is not None
    assert_equivalent(obj)


@pytest.mark.parametrize(
    "obj",
    [
        [],
        [[]],
        [1.0, math.nan],
        [1.0, math.inf],
        np.array([1.0, np.nan]),
        [1e300, -1e300],
        [True, 1.0],
        [np.float64(1.0), 2.0],
        [2**63],
        [2**64, 0.5],
        [[1.0], [2.0]],
        [1.0, "a"],
        np.arange(8.0)[::2],
        np.arange(4.0).astype(">f8"),
        np.arange(4.0).astype(np.complex128),
        np.array([1.0, "a"], dtype=object),
        np.arange(6.0).reshape(2, 3),
        np.float64(1.0),
        np.ma.masked_array([1.0, 2.0]),
        np.ones(FAST_MAX + 1),
        [1.0] * (FAST_MAX + 1),
        [[1.0] * (FAST_MAX + 1)],
    ],
    ids=lambda o: type(o).__name__ + repr(o)[:40],
)
def test_other_inputs_take_numpys_path(obj: object) -> None:
    """NaN, inf, scaling, bools, numpy scalars, odd dtypes and layouts, and big inputs: numpy's path."""
    assert summarize_small(obj, 16, 100_000) is None
    assert_equivalent(obj)


def test_huge_values_take_numpys_scaled_path() -> None:
    """Equal values near 1e266: the mean rounds and its error squared would overflow, so both
    paths hand them to numpy's scaled computation, which keeps std (0 here) and warns nothing."""
    values = [2.137622145065416e266] * 3
    assert summarize_small(values, 16, 100_000) is None
    fast, slow = both(values)
    assert slow["std"] == 0.0 and slow["max"] == values[0]
    assert_same(fast, slow)


def test_sample_size_below_the_length_takes_numpys_path() -> None:
    """An input that sample_size would subsample is never summarised in Python."""
    assert summarize_small([1.0] * 10, 16, 5) is None
    assert summarize(np.ones(10), sample_size=5)["sampled"] is True


def test_fast_path_output_is_the_documented_summary() -> None:
    """A concrete single-row batch: keys in order, stats, features and the list's length."""
    s = summarize([[1.0, 2.0, 4.0]], max_features=2)
    assert list(s) == [
        "kind", "shape", "dtype", "size", "nan_count", "inf_count", "min", "max", "mean", "std",
        "n_rows", "n_features", "features_truncated", "feature.0", "feature.1", "fingerprint", "length",
    ]  # fmt: skip
    assert (s["shape"], s["dtype"], s["mean"], s["length"]) == ([1, 3], "float64", 7 / 3, 1)
    assert s["fingerprint"] == summarize(np.array([[1.0, 2.0, 4.0]]))["fingerprint"]


# -- the memo ------------------------------------------------------------------------------------


@pytest.mark.parametrize("n", [16, 1000])
def test_memo_sees_in_place_changes(n: int) -> None:
    """Changing an array in place between two calls gives the new statistics and fingerprint."""
    arr = np.arange(float(n))
    first = summarize(arr)
    arr[3] = 1e6
    second = summarize(arr)
    assert second["max"] == 1e6 and second["fingerprint"] != first["fingerprint"]
    assert_same(second, summarize_general(arr.copy()))


@pytest.mark.parametrize("n", [16, 1000])
def test_memo_keeps_each_kind_apart(n: int) -> None:
    """A list, a tuple and an array with equal content keep their own kind and length."""
    values = np.random.default_rng(n).random(n)
    summaries = [summarize(obj) for obj in (values, values.tolist(), tuple(values.tolist()), values)]
    assert [s["kind"] for s in summaries] == ["ndarray", "list", "tuple", "ndarray"]
    assert "length" not in summaries[0] and summaries[1]["length"] == n
    assert len({s["fingerprint"] for s in summaries}) == 1
    for obj, s in zip((values, values.tolist(), tuple(values.tolist())), summaries, strict=False):
        assert_same(s, summarize_general(obj))


def test_memo_keeps_byte_orders_apart() -> None:
    """The same numbers big- and little-endian share a fingerprint but not a dtype."""
    arr = np.arange(1000.0)
    assert summarize(arr)["dtype"] == "float64"
    assert summarize(arr.astype(">f8"))["dtype"] == ">f8"


@pytest.mark.parametrize("n", [8, 1000])
def test_memo_keys_on_the_options(n: int) -> None:
    """Another max_features or sample_size is never served a summary made with other options."""
    row = np.arange(float(n))[None, :]
    assert summarize(row)["n_features"] == n
    assert sum(k.startswith("feature.") for k in summarize(row, max_features=2)) == 2
    assert summarize(row, sample_size=4).get("sampled") is True
    assert sum(k.startswith("feature.") for k in summarize(row)) == min(n, 16)


def test_memo_serves_a_repeat_from_one_entry() -> None:
    """Summarising the same content twice stores it once; what it gives back is a fresh copy."""
    arr = np.random.default_rng(2).random(1000)
    first = summarize(arr)
    first["shape"].append(99)  # type: ignore[union-attr]
    first["mean"] = -1.0
    assert len(_memo._entries) == 1
    second = summarize(arr.copy())
    assert len(_memo._entries) == 1
    assert_same(second, summarize_general(arr))


def test_sampled_inputs_are_not_memoised() -> None:
    """An input whose statistics come from a sample is never stored."""
    summarize(np.ones(200), sample_size=100)
    summarize(np.ones(200_000))  # also past the full-hash limit
    assert not _memo._entries


def test_memo_is_bounded() -> None:
    """The memo keeps at most MAX_ENTRIES summaries, dropping the oldest first."""
    arrays = [np.full(300, float(i)) for i in range(_memo.MAX_ENTRIES + 50)]
    for arr in arrays:
        summarize(arr)
    assert len(_memo._entries) == _memo.MAX_ENTRIES
    size = len(_memo._entries)
    summarize(arrays[-1])  # the newest is still there
    assert len(_memo._entries) == size
    summarize(arrays[0])  # the oldest was dropped: stored again
    assert len(_memo._entries) == size and summarize(arrays[0])["mean"] == 0.0


def test_memo_keeps_no_reference_to_the_payload() -> None:
    """Stored summaries hold primitives only: the payload can be freed."""
    for make in (lambda: np.ones(10), lambda: np.ones(1000), lambda: np.ones((1, 40))):
        obj = make()
        ref = weakref.ref(obj)
        summarize(obj)
        del obj
        gc.collect()
        assert ref() is None
        assert _memo._entries


def test_memo_under_threads_gives_each_caller_its_own_summary() -> None:
    """Threads summarising overlapping content all get the numpy path's summaries; the memo stays bounded."""
    rng = np.random.default_rng(3)
    payloads = [rng.random(n) for n in (4, 40, 400, 4000) for _ in range(60)]
    expected = [summarize_general(p) for p in payloads]
    assert not mismatches_under_threads(payloads, expected)
    assert len(_memo._entries) <= _memo.MAX_ENTRIES
