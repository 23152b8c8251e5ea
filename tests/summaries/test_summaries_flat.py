"""Scalars, strings and flat dicts take a short path (``summaries/_flat.py``) that gives the general path's summary."""

from __future__ import annotations

import math
import sys
from collections import OrderedDict
from typing import Any

import numpy as np
import pytest
from _threads import mismatches_under_threads
from hypothesis import given, settings
from hypothesis import strategies as st

from mltrace.summaries import _flat, _memo, summarize
from mltrace.summaries._core import summarize_general
from mltrace.summaries._fingerprint import FULL_HASH_BYTES
from mltrace.summaries._flat import DICT_MAX, summarize_flat

_EDGE_FLOATS = [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, -math.inf, math.inf]
_EDGE_INTS = [0, -1, 2**31 - 1, 2**31, -(2**31) - 1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 2**64, 10**400]
_NAN_BITS = [float.fromhex("nan"), -math.nan, np.frombuffer(b"\x01\x00\x00\x00\x00\x00\xf8\x7f").item()]

FLOATS = st.floats(allow_subnormal=True) | st.sampled_from(_EDGE_FLOATS + _NAN_BITS)  # NaN and inf included
INTS = st.integers() | st.integers(-(2**65), 2**65) | st.sampled_from(_EDGE_INTS)
TEXT = st.text(st.characters(blacklist_categories=()), max_size=80)  # surrogates included
FLAT_VALUES = FLOATS | INTS | st.booleans() | st.none() | TEXT
KEYS = TEXT | st.sampled_from(["", ".", "a.b", "feature.x", "x.nan_count", "x.length", "é", "🙂", "k" * 64, "k" * 65])
OPTIONS = st.sampled_from([-1, 0, 1, 3, 16, 40, 1000])


def assert_equivalent(obj: object, **options: Any) -> dict[str, Any]:
    """``summarize`` and the general path give the same keys, in order, with values of the same type."""
    _memo.clear()
    fast = summarize(obj, **options)
    slow = summarize_general(obj, **options)
    assert list(fast) == list(slow)
    for key, value in slow.items():
        assert type(fast[key]) is type(value), key
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(fast[key]), key
        else:
            assert fast[key] == value, (key, fast[key], value)
            if isinstance(value, float):
                assert math.copysign(1.0, fast[key]) == math.copysign(1.0, value), key
    return fast


# -- scalars -------------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(FLOATS | INTS | st.booleans())
def test_python_scalars_match_the_general_path(value: object) -> None:
    """Floats (NaN, inf, -0.0, subnormals), ints of any size and bools."""
    assert_equivalent(value)


@settings(max_examples=200, deadline=None)
@given(FLOATS, st.sampled_from([np.float64, np.float32, np.int64, np.int32, np.bool_]))
def test_numpy_scalars_match_the_general_path(value: float, cls: type[np.generic]) -> None:
    """The numpy scalars a model returns: float64/float32 (NaN, inf), int64/int32 and bool_."""
    if issubclass(cls, np.integer):
        info = np.iinfo(cls)  # type: ignore[type-var]
        scalar: object = cls(int(max(info.min, min(info.max, value))) if math.isfinite(value) else 7)
    else:
        with np.errstate(over="ignore"):
            scalar = cls(value)
    assert_equivalent(scalar)


@settings(max_examples=200, deadline=None)
@given(TEXT | st.text())
def test_strings_match_the_general_path(value: str) -> None:
    """Text of any characters, lone surrogates included: its length and fingerprint, never the text."""
    assert value == "" or value not in assert_equivalent(value).values()


def test_long_string_takes_the_general_path_when_it_is_sampled() -> None:
    """Past what the fingerprint hashes whole, a string is hashed from a sample: the general path."""
    whole, sampled = "x" * (FULL_HASH_BYTES // 4), "x" * (FULL_HASH_BYTES // 4 + 1)
    assert summarize_flat(whole, 16) is not None
    assert summarize_flat(sampled, 16) is None
    assert "fingerprint_sampled" not in assert_equivalent(whole)
    assert assert_equivalent(sampled)["fingerprint_sampled"] is True


# -- flat dicts ----------------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(KEYS, FLAT_VALUES, max_size=40), OPTIONS)
def test_flat_dicts_match_the_general_path(mapping: dict[str, Any], max_features: int) -> None:
    """Any str keys (unicode, empty, dotted, long), mixed values with NaN/inf/None/text, any limit."""
    out = assert_equivalent(mapping, max_features=max_features)
    texts = {v for v in mapping.values() if isinstance(v, str) and v}
    assert not texts & {v for v in out.values() if isinstance(v, str)}


_NESTED = st.lists(FLOATS, max_size=3) | st.dictionaries(KEYS, FLOATS, max_size=2) | st.tuples(INTS)
_OTHER = st.sampled_from([np.float32(0.5), np.float64(math.nan), np.int64(3), 1j, b"ab", object(), OrderedDict()])


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(KEYS | INTS, FLAT_VALUES | _NESTED | _OTHER, max_size=24), OPTIONS)
def test_other_dicts_match_the_general_path(mapping: dict[Any, Any], max_features: int) -> None:
    """Nested values, numpy values, non-str keys, objects: whichever path takes them, the same summary."""
    assert_equivalent(mapping, max_features=max_features)


@pytest.mark.parametrize("max_features", [0, 15, 16, 17])
@pytest.mark.parametrize("n", [0, 1, 15, 16, 17, DICT_MAX - 1, DICT_MAX, DICT_MAX + 1])
def test_sizes_around_the_limits_match(n: int, max_features: int) -> None:
    """Either side of max_features (features_truncated) and of DICT_MAX."""
    rng = np.random.default_rng(n)
    values: list[Any] = [*rng.normal(size=n).tolist()]
    for i in range(0, n, 5):
        values[i] = [math.nan, "text", None, True, -(2**63)][i % 5]
    mapping = {f"f{i}": v for i, v in enumerate(values)}
    assert (summarize_flat(mapping, max_features) is None) == (n > DICT_MAX)
    out = assert_equivalent(mapping, max_features=max_features)
    assert out["n_features"] == n and out.get("features_truncated", False) == (n > max_features)


@pytest.mark.parametrize(
    "mapping",
    [
        {"a": math.nan, "a.nan_count": 5.0},  # two names give the same key: the later one wins
        {"a.nan_count": 5.0, "a": math.inf},
        {"b": "text", "b.length": 2},
        {"k" * 64 + "1": 1.0, "k" * 64 + "2": 2.0},  # truncated to the same key
        {"": 0.0, ".": -0.0},
    ],
    ids=repr,
)
def test_colliding_feature_keys_match(mapping: dict[str, Any]) -> None:
    assert summarize_flat(mapping, 16) is not None
    assert_equivalent(mapping)


def test_a_request_s_dicts_are_the_documented_summary() -> None:
    """The common serving payloads, concretely."""
    features = summarize({"tenure": 3.0, "spend": 120.5, "region": 2.0, "plan": "gold", "x": None})
    assert list(features) == [
        "kind", "n_rows", "n_features", "feature.tenure", "feature.spend", "feature.region",
        "feature.plan.length", "feature.x.nan_count", "fingerprint",
    ]  # fmt: skip
    assert features["feature.plan.length"] == 4 and "gold" not in features.values()
    output = summarize({"score": 0.73, "label": True})
    assert output["feature.label"] is True and output["n_features"] == 2
    assert summarize(0.73) == {"kind": "scalar", "dtype": "float", "value": 0.73, "fingerprint": "681028114ad62426"}


# -- which path ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "obj",
    [
        0.5, -0.0, math.nan, math.inf, 5e-324, 3, -(2**63), 2**63 - 1, True, False, None, "", "text", "\ud800",
        np.float64(0.5), np.float32(math.nan), np.int64(-3), np.int32(7), np.bool_(True),
        {}, {"a": 1.0}, {"a": 1, "b": True, "c": "s", "d": None, "e": math.nan},
        {f"f{i}": float(i) for i in range(DICT_MAX)},
        {**{f"f{i}": float(i) for i in range(20)}, "late": 2**70, "z": 1j},  # past max_features: any flat type
    ],
    ids=lambda o: type(o).__name__ + repr(o)[:30],
)
def test_scalars_strings_and_flat_dicts_take_the_short_path(obj: object) -> None:
    assert summarize_flat(obj, 16) is not None
    assert_equivalent(obj)


class _Str(str):
    pass


class _Float(float):
    pass


@pytest.mark.parametrize(
    "obj",
    [
        2**63, -(2**63) - 1, 10**400, 1j, _Float(1.0), _Str("s"), np.float16(1.0), np.uint64(3), np.longdouble(1.0),
        OrderedDict(a=1.0), {1: 1.0}, {_Str("a"): 1.0}, {"a": [1.0]}, {"a": {"b": 1.0}}, {"a": (1,)},
        {"a": np.float32(1.0)}, {"a": 2**63}, {"a": _Float(1.0)}, {"a": b"x"}, {"a": 1j},
        {f"f{i}": 0.0 for i in range(DICT_MAX + 1)},
        {**{f"f{i}": float(i) for i in range(20)}, "late": [1.0]},  # past max_features, not flat
        {"a": "x" * (FULL_HASH_BYTES + 1)},  # hashed item by item
    ],
    ids=lambda o: type(o).__name__ + repr(o)[:30],
)
def test_other_inputs_take_the_general_path(obj: object) -> None:
    assert summarize_flat(obj, 16) is None
    assert_equivalent(obj)


# -- guarantees ----------------------------------------------------------------------------------


def test_short_path_keeps_no_reference_to_the_payload() -> None:
    """Neither the dict nor a string in it is referenced by the summary or by the module."""
    text = "".join(["pay", "load"])
    mapping = {"a": 1.0, "b": text}
    before = sys.getrefcount(mapping), sys.getrefcount(text)
    out = summarize(mapping)
    assert (sys.getrefcount(mapping), sys.getrefcount(text)) == before
    assert text not in out.values()


def test_bad_arguments_still_give_an_error_summary() -> None:
    assert summarize(1.0, max_features="x") == {"kind": "scalar", "error": "ValueError"}  # type: ignore[arg-type]
    assert summarize({"a": 1.0}, sample_size=None) == {"kind": "dict", "error": "TypeError"}  # type: ignore[arg-type]


@pytest.mark.parametrize("options", [{"max_features": np.int64(2)}, {"max_features": True}, {"sample_size": 2.5}])
@pytest.mark.parametrize("obj", [0.5, "text", {"a": 1.0, "b": 2.0, "c": "x"}])
def test_options_of_other_types_give_the_same_summary(obj: object, options: dict[str, Any]) -> None:
    """Options that are not exact ints skip the short path; the summary is the same."""
    assert_equivalent(obj, **options)


def test_a_failing_short_path_falls_back_to_the_general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(value: object, max_features: int) -> None:
        raise RuntimeError

    monkeypatch.setitem(_flat.SHORT, float, broken)
    assert_equivalent(0.5)


def test_threads_get_the_general_path_s_summaries() -> None:
    """The shared, pre-started hashes are copied, never fed: threads cannot mix their content."""
    rng = np.random.default_rng(4)
    payloads: list[object] = []
    for i in range(200):
        payloads += [float(rng.normal()), int(rng.integers(-1000, 1000)), np.float32(rng.normal()), f"t{i}"]
        payloads.append({f"f{j}": float(rng.normal()) for j in range(i % 20)})
    expected = [summarize_general(p) for p in payloads]
    assert not mismatches_under_threads(payloads, expected)
