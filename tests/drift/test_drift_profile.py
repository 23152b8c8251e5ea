"""Reference profiles: building from every input shape, the JSON format, hashing and mismatches."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from mltrace.drift import ProfileFormatError, ProfileMismatchError, ReferenceProfile
from mltrace.drift._features import CategoricalFeature, NumericalFeature, category_key, to_float
from mltrace.drift._files import _read_csv_stdlib


def _frame(n: int = 5_000, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.normal(40, 10, n),
            "income": rng.lognormal(10, 1, n),
            "city": rng.choice(["paris", "lyon", "nice"], n, p=[0.5, 0.3, 0.2]),
            "clicks": rng.integers(0, 6, n),
        }
    )


def _numerical(profile: ReferenceProfile, name: str) -> NumericalFeature:
    feature = profile.feature(name)
    assert isinstance(feature, NumericalFeature)
    return feature


def _categorical(profile: ReferenceProfile, name: str) -> CategoricalFeature:
    feature = profile.feature(name)
    assert isinstance(feature, CategoricalFeature)
    return feature


def test_numerical_summary_matches_numpy() -> None:
    """Moments, range and named quantiles of a numerical feature match numpy's."""
    df = _frame()
    feature = _numerical(ReferenceProfile.from_data(df), "age")
    values = df["age"].to_numpy()
    assert feature.count == len(values) and feature.missing == 0
    assert feature.mean == pytest.approx(values.mean())
    assert feature.std == pytest.approx(values.std())
    assert (feature.min, feature.max) == (values.min(), values.max())
    assert dict(feature.quantiles)[0.5] == pytest.approx(np.quantile(values, 0.5))
    assert sum(feature.counts) == feature.count
    assert len(feature.bin_edges) == 9 and set(feature.bin_edges) <= set(feature.edges)


def test_reference_quantile_bins_hold_equal_mass() -> None:
    """The coarse bins are reference deciles (about 10% each); the fine ones about 1% each."""
    rng = np.random.default_rng(1)
    profile = ReferenceProfile.from_data({"x": rng.normal(size=50_000)})
    feature = _numerical(profile, "x")
    coarse = np.bincount(np.searchsorted(feature.bin_edges, rng.normal(size=200_000), side="right"))
    np.testing.assert_allclose(coarse / coarse.sum(), 0.1, atol=0.01)
    inner = np.asarray(feature.counts[4:-4]) / feature.count
    np.testing.assert_allclose(inner, 0.01, atol=0.003)


def test_bins_option_sets_the_number_of_coarse_bins() -> None:
    """bins=5 gives quintile edges, and the fine resolution becomes a multiple of it."""
    rng = np.random.default_rng(2)
    profile = ReferenceProfile.from_data(rng.normal(size=(5_000, 2)), bins=5, resolution=42)
    assert profile.bins == 5 and profile.resolution == 45
    assert len(_numerical(profile, "x0").bin_edges) == 4


def test_categorical_features_are_detected_and_capped() -> None:
    """Text columns are categorical; categories beyond max_categories pool into 'other'."""
    rng = np.random.default_rng(3)
    names = [f"c{i}" for i in range(30)]
    df = pd.DataFrame({"cat": rng.choice(names, 10_000), "x": rng.normal(size=10_000)})
    feature = _categorical(ReferenceProfile.from_data(df, max_categories=10), "cat")
    assert len(feature.categories) == 10
    assert feature.cardinality == 30
    assert feature.other + sum(n for _, n in feature.categories) == feature.count == 10_000
    counts = [n for _, n in feature.categories]
    assert counts == sorted(counts, reverse=True)


def test_integer_column_named_categorical_is_profiled_by_value() -> None:
    """An integer column listed in categorical= counts each value as a category."""
    profile = ReferenceProfile.from_data(_frame(), categorical=["clicks"])
    feature = _categorical(profile, "clicks")
    assert {key for key, _ in feature.categories} == {"0", "1", "2", "3", "4", "5"}


def test_unknown_categorical_name_is_an_error() -> None:
    """categorical= naming a column that does not exist raises, naming it."""
    with pytest.raises(ValueError, match="nope"):
        ReferenceProfile.from_data(_frame(), categorical=["nope"])


@pytest.mark.parametrize("shape", ["array", "frame", "records", "columns"])
def test_every_input_shape_gives_the_same_profile(shape: str) -> None:
    """A 2-D array, a DataFrame, records and a dict of columns give one profile (same id)."""
    rng = np.random.default_rng(4)
    data = rng.normal(size=(2_000, 3))
    names = ["a", "b", "c"]
    inputs: dict[str, Any] = {
        "array": data,
        "frame": pd.DataFrame(data, columns=names),
        "records": [dict(zip(names, row, strict=True)) for row in data.tolist()],
        "columns": {n: data[:, j] for j, n in enumerate(names)},
    }
    profile = ReferenceProfile.from_data(inputs[shape], feature_names=names if shape == "array" else None)
    expected = ReferenceProfile.from_data(data, feature_names=names)
    assert profile.feature_names == ("a", "b", "c")
    assert profile.id == expected.id


def test_missing_and_non_numeric_values_are_counted_as_missing() -> None:
    """NaN, None, inf and stray text in a numerical column count as missing, not as values."""
    values: list[object] = [1.0, 2.0, None, float("nan"), float("inf"), 3.0] * 200 + ["oops"] * 10
    feature = _numerical(ReferenceProfile.from_data({"x": values, "y": list(range(1210))}), "x")
    assert feature.count == 600 and feature.missing == 610
    assert feature.max == 3.0


def test_discrete_feature_has_deduplicated_edges() -> None:
    """A feature with few distinct values gets strictly increasing edges, one bin per value at most."""
    rng = np.random.default_rng(5)
    feature = _numerical(ReferenceProfile.from_data({"k": rng.integers(0, 4, 10_000)}), "k")
    assert list(feature.edges) == sorted(set(feature.edges))
    assert len(feature.counts) <= 4
    assert all(c > 0 for c in feature.counts)


def test_constant_and_empty_features_do_not_break_the_profile() -> None:
    """A constant column and an all-missing column still profile and monitor."""
    profile = ReferenceProfile.from_data({"const": [5.0] * 500, "empty": [None] * 500, "x": np.arange(500.0)})
    assert _numerical(profile, "const").counts == (500,)
    empty = _numerical(profile, "empty")
    assert empty.count == 0 and empty.missing == 500 and empty.mean is None
    assert profile.inputs.m == 3


def test_save_load_round_trip_keeps_everything(tmp_path: Path) -> None:
    """save() then load() gives an identical profile: same id, features, outputs and embeddings."""
    rng = np.random.default_rng(6)
    df = _frame()
    profile = ReferenceProfile.from_data(
        df, outputs=rng.random(len(df)), embeddings={"emb": rng.normal(size=(len(df), 8))}, description="test"
    )
    path = profile.save(tmp_path / "reference.json")
    loaded = ReferenceProfile.load(path)
    assert loaded.id == profile.id
    assert loaded.to_dict() == profile.to_dict()
    assert loaded.features == profile.features
    assert loaded.outputs == profile.outputs
    assert loaded.embeddings == profile.embeddings


def test_saved_json_is_versioned_and_documented(tmp_path: Path) -> None:
    """The file carries format mltrace.reference/1, the id and per-feature documented keys."""
    path = ReferenceProfile.from_data(_frame()).save(tmp_path / "r.json")
    document = json.loads(path.read_text())
    assert document["format"] == "mltrace.reference/1"
    assert len(document["id"]) == 16
    assert {"name", "kind", "count", "missing", "edges", "counts", "bin_edges", "quantiles"} <= set(
        document["features"][0]
    )
    assert {"categories", "other", "cardinality"} <= set(document["features"][2])


def test_id_is_a_stable_content_hash() -> None:
    """The id depends on the content only: rebuilding gives the same id, other data another."""
    df = _frame()
    first = ReferenceProfile.from_data(df, description="one")
    second = ReferenceProfile.from_data(df, description="two")
    other = ReferenceProfile.from_data(_frame(seed=1))
    assert first.id == second.id
    assert first.id != other.id
    assert first.id == ReferenceProfile.from_dict(first.to_dict()).id


def test_edited_profile_fails_its_hash_check(tmp_path: Path) -> None:
    """A saved profile edited by hand no longer matches its id and will not load."""
    path = ReferenceProfile.from_data(_frame()).save(tmp_path / "r.json")
    document = json.loads(path.read_text())
    document["features"][0]["mean"] = 1.0
    path.write_text(json.dumps(document))
    with pytest.raises(ProfileFormatError, match="does not match its id"):
        ReferenceProfile.load(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(format="mltrace.reference/9"), "unsupported profile format"),
        (lambda d: d.pop("features"), "malformed"),
        (lambda d: d["features"][0].update(kind="weird"), "unknown kind"),
        (lambda d: d["features"][0]["counts"].pop(), "counts"),
    ],
)
def test_malformed_profiles_raise_format_errors(tmp_path: Path, edit: Any, message: str) -> None:
    """Wrong format versions, missing keys and inconsistent counts raise ProfileFormatError."""
    document = ReferenceProfile.from_data(_frame()).to_dict()
    document.pop("id")
    edit(document)
    with pytest.raises(ProfileFormatError, match=message):
        ReferenceProfile.from_dict(document)


def test_not_json_is_a_format_error(tmp_path: Path) -> None:
    """A file that is not JSON raises ProfileFormatError naming the file."""
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(ProfileFormatError, match=r"broken\.json"):
        ReferenceProfile.load(path)


def test_load_with_other_features_names_the_mismatch(tmp_path: Path) -> None:
    """Loading against different feature names raises ProfileMismatchError listing them."""
    path = ReferenceProfile.from_data(_frame()).save(tmp_path / "r.json")
    with pytest.raises(ProfileMismatchError, match=r"missing \['clicks'\], unexpected \['score'\]"):
        ReferenceProfile.load(path, feature_names=["age", "income", "city", "score"])
    with pytest.raises(ProfileMismatchError, match="different order"):
        ReferenceProfile.load(path, feature_names=["income", "age", "city", "clicks"])
    assert ReferenceProfile.load(path, feature_names=["age", "income", "city", "clicks"]).feature_names[0] == "age"


def test_from_file_reads_csv_with_a_target(tmp_path: Path) -> None:
    """from_file profiles a CSV; target= becomes the output profile, not a feature."""
    df = _frame()
    df["label"] = (df["age"] > 40).astype(int)
    path = tmp_path / "train.csv"
    df.to_csv(path, index=False)
    profile = ReferenceProfile.from_file(path, target="label", categorical=["clicks"])
    assert profile.feature_names == ("age", "income", "city", "clicks")
    assert profile.output_names == ("label",)
    assert isinstance(profile.outputs[0], CategoricalFeature)


def test_stdlib_csv_reader_types_columns(tmp_path: Path) -> None:
    """Without pandas, CSV columns whose values all read as numbers are numerical, others text."""
    path = tmp_path / "t.csv"
    path.write_text("a,b,c\n1,x,\n2.5,y,3\n,z,4\n")
    columns = _read_csv_stdlib(path)
    np.testing.assert_array_equal(columns["a"], [1.0, 2.5, np.nan])
    assert list(columns["b"]) == ["x", "y", "z"]
    np.testing.assert_array_equal(columns["c"], [np.nan, 3.0, 4.0])


def test_parquet_without_pyarrow_names_the_extra(tmp_path: Path) -> None:
    """Reading Parquet without pyarrow fails with the extra to install; with it, it profiles."""
    path = tmp_path / "train.parquet"
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        path.write_bytes(b"PAR1")
        with pytest.raises(ImportError, match=r"pip install .mltrace-serving\[parquet\]."):
            ReferenceProfile.from_file(path)
        return
    _frame().to_parquet(path)
    assert ReferenceProfile.from_file(path).feature_names == ("age", "income", "city", "clicks")


def test_unknown_file_type_is_an_error(tmp_path: Path) -> None:
    """from_file on an unknown extension raises a ValueError naming the accepted ones."""
    with pytest.raises(ValueError, match="parquet"):
        ReferenceProfile.from_file(tmp_path / "train.xlsx")


def test_outputs_profile_labels_and_scores() -> None:
    """Integer class labels profile as categorical outputs; float scores as numerical."""
    rng = np.random.default_rng(7)
    labels = ReferenceProfile.from_data(rng.normal(size=(1000, 2)), outputs=rng.integers(0, 3, 1000))
    scores = ReferenceProfile.from_data(rng.normal(size=(1000, 2)), outputs=rng.random((1000, 2)))
    assert isinstance(labels.outputs[0], CategoricalFeature)
    assert scores.output_names == ("output[0]", "output[1]")
    assert all(isinstance(f, NumericalFeature) for f in scores.outputs)


def test_embedding_profile_has_centroid_radius_and_projections() -> None:
    """An embedding profile holds its centroid, RMS radius and derived distance/projection features."""
    rng = np.random.default_rng(8)
    vectors = rng.normal(size=(3000, 16)) + 2.0
    profile = ReferenceProfile.from_data(rng.normal(size=(3000, 2)), embeddings=vectors, projections=4)
    (emb,) = profile.embeddings
    np.testing.assert_allclose(emb.centroid, vectors.mean(axis=0))
    assert emb.rms_radius == pytest.approx(4.0, rel=0.05)
    assert [f.name for f in emb.features] == [
        "embedding.distance",
        "embedding.rp0",
        "embedding.rp1",
        "embedding.rp2",
        "embedding.rp3",
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"bins": 1}, "bins"), ({"resolution": 5}, "resolution"), ({"max_categories": 0}, "max_categories")],
)
def test_invalid_settings_are_rejected(kwargs: dict[str, int], message: str) -> None:
    """Out-of-range build settings raise ValueError naming the setting."""
    with pytest.raises(ValueError, match=message):
        ReferenceProfile.from_data(np.zeros((10, 1)), **kwargs)


@pytest.mark.parametrize(
    ("value", "key"),
    [
        (1, "1"),
        (1.0, "1"),
        (np.int8(1), "1"),
        (True, "True"),
        (np.bool_(False), "False"),
        ("a", "a"),
        (b"b", "b"),
        (1.5, "1.5"),
        (None, None),
        (float("nan"), None),
        (pd.NA, None),
    ],
)
def test_category_keys_are_canonical(value: object, key: str | None) -> None:
    """Categories read the same whatever the Python or numpy type; missing values read as None."""
    assert category_key(value) == key


@pytest.mark.parametrize(
    ("value", "number"),
    [
        (1, 1.0),
        ("2.5", 2.5),
        (True, 1.0),
        (np.float32(0.5), 0.5),
        ("x", None),
        (None, None),
        ([1], None),
        (10**400, float("inf")),
    ],
)
def test_to_float_never_raises(value: object, number: float | None) -> None:
    """Numeric reading of odd values: numbers and numeric text convert, anything else is NaN."""
    got = to_float(value)
    assert np.isnan(got) if number is None else got == number


def test_profile_counts_bin_exactly_like_the_monitor() -> None:
    """Reference counts equal the monitor's own codes on the same values (no off-by-one at edges)."""
    rng = np.random.default_rng(9)
    data = np.column_stack([rng.normal(size=4000), rng.integers(0, 4, 4000), np.round(rng.normal(size=4000), 1)])
    data[::9, 0] = np.nan
    profile = ReferenceProfile.from_data(data)
    group = profile.inputs
    codes, _ = group.binner.codes(data)
    for j, feature in enumerate(profile.features):
        assert isinstance(feature, NumericalFeature)
        found = np.bincount(codes[:, j], minlength=group.n_codes)
        assert tuple(found[1 : len(feature.counts) + 1]) == feature.counts
        assert found[group.missing_code] == feature.missing


def test_large_data_bins_a_sample_and_keeps_exact_moments() -> None:
    """Above sample_size rows, edges and counts come from a sample; count, range and mean from all rows."""
    rng = np.random.default_rng(10)
    values = rng.normal(size=30_000)
    feature = _numerical(ReferenceProfile.from_data({"x": values}, sample_size=5_000), "x")
    assert sum(feature.counts) == 5_000
    assert feature.count == 30_000
    assert (feature.min, feature.max) == (values.min(), values.max())
    assert feature.mean == pytest.approx(values.mean())
