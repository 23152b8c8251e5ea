"""mltrace.summarize: small, bounded, primitive summaries of anything a model sees; never raises."""

from __future__ import annotations

import array
import copy
import dataclasses
import gc
import json
import math
import subprocess
import sys
import types
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from mltrace.summaries import _memo, summarize
from mltrace.summaries._keys import TOP_LEVEL

SECRET = "s3cr3t-Payload"
_PRIMITIVES = (str, bool, int, float)


@pytest.fixture(autouse=True)
def empty_memo() -> Iterator[None]:
    """Each test summarises afresh: no summary served from an earlier test's content."""
    _memo.clear()
    yield
    _memo.clear()


def assert_valid(summary: dict[str, Any], max_features: int = 16) -> None:
    """Keys known and bounded in number; values finite, bounded primitives or short lists of them."""
    assert isinstance(summary, dict)
    assert isinstance(summary.get("kind"), str)
    assert len(summary) <= 20 + 4 * max(0, max_features)
    for key, value in summary.items():
        assert type(key) is str
        if key.startswith("feature."):
            assert len(key) <= len("feature.") + 64 + len(".nan_count")
        else:
            assert key in TOP_LEVEL, key
        items = value if type(value) is list else [value]
        assert len(items) <= 16
        assert len({type(v) for v in items}) <= 1, key
        for item in items:
            assert type(item) in _PRIMITIVES, (key, type(item))
            if type(item) is float:
                assert math.isfinite(item), key
            if type(item) is int:
                assert -(2**63) <= item < 2**63, key
            if type(item) is str:
                assert len(item) <= 128, key


def ok(obj: object, **kwargs: Any) -> dict[str, Any]:
    summary = summarize(obj, **kwargs)
    assert "error" not in summary, summary
    assert_valid(summary, kwargs.get("max_features", 16))
    return summary


# -- numpy arrays ---------------------------------------------------------------------------------

DTYPES = [
    "float16", "float32", "float64", "int8", "int32", "int64", "uint8", "uint64", "bool",
    "complex64", "complex128", "object", "datetime64[ns]", "timedelta64[s]", "<U5", "S3",
]  # fmt: skip
SHAPES = [(), (0,), (7,), (3, 4), (2, 3, 4), (0, 5)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES)
def test_every_dtype_and_shape(dtype: str, shape: tuple[int, ...]) -> None:
    """Arrays of any dtype and rank give shape, dtype, size and a fingerprint."""
    arr = np.arange(math.prod(shape)).reshape(shape).astype(dtype)
    s = ok(arr)
    assert s["kind"] == "ndarray"
    assert s["shape"] == list(shape)
    assert s["dtype"] == str(np.dtype(dtype))
    assert s["size"] == arr.size
    assert len(s["fingerprint"]) == 16
    numeric = np.dtype(dtype).kind in "biuf"
    assert ("min" in s) == (numeric and arr.size > 0)
    if numeric and arr.size:
        assert s["min"] == float(arr.min())
        assert s["max"] == float(arr.max())


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int64", "uint8", "bool"])
def test_statistics_match_numpy(dtype: str) -> None:
    """min, max, mean and std agree with numpy's own on the same values."""
    arr = (np.random.default_rng(1).normal(50, 10, size=(40, 25)) > 50 if dtype == "bool" else
           np.random.default_rng(1).normal(50, 10, size=(40, 25)).astype(dtype))  # fmt: skip
    s = ok(arr)
    ref = arr.astype(np.float64)
    assert s["min"] == ref.min() and s["max"] == ref.max()
    assert s["mean"] == pytest.approx(ref.mean(), rel=1e-9)
    assert s["std"] == pytest.approx(ref.std(), rel=1e-9)
    assert (s["nan_count"], s["inf_count"]) == (0, 0)


def test_nan_and_inf_are_counted_and_left_out_of_statistics() -> None:
    """NaN and ±inf are counted; min/max/mean/std come from the finite values only."""
    s = ok(np.array([1.0, np.nan, 3.0, np.inf, -np.inf, np.nan]))
    assert (s["nan_count"], s["inf_count"]) == (2, 2)
    assert (s["min"], s["max"], s["mean"], s["std"]) == (1.0, 3.0, 2.0, 1.0)


@pytest.mark.parametrize("values", [[np.nan] * 5, [np.inf, -np.inf], []])
def test_no_finite_values_means_no_statistics(values: list[float]) -> None:
    """All-NaN, all-inf and empty arrays carry counts but no min/max/mean/std."""
    s = ok(np.array(values, dtype=np.float64))
    assert not {"min", "max", "mean", "std"} & s.keys()
    assert s["nan_count"] + s["inf_count"] == len(values)


def test_huge_values_do_not_overflow_the_statistics() -> None:
    """Values near the float64 limit still give finite statistics, and no warning."""
    s = ok(np.array([1.7e308, 1.7e308, -1.7e308]))
    assert s["max"] == 1.7e308 and s["mean"] == pytest.approx(1.7e308 / 3)
    assert s["std"] == pytest.approx(np.array([1.7, 1.7, -1.7]).std() * 1e308)
    assert ok(np.full(1000, 6e4, dtype=np.float16))["mean"] == pytest.approx(6e4, rel=1e-3)


def test_huge_array_is_sampled_deterministically() -> None:
    """Above sample_size elements, stats come from a strided sample, the same every time."""
    arr = np.random.default_rng(2).random(1_000_000)
    s = ok(arr)
    assert s["sampled"] is True and s["sample_size"] == 100_000
    assert s["fingerprint_sampled"] is True
    assert s["size"] == 1_000_000
    assert s["mean"] == pytest.approx(0.5, abs=0.01)
    assert summarize(arr) == s
    assert "sampled" not in ok(arr[:1000])


@pytest.mark.parametrize("order", ["C", "F"])
def test_sampling_visits_every_column(order: str) -> None:
    """A wide array's sample covers all columns, not every tenth one (no stride aliasing)."""
    arr = np.zeros((1000, 1000), order=order)  # type: ignore[call-overload]
    arr[:, 1::10] = 1.0
    s = ok(arr)
    assert s["sampled"] is True and s["sample_size"] <= 100_000
    assert s["mean"] == pytest.approx(0.1, abs=0.005)


def test_sample_size_is_honoured() -> None:
    """A smaller sample_size samples smaller inputs."""
    s = ok(np.arange(100.0), sample_size=10)
    assert s["sampled"] is True and s["sample_size"] == 10


def test_non_contiguous_arrays_match_their_contiguous_copies() -> None:
    """Layout does not matter: a transposed view has the fingerprint of its C-ordered copy."""
    big = np.random.default_rng(3).random((1500, 1000)).T
    small = big[:20, :30]
    for view in (big, small, big[::3, ::-2]):
        assert not view.flags.c_contiguous
        assert ok(view)["fingerprint"] == ok(np.ascontiguousarray(view))["fingerprint"]
    assert ok(big)["sampled"] is True


def test_big_endian_arrays_fingerprint_like_little_endian() -> None:
    """Byte order is normalised: the same numbers in '>f8' and '<f8' share a fingerprint."""
    arr = np.arange(10.0)
    assert ok(arr.astype(">f8"))["fingerprint"] == ok(arr)["fingerprint"]
    assert ok(arr.astype(">f8"))["mean"] == 4.5


def test_array_subclasses_are_summarised_as_arrays(tmp_path: Path) -> None:
    """Masked arrays and memmaps are read through their data, as plain arrays."""
    masked = ok(np.ma.masked_array([1.0, 2.0], mask=[False, True]))
    assert masked["kind"] == "ndarray" and masked["mean"] == 1.5
    mapped = np.memmap(tmp_path / "m.bin", dtype=np.float32, mode="w+", shape=(2, 2))
    assert ok(mapped)["shape"] == [2, 2]
    del mapped


# -- 2-D arrays as tables -------------------------------------------------------------------------


def test_two_dimensional_array_has_per_column_features() -> None:
    """A 2-D array's columns are unnamed features: feature.<j>.mean/min/max/nan_count."""
    arr = np.array([[1.0, 10.0, np.nan], [3.0, 30.0, np.nan]])
    s = ok(arr)
    assert (s["n_rows"], s["n_features"]) == (2, 3)
    assert (s["feature.0.min"], s["feature.0.max"], s["feature.0.mean"]) == (1.0, 3.0, 2.0)
    assert s["feature.1.mean"] == 20.0 and s["feature.1.nan_count"] == 0
    assert s["feature.2.nan_count"] == 2 and "feature.2.mean" not in s


def test_single_row_array_records_values() -> None:
    """A (1, F) array records each feature's value."""
    s = ok(np.array([[0.5, 2.0]], dtype=np.float32))
    assert (s["feature.0"], s["feature.1"]) == (0.5, 2.0)


def test_wide_inputs_stay_bounded() -> None:
    """With 10,000 features, only max_features are described and the key count stays bounded."""
    names = [f"f{i}" for i in range(10_000)]
    wide = [
        dict.fromkeys(names, 1.0),
        [dict.fromkeys(names, 1.0), dict.fromkeys(names, 2.0)],
        np.ones((3, 10_000)),
        pd.DataFrame(np.ones((3, 10_000)), columns=names),
        pd.DataFrame(np.ones((1, 10_000)), columns=names),
    ]
    for obj in wide:
        s = ok(obj)
        assert s["n_features"] == 10_000 and s["features_truncated"] is True
        assert sum(k.startswith("feature.") for k in s) <= 4 * 16
    assert sum(k.startswith("feature.") for k in ok(wide[0], max_features=3)) == 3
    assert len(ok(wide[2], max_features=0)) <= 20


# -- Python values --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "kind"),
    [
        ([1.0, 2.0, 3.0], "list"),
        ((1, 2, 3), "tuple"),
        ([[1, 2], [3, 4]], "list"),
        ([[1], [2, 3]], "list"),
        ([1, "a", None], "list"),
        (["a", "b"], "list"),
        ([], "list"),
        ([None, None], "list"),
        ([[[[[1.0]]]]], "list"),
        ([np.float32(1), 2.5], "list"),
        ([2**70, 1], "list"),
        ([1 + 2j], "list"),
        ([{"a": 1}, 3], "records"),
        ([{"a": 1}, {"b": 2}], "records"),
        ([{}, {}], "records"),
    ],
)
def test_lists_of_every_shape(obj: list[Any], kind: str) -> None:
    """Numeric, nested, ragged, mixed and empty lists and tuples never raise."""
    s = ok(obj)
    assert s["kind"] == kind
    assert "fingerprint" in s
    if kind != "records":
        assert s["length"] == len(obj)


def test_numeric_list_gets_array_statistics() -> None:
    """A list of numbers (or of equal-length rows) is summarised like the array it converts to."""
    s = ok([[1.0, 2.0], [3.0, float("nan")]])
    assert (s["shape"], s["nan_count"], s["mean"]) == ([2, 2], 1, 2.0)
    assert s["feature.1.nan_count"] == 1


def test_ragged_and_mixed_lists_fall_back_to_length() -> None:
    """A list numpy cannot make rectangular records its length and item type only."""
    assert ok([[1], [2, 3]])["item_type"] == "list"
    assert ok([1, "a"])["item_type"] == "mixed"
    assert "mean" not in ok([1, "a"])


def test_huge_list_is_sampled() -> None:
    """A long list is converted from a strided subset of its rows."""
    s = ok([float(i) for i in range(300_000)])
    assert s["shape"] == [300_000] and s["length"] == 300_000 and s["size"] == 300_000
    assert s["sampled"] is True and s["sample_size"] <= 100_000
    assert s["fingerprint_sampled"] is True
    rows = ok([[1.0, 2.0, 3.0]] * 50_000)
    assert rows["shape"] == [50_000, 3] and rows["n_rows"] == 50_000 and rows["sampled"] is True


def test_dict_of_features_records_values_not_text() -> None:
    """One row: numbers as values; strings, containers and missing values by length or count."""
    s = ok({
        "age": 3, "income": 2.5, "flag": True, "name": SECRET, "blob": b"xyz", "missing": None,
        "nan": float("nan"), "vec": [1.0, 2.0, 6.0], "arr": np.array([1, 3]), "words": ["a", "b"],
        "nested": {"k": 1}, "obj": object(), "np": np.int16(-4), "big": 2**80,
    })  # fmt: skip
    assert (s["kind"], s["n_rows"], s["n_features"]) == ("dict", 1, 14)
    assert (s["feature.age"], s["feature.income"], s["feature.flag"]) == (3, 2.5, True)
    assert s["feature.name.length"] == len(SECRET) and s["feature.blob.length"] == 3
    assert s["feature.missing.nan_count"] == 1 and s["feature.nan.nan_count"] == 1
    assert (s["feature.vec.size"], s["feature.vec.mean"], s["feature.vec.max"]) == (3, 3.0, 6.0)
    assert s["feature.arr.size"] == 2 and s["feature.arr.min"] == 1.0
    assert s["feature.words.length"] == 2 and s["feature.nested.length"] == 1
    assert s["feature.obj.type"] == "object"
    assert type(s["feature.np"]) is int and s["feature.big"] == float(2**80)
    assert "features_truncated" not in s


def test_feature_names_are_bounded_and_stringified() -> None:
    """Non-string keys become text; long names are cut to 64 characters."""
    s = ok({1: 2.0, "x" * 500: 1.0})
    assert s["feature.1"] == 2.0
    assert s["feature." + "x" * 64] == 1.0


def test_records_have_per_feature_statistics() -> None:
    """Many records: mean/min/max/nan_count per numeric feature, type and nan_count otherwise."""
    rows = [
        {"age": 30, "score": 0.5, "city": SECRET, "tag": "a"},
        {"age": 40, "score": None, "city": "b", "tag": 1},
        {"age": 50, "score": float("inf"), "city": None},
    ]
    s = ok(rows)
    assert (s["kind"], s["n_rows"], s["n_features"]) == ("records", 3, 4)
    assert (s["feature.age.mean"], s["feature.age.min"], s["feature.age.max"]) == (40.0, 30.0, 50.0)
    assert s["feature.score.nan_count"] == 2 and s["feature.score.mean"] == 0.5
    assert (s["feature.city.type"], s["feature.city.nan_count"]) == ("str", 1)
    assert (s["feature.tag.type"], s["feature.tag.nan_count"]) == ("mixed", 1)


def test_single_record_records_values() -> None:
    """A one-element list of records is one row: feature values, not statistics."""
    s = ok([{"age": 3, "name": SECRET}])
    assert (s["kind"], s["feature.age"], s["feature.name.length"]) == ("records", 3, len(SECRET))


def test_many_records_are_sampled_by_row() -> None:
    """Records with more cells than sample_size are read from a strided subset of rows."""
    s = ok([{"a": float(i), "b": 1} for i in range(1000)], sample_size=100)
    assert s["sampled"] is True and s["sample_size"] == 50 and s["n_rows"] == 1000


class Request(pydantic.BaseModel):
    age: int
    name: str
    scores: list[float]


@dataclasses.dataclass
class Point:
    x: float
    label: str


def test_pydantic_models_and_dataclasses_are_one_row() -> None:
    """A pydantic model (via model_dump) or a dataclass is a dict of features with its type."""
    s = ok(Request(age=7, name=SECRET, scores=[1.0, 3.0]))
    assert (s["kind"], s["feature.age"], s["feature.name.length"]) == ("pydantic", 7, len(SECRET))
    assert s["feature.scores.mean"] == 2.0 and s["type"].endswith("Request")
    d = ok(Point(1.5, SECRET))
    assert (d["kind"], d["feature.x"], d["feature.label.length"]) == ("dataclass", 1.5, len(SECRET))


# -- pandas ---------------------------------------------------------------------------------------


def _frame(rows: int) -> pd.DataFrame:
    return pd.DataFrame({
        "x": np.arange(rows, dtype=np.float64),
        "n": pd.array([1, None, *range(rows - 2)], dtype="Int64")[:rows],
        "s": [SECRET] * rows,
        "t": pd.date_range("2024-01-01", periods=rows),
        "b": [True] * rows,
    })  # fmt: skip


def test_dataframe_has_per_column_statistics() -> None:
    """DataFrame columns are features: numeric (nullable too) get stats, others type and nulls."""
    s = ok(_frame(5))
    assert (s["kind"], s["shape"], s["n_rows"], s["n_features"]) == ("dataframe", [5, 5], 5, 5)
    assert (s["feature.x.mean"], s["feature.x.max"], s["feature.x.nan_count"]) == (2.0, 4.0, 0)
    assert s["feature.n.nan_count"] == 1 and s["feature.n.min"] == 0.0
    assert s["feature.s.nan_count"] == 0 and "feature.s.mean" not in s
    assert s["feature.t.type"].startswith("datetime64") and s["feature.b.mean"] == 1.0


def test_single_row_dataframe_records_values() -> None:
    """A one-row DataFrame records each column's value (numbers only)."""
    s = ok(_frame(2).iloc[:1])
    assert s["feature.x"] == 0.0 and s["feature.n"] == 1 and s["feature.b"] is True
    assert s["feature.s.length"] == len(SECRET)


def test_large_dataframe_is_sampled_and_fingerprinted() -> None:
    """A frame over sample_size cells is read from strided rows; the fingerprint is stable."""
    df = pd.DataFrame(np.random.default_rng(4).random((50_000, 4)), columns=list("abcd"))
    s = ok(df)
    assert s["sampled"] is True and s["fingerprint_sampled"] is True
    assert s["feature.a.mean"] == pytest.approx(0.5, abs=0.02)
    assert ok(df.copy())["fingerprint"] == s["fingerprint"]
    assert ok(df.rename(columns={"a": "z"}))["fingerprint"] != s["fingerprint"]


def test_dataframe_fingerprint_covers_every_column_type() -> None:
    """Changing a number, a timestamp or a string in a frame changes its fingerprint."""
    df = _frame(4)
    base = ok(df)["fingerprint"]
    assert ok(df.copy())["fingerprint"] == base
    for column, value in (("x", 9.0), ("t", pd.Timestamp("2030-01-01")), ("s", "other")):
        changed = df.copy()
        changed.loc[2, column] = value
        assert ok(changed)["fingerprint"] != base, column
    dates = df[["x", "t"]]
    later = dates.assign(t=dates["t"] + pd.Timedelta(days=1))
    assert ok(later)["fingerprint"] != ok(dates)["fingerprint"]


def test_dataframe_with_unhashable_cells_has_no_fingerprint() -> None:
    """Cells holding lists cannot be hashed by pandas: the summary simply has no fingerprint."""
    s = ok(pd.DataFrame({"a": [[1, 2], [3]], "b": [1, 2]}))
    assert "fingerprint" not in s and s["feature.b.mean"] == 1.5


def test_series() -> None:
    """A numpy-backed Series is summarised (and fingerprinted) like its array; others by nulls."""
    values = np.array([1.0, 2.0, np.nan])
    s = ok(pd.Series(values))
    assert (s["kind"], s["nan_count"], s["mean"]) == ("series", 1, 1.5)
    assert s["fingerprint"] == ok(values)["fingerprint"]
    nullable = ok(pd.Series([1, None, 3], dtype="Int64"))
    assert (nullable["dtype"], nullable["nan_count"], nullable["mean"]) == ("Int64", 1, 2.0)
    text = ok(pd.Series([SECRET, None], dtype="string"))
    assert text["nan_count"] == 1 and "mean" not in text
    assert ok(pd.Series([SECRET, None], dtype=object))["nan_count"] == 1


# -- scalars, text, bytes, None, objects ----------------------------------------------------------


@pytest.mark.parametrize(
    ("obj", "value", "dtype"),
    [
        (3, 3, "int"),
        (2.5, 2.5, "float"),
        (True, True, "bool"),
        (np.float32(1.5), 1.5, "float32"),
        (np.int64(-2), -2, "int64"),
        (np.bool_(False), False, "bool"),
        (2**70, float(2**70), "int"),
        (np.uint64(2**64 - 1), float(2**64 - 1), "uint64"),
    ],
)
def test_numeric_scalars_record_their_value(obj: object, value: object, dtype: str) -> None:
    """Numbers and bools are recorded as Python primitives of the right type."""
    s = ok(obj)
    assert (s["kind"], s["dtype"]) == ("scalar", dtype)
    assert s["value"] == value and type(s["value"]) is type(value)


@pytest.mark.parametrize("obj", [float("nan"), np.float64("inf"), 1 + 2j, np.datetime64("NaT"), 10**400])
def test_odd_scalars_have_no_value(obj: object) -> None:
    """NaN, inf, complex, datetimes and ints beyond float range record no value."""
    s = ok(obj)
    assert s["kind"] == "scalar" and "value" not in s


def test_text_bytes_none_and_objects() -> None:
    """Strings record length, bytes their size, None its kind, other objects their type."""
    assert ok(SECRET) == {"kind": "str", "length": len(SECRET), "fingerprint": ok(SECRET)["fingerprint"]}
    assert ok(np.str_(SECRET))["length"] == len(SECRET)
    assert ok(b"abc")["size"] == 3 and ok(bytearray(b"abc"))["kind"] == "bytes"
    assert ok(memoryview(array.array("d", [0.0] * 4)))["size"] == 32
    assert ok(None) == {"kind": "none"}
    assert ok(object()) == {"kind": "object", "type": "object"}
    assert ok({1, 2}) == {"kind": "set", "type": "set", "length": 2}
    assert ok(types.MappingProxyType({"a": 1}))["kind"] == "mapping"


def test_generators_are_not_consumed() -> None:
    """An iterator is described by its type and left untouched."""

    def gen() -> Iterator[int]:
        yield 1

    it = gen()
    assert ok(it)["kind"] == "object"
    assert next(it) == 1


def test_array_like_objects_give_shape_and_dtype() -> None:
    """Objects with shape and dtype (jax, cupy, ...) give those without touching their data."""

    class DeviceArray:
        shape = (3, 4)
        dtype = "float32"

        def __array__(self, *args: object, **kwargs: object) -> np.ndarray:
            raise AssertionError("data must not be read")

    s = ok(DeviceArray())
    assert (s["kind"], s["shape"], s["dtype"], s["size"]) == ("object", [3, 4], "float32", 12)


def test_long_strings_and_bytes_are_fingerprinted_from_a_sample() -> None:
    """Text and bytes beyond 1 MiB hash a deterministic sample, and say so."""
    long = "ab" * 2_000_000
    s = ok(long)
    assert s["fingerprint_sampled"] is True and s["length"] == 4_000_000
    assert ok(long[:-1] + "c")["fingerprint"] != s["fingerprint"]
    assert ok(b"x" * 3_000_000)["fingerprint_sampled"] is True


# -- fingerprints ---------------------------------------------------------------------------------

FINGERPRINTED: list[object] = [
    np.arange(12.0).reshape(3, 4),
    np.array(["a", "bc"]),
    np.array([1, "x", None], dtype=object),
    [1.0, 2.0],
    {"age": 3, "name": SECRET, "vec": [1, 2], "nested": {"k": [None, True]}},
    [{"a": 1, "b": "x"}, {"a": 2, "b": "y"}],
    SECRET,
    b"bytes",
    2.5,
]


def test_fingerprints_are_stable_across_processes() -> None:
    """Equal content gives the same fingerprint in another process (other hash seed too)."""
    here = [summarize(obj)["fingerprint"] for obj in FINGERPRINTED]
    code = (
        "import json, sys; sys.path.insert(0, 'tests/summaries'); import test_summaries as t;"
        "print(json.dumps([t.summarize(o)['fingerprint'] for o in t.FINGERPRINTED]))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True,
        env={"PYTHONHASHSEED": "12345", "MLTRACE_EXPORTER": "none"}, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert json.loads(run.stdout) == here


def test_fingerprints_tell_different_content_apart() -> None:
    """A changed element, dtype, shape, key or value changes the fingerprint."""
    base = np.arange(12.0)
    changed = base.copy()
    changed[7] = -1
    variants = [base, changed, base.astype(np.float32), base.reshape(3, 4), base[:-1]]
    dicts = [{"a": 1}, {"a": 2}, {"b": 1}, {"a": 1.0}, {"a": "1"}, {"a": True}, {"a": None}]
    prints = [ok(v)["fingerprint"] for v in (*variants, *dicts, "a", b"a", ["a"], ("a", 1))]
    assert len(set(prints)) == len(prints)


def test_fingerprint_of_copies_is_equal() -> None:
    """Fresh but equal objects (no shared identity) give equal fingerprints."""
    for obj in FINGERPRINTED:
        fresh = json.loads(json.dumps(obj)) if _jsonable(obj) else copy.deepcopy(obj)
        assert ok(fresh)["fingerprint"] == ok(obj)["fingerprint"]
    a = {"k": "".join(["x", "y"]), "j": "xy"}
    assert ok(a)["fingerprint"] == ok({"k": "xy", "j": "xy"})["fingerprint"]


def _jsonable(obj: object) -> bool:
    try:
        json.dumps(obj)
    except TypeError:
        return False
    return True


def test_list_and_array_of_the_same_numbers_share_a_fingerprint() -> None:
    """Decision: a numeric list hashes as ``np.asarray(list)``; another dtype is other content."""
    assert ok([1.0, 2.0])["fingerprint"] == ok(np.array([1.0, 2.0]))["fingerprint"]
    assert ok((1, 2))["fingerprint"] == ok([1, 2])["fingerprint"] == ok(np.array([1, 2]))["fingerprint"]
    assert ok([1.0, 2.0])["fingerprint"] != ok(np.array([1.0, 2.0], dtype=np.float32))["fingerprint"]
    assert ok([[1, 2], [3, 4]])["fingerprint"] == ok(np.array([[1, 2], [3, 4]]))["fingerprint"]


def test_mapping_order_is_part_of_the_content() -> None:
    """Decision: as in JSON text, {"a", "b"} and {"b", "a"} are different payloads."""
    assert ok({"a": 1, "b": 2})["fingerprint"] != ok({"b": 2, "a": 1})["fingerprint"]


# -- privacy, references, hostile input -----------------------------------------------------------

CARRIERS: list[object] = [
    SECRET,
    [SECRET, SECRET],
    {"name": SECRET},
    {"nested": {"deep": [SECRET]}},
    [{"name": SECRET, "n": 1}, {"name": SECRET, "n": 2}],
    [{"name": SECRET}],
    np.array([SECRET, "x"]),
    np.array([SECRET, 1], dtype=object),
    np.array([(SECRET, 1)], dtype=[("name", "U20"), ("n", "i4")]),
    SECRET.encode(),
    pd.DataFrame({"name": [SECRET, "x"], "n": [1, 2]}),
    pd.DataFrame({"name": [SECRET]}),
    pd.Series([SECRET, "x"]),
    pd.Series([SECRET], dtype="category"),
    Request(age=1, name=SECRET, scores=[]),
    Point(1.0, SECRET),
    {SECRET},
]


@pytest.mark.parametrize("obj", CARRIERS, ids=lambda o: type(o).__name__)
def test_no_raw_text_anywhere_in_the_summary(obj: object) -> None:
    """String content never appears in keys or values, only lengths, types and hashes."""
    s = ok(obj)
    assert SECRET not in repr(s)
    assert SECRET[:8] not in repr(s)


def test_summaries_keep_no_reference_to_the_payload() -> None:
    """After summarize returns, the payload can be freed."""

    class Payload:
        pass

    for make in (lambda: np.ones(10), Payload, lambda: np.ones((3, 3)), lambda: Point(1.0, "a")):
        obj = make()
        ref = weakref.ref(obj)
        summarize({"x": obj})
        summarize(obj)
        del obj
        gc.collect()
        assert ref() is None


class Hostile:
    """Raises from everything a summariser might touch."""

    def __len__(self) -> int:
        raise RuntimeError("no len")

    def __iter__(self) -> Iterator[int]:
        raise RuntimeError("no iter")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("no eq")

    __hash__ = object.__hash__

    @property
    def shape(self) -> tuple[int, ...]:
        raise RuntimeError("no shape")


class BrokenDict(dict[str, Any]):
    def items(self) -> Any:
        raise RuntimeError("no items")


@pytest.mark.parametrize(
    "obj",
    [Hostile(), [Hostile()], {"h": Hostile()}, [{"h": Hostile()}, {"h": 1}], BrokenDict(a=1),
     np.array([Hostile()], dtype=object), (Hostile(), 1)],
    ids=lambda o: type(o).__name__,
)  # fmt: skip
def test_hostile_objects_never_raise(obj: object) -> None:
    """Objects that raise from len, iter, eq or attributes give a summary or an error kind."""
    s = summarize(obj)
    assert_valid(s)
    if "error" in s:
        assert set(s) == {"kind", "error"} and s["error"] == "RuntimeError"


def test_bad_arguments_give_an_error_summary() -> None:
    """Non-integer limits give an error summary; out-of-range ones are clamped."""
    assert summarize([1.0], max_features="x") == {"kind": "list", "error": "ValueError"}  # type: ignore[arg-type]
    assert ok(np.ones((2, 3)), max_features=-5)["n_features"] == 3
    assert ok(np.ones(10), sample_size=0)["sample_size"] == 1


def test_optional_libraries_are_not_imported() -> None:
    """Summarising never imports pandas, torch or pydantic; it only uses them when loaded."""
    code = (
        "import sys, numpy as np, mltrace;"
        "[mltrace.summarize(o) for o in ({'a': 1}, [1.0], np.ones(3), 'x', None, object())];"
        "print(sorted(m for m in ('pandas', 'torch', 'pydantic') if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"


# -- torch (a stand-in module: torch is not installed in this environment) ------------------------


class _Device:
    def __init__(self, kind: str) -> None:
        self.type = kind

    def __str__(self) -> str:
        return self.type if self.type == "cpu" else f"{self.type}:0"


class _Tensor:
    """The slice of torch.Tensor's API that the summariser touches, backed by numpy."""

    def __init__(self, arr: np.ndarray, device: str = "cpu", dtype: str | None = None) -> None:
        self._arr = arr
        self.device = _Device(device)
        self.dtype = f"torch.{dtype or arr.dtype.name}"
        self.shape = arr.shape
        self.layout = _STRIDED
        self.is_quantized = False
        self.copied = False

    def numel(self) -> int:
        return self._arr.size

    def detach(self) -> _Tensor:
        return self

    def resolve_conj(self) -> _Tensor:
        return self

    def cpu(self) -> _Tensor:
        self.copied = True
        return _Tensor(self._arr, "cpu", self.dtype.removeprefix("torch."))

    def numpy(self) -> np.ndarray:
        if self.device.type != "cpu":
            raise TypeError("can't convert cuda:0 device type tensor to numpy")
        if self.dtype == "torch.bfloat16":
            raise TypeError("Got unsupported ScalarType BFloat16")
        return self._arr

    def is_floating_point(self) -> bool:
        return self._arr.dtype.kind == "f"

    def float(self) -> _Tensor:
        return _Tensor(self._arr.astype(np.float32), self.device.type)


_STRIDED = object()


@pytest.fixture
def fake_torch(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    module = types.ModuleType("torch")
    module.Tensor = _Tensor  # type: ignore[attr-defined]
    module.strided = _STRIDED  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "torch", module)
    return module


def test_cpu_tensor_is_summarised_through_numpy(fake_torch: types.ModuleType) -> None:
    """A CPU tensor gives shape, dtype, device and the statistics of its numpy view."""
    arr = np.arange(6.0).reshape(2, 3)
    s = ok(_Tensor(arr))
    assert (s["kind"], s["shape"], s["dtype"], s["device"]) == ("tensor", [2, 3], "float64", "cpu")
    assert (s["mean"], s["feature.2.max"]) == (2.5, 5.0)
    assert s["fingerprint"] == ok(arr)["fingerprint"]


def test_device_tensors_are_never_copied(fake_torch: types.ModuleType) -> None:
    """A device tensor, small or large, is never copied (a copy would wait for the device)."""
    small = _Tensor(np.ones(10), device="cuda")
    s = ok(small)
    assert not small.copied
    assert "mean" not in s and s["sampled"] is True
    large = _Tensor(np.ones(1000), device="cuda")
    s = ok(large, sample_size=100)
    assert not large.copied
    assert (s["device"], s["size"], s["sampled"], s["sample_size"]) == ("cuda:0", 1000, True, 0)
    assert "mean" not in s and "fingerprint" not in s


def test_bfloat16_tensor_is_read_as_float32(fake_torch: types.ModuleType) -> None:
    """Dtypes numpy lacks are read through a float32 copy, and keep their own dtype name."""
    s = ok(_Tensor(np.array([1.0, 3.0], dtype=np.float32), dtype="bfloat16"))
    assert (s["dtype"], s["mean"]) == ("bfloat16", 2.0)


# -- properties -----------------------------------------------------------------------------------

_ARRAYS = hnp.arrays(
    dtype=hnp.scalar_dtypes() | hnp.byte_string_dtypes() | hnp.unicode_string_dtypes() | hnp.array_dtypes(),
    shape=hnp.array_shapes(min_dims=0, max_dims=4, min_side=0, max_side=6),
)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: st.lists(children, max_size=8) | st.dictionaries(st.text(max_size=10), children, max_size=8),
    max_leaves=60,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(arr=_ARRAYS, max_features=st.integers(0, 5), sample_size=st.integers(1, 50))
def test_any_array_summarises_within_bounds(arr: np.ndarray, max_features: int, sample_size: int) -> None:
    """Any dtype and shape, any limits: no error, bounded primitives, a fingerprint."""
    s = ok(arr, max_features=max_features, sample_size=sample_size)
    assert s["size"] == arr.size and "fingerprint" in s
    _memo.clear()
    assert summarize(arr.copy(), max_features=max_features, sample_size=sample_size) == s


@settings(max_examples=300, deadline=None)
@given(obj=_JSON, max_features=st.integers(0, 5), sample_size=st.integers(1, 50))
def test_any_json_summarises_within_bounds(obj: object, max_features: int, sample_size: int) -> None:
    """Any JSON document, any limits: no error, bounded primitives, a stable fingerprint."""
    s = ok(obj, max_features=max_features, sample_size=sample_size)
    if obj is not None:
        assert "fingerprint" in s
    text = json.dumps(obj)
    if "NaN" not in text:  # JSON drops NaN's sign and payload bits, which the fingerprint keeps
        _memo.clear()
        assert summarize(json.loads(text), max_features=max_features, sample_size=sample_size) == s


@pytest.mark.parametrize("value", [1e155, 1e200, 2.137622145065416e266, -1e300])
def test_huge_close_values_keep_std_without_overflow(value: float) -> None:
    """Deviations from the mean of values near 1e200 carry the mean's rounding error (~1e184),
    which overflowed when squared: numpy warned and the summary became an error. The magnitude,
    not the spread, now picks the scaled computation."""
    for obj in ([value] * 3, np.array([value, value, value * (1 + 1e-15)])):
        s = summarize(obj)
        assert "error" not in s
        assert s["min"] <= s["max"]
        assert 0.0 <= s["std"] < abs(value)
