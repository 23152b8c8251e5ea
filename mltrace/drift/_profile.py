"""Reference profiles: what training data looked like, saved as versioned JSON with a content hash."""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import InputDataError, InvalidArgumentError
from .._version import __version__
from ._build import build_group
from ._compiled import CompiledGroup
from ._embeddings import EmbeddingProfile, build_embedding
from ._errors import ProfileFormatError, ProfileMismatchError
from ._features import FeatureProfile, NumericalFeature, feature_from_dict
from ._inputs import columns_of

FORMAT = "mltrace.reference/1"
_HASHED_OUT = ("id", "meta")


def content_id(document: Mapping[str, Any]) -> str:
    """First 16 hex digits of the sha256 of the canonical JSON (sorted keys, no spaces),
    leaving out ``id`` and ``meta`` (creation time, library version, description)."""
    body = {k: v for k, v in document.items() if k not in _HASHED_OUT}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


class ReferenceProfile:
    """What a model's training data (and outputs) looked like, feature by feature.

    Build with :meth:`from_data` or :meth:`from_file`, keep with :meth:`save` / :meth:`load`;
    :attr:`id` is a content hash, written on spans as ``ml.drift.reference``.
    """

    def __init__(
        self,
        features: Sequence[FeatureProfile],
        *,
        rows: int,
        bins: int,
        resolution: int,
        max_categories: int,
        outputs: Sequence[FeatureProfile] = (),
        embeddings: Sequence[EmbeddingProfile] = (),
        meta: Mapping[str, Any] | None = None,
    ) -> None:
        self.features = tuple(features)
        self.outputs = tuple(outputs)
        self.embeddings = tuple(embeddings)
        self.rows = int(rows)
        self.bins = int(bins)
        self.resolution = int(resolution)
        self.max_categories = int(max_categories)
        self.meta = dict(meta or {})
        names = [*self.feature_names, *self.embedding_names]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise InputDataError(f"duplicate feature names: {duplicates}")
        self.id = content_id(self.to_dict())

    # -- the public surface -------------------------------------------------------------------

    @property
    def feature_names(self) -> tuple[str, ...]:
        """Names of the tabular features, in column order."""
        return tuple(f.name for f in self.features)

    @property
    def embedding_names(self) -> tuple[str, ...]:
        """Names of the embeddings, in profile order (they share the feature namespace)."""
        return tuple(e.name for e in self.embeddings)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.outputs)

    def feature(self, name: str) -> FeatureProfile:
        """One feature's reference summary, by name."""
        for f in self.features:
            if f.name == name:
                return f
        raise KeyError(name)

    def check(self, feature_names: Iterable[str]) -> None:
        """Raise :class:`ProfileMismatchError` naming the features that differ from ``feature_names``."""
        given = [str(n) for n in feature_names]
        expected = list(self.feature_names)
        missing = [n for n in expected if n not in set(given)]
        extra = [n for n in given if n not in set(expected)]
        if missing or extra:
            raise ProfileMismatchError(
                f"features do not match reference {self.id}: missing {missing}, unexpected {extra}"
            )
        if given != expected:
            raise ProfileMismatchError(
                f"features are in a different order from reference {self.id}: expected {expected}"
            )

    def to_dict(self) -> dict[str, Any]:
        """The JSON document (``format``, ``id``, settings, features, outputs, embeddings, meta)."""
        doc: dict[str, Any] = {
            "format": FORMAT,
            "rows": self.rows,
            "bins": self.bins,
            "resolution": self.resolution,
            "max_categories": self.max_categories,
            "features": [f.to_dict() for f in self.features],
            "outputs": [f.to_dict() for f in self.outputs],
            "embeddings": [e.to_dict() for e in self.embeddings],
            "meta": self.meta,
        }
        if hasattr(self, "id"):
            doc = {"format": FORMAT, "id": self.id, **{k: v for k, v in doc.items() if k != "format"}}
        return doc

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the profile as indented JSON (atomically: a temporary file, then a rename)."""
        target = Path(path)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=1, allow_nan=False, ensure_ascii=False) + "\n", "utf-8")
        os.replace(tmp, target)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str], feature_names: Iterable[str] | None = None) -> ReferenceProfile:
        """Read a saved profile; with ``feature_names``, check they match (else ProfileMismatchError)."""
        try:
            document = json.loads(Path(path).read_text("utf-8"))
        except json.JSONDecodeError as exc:
            raise ProfileFormatError(f"{path}: not JSON ({exc})") from exc
        profile = cls.from_dict(document)
        if feature_names is not None:
            profile.check(feature_names)
        return profile

    @classmethod
    def from_dict(cls, document: Mapping[str, Any]) -> ReferenceProfile:
        """Rebuild a profile from :meth:`to_dict` output, checking its format and content hash."""
        if not isinstance(document, Mapping):
            raise ProfileFormatError("a reference profile is a JSON object")
        fmt = document.get("format")
        if fmt != FORMAT:
            raise ProfileFormatError(f"unsupported profile format {fmt!r}; this mltrace reads {FORMAT!r}")
        try:
            profile = cls(
                [feature_from_dict(f) for f in document["features"]],
                rows=int(document["rows"]),
                bins=int(document["bins"]),
                resolution=int(document["resolution"]),
                max_categories=int(document["max_categories"]),
                outputs=[feature_from_dict(f) for f in document.get("outputs") or []],
                embeddings=[EmbeddingProfile.from_dict(e) for e in document.get("embeddings") or []],
                meta=document.get("meta") or {},
            )
        except ProfileFormatError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise ProfileFormatError(f"malformed reference profile: {type(exc).__name__}: {exc}") from exc
        stored = document.get("id")
        if stored is not None and stored != profile.id:
            raise ProfileFormatError(
                f"profile content hash {profile.id} does not match its id {stored} (edited after saving?)"
            )
        try:
            profile.inputs  # noqa: B018  (compiling validates edges and codes)
        except ValueError as exc:
            raise ProfileFormatError(f"malformed reference profile: {exc}") from exc
        return profile

    # -- compiled tables (built once, shared by every monitor) -----------------------------------

    @cached_property
    def inputs(self) -> CompiledGroup:
        derived = [f for e in self.embeddings for f in e.features]
        one_sided = frozenset(e.distance_name for e in self.embeddings)
        return CompiledGroup([*self.features, *derived], one_sided)

    @cached_property
    def output_group(self) -> CompiledGroup | None:
        return CompiledGroup(self.outputs) if self.outputs else None

    def __repr__(self) -> str:
        return (
            f"ReferenceProfile(id={self.id!r}, rows={self.rows}, features={len(self.features)}, "
            f"outputs={len(self.outputs)}, embeddings={len(self.embeddings)})"
        )

    # -- building -----------------------------------------------------------------------------

    @classmethod
    def from_data(
        cls,
        data: object,
        feature_names: Sequence[str] | None = None,
        categorical: Sequence[str] | None = None,
        bins: int = 10,
        max_categories: int = 50,
        outputs: object = None,
        embeddings: object = None,
        *,
        resolution: int = 100,
        sample_size: int = 200_000,
        projections: int = 8,
        seed: int = 0,
        description: str | None = None,
    ) -> ReferenceProfile:
        """Profile training data: a 2-D array, a pandas DataFrame, a list of records or a dict of columns.

        ``categorical`` names the categorical features (text, boolean and object columns are
        categorical anyway). ``bins`` reference-quantile bins feed PSI and Jensen–Shannon;
        ``resolution`` finer ones (a multiple of ``bins``) feed KS, Wasserstein and per-request
        tail scores. Quantile edges come from a sample of ``sample_size`` rows; counts, moments and
        ranges from every row. ``outputs`` (predictions or scores, 1-D or 2-D) and ``embeddings``
        (a 2-D array, or a dict of name to 2-D array) are profiled alongside.
        """
        _check_settings(bins, resolution, max_categories, sample_size, projections)
        resolution = math.ceil(resolution / bins) * bins
        names, columns = columns_of(data, feature_names)
        n_rows = len(columns[0]) if columns else 0
        cat = set(categorical or ())
        unknown = sorted(cat - set(names))
        if unknown:
            raise InputDataError(f"categorical names features that are not in the data: {unknown}")
        rng = np.random.default_rng(seed)
        sample = _sample_rows(rng, n_rows, sample_size)
        embedded = _embedding_arrays(embeddings, n_rows)
        emb_profiles = [
            build_embedding(name, arr, projections=projections, seed=seed + i) for i, (name, arr) in enumerate(embedded)
        ]
        extra = [
            (name, derived[:, t])
            for e, (_, arr) in zip(emb_profiles, embedded, strict=True)
            for derived in [e.derive(arr)]
            for t, name in enumerate(e.derived_names())
        ]
        features = build_group(
            names,
            columns,
            cat,
            bins=bins,
            resolution=resolution,
            max_categories=max_categories,
            sample=sample,
            extra=extra,
        )
        base, rest = features[: len(names)], features[len(names) :]
        emb_final = []
        for e in emb_profiles:
            k = len(e.derived_names())
            emb_final.append(e.with_features([f for f in rest[:k] if isinstance(f, NumericalFeature)]))
            rest = rest[k:]
        out_features: list[FeatureProfile] = []
        if outputs is not None:
            out_names, out_cols = _output_columns(outputs)
            out_cat = {n for n, c in zip(out_names, out_cols, strict=True) if _label_like(c, max_categories)}
            out_features = build_group(
                out_names,
                out_cols,
                out_cat,
                bins=bins,
                resolution=resolution,
                max_categories=max_categories,
                sample=_sample_rows(rng, len(out_cols[0]), sample_size),
            )
        meta: dict[str, Any] = {
            "created": datetime.now(UTC).isoformat(timespec="seconds"),
            "mltrace_version": __version__,
            "sample_size": sample_size,
        }
        if description:
            meta["description"] = description
        return cls(
            base,
            rows=n_rows,
            bins=bins,
            resolution=resolution,
            max_categories=max_categories,
            outputs=out_features,
            embeddings=emb_final,
            meta=meta,
        )

    @classmethod
    def from_file(
        cls,
        path: str | os.PathLike[str],
        target: str | None = None,
        categorical: Sequence[str] | None = None,
        **options: Any,
    ) -> ReferenceProfile:
        """Profile a CSV or Parquet file; ``target`` names a column profiled as the output distribution.

        Parquet needs pandas and pyarrow (``pip install 'mltrace-serving[parquet]'``). CSV uses pandas when it
        is installed, else the standard library (text columns whose values all read as numbers
        are numerical).
        """
        from ._files import read_table

        columns = read_table(Path(path))
        if target is not None:
            if target not in columns:
                raise InputDataError(f"target column {target!r} not found in {path}; columns: {list(columns)[:20]}")
            options.setdefault("outputs", {target: columns.pop(target)})
        options.setdefault("description", f"built from {Path(path).name}")
        return cls.from_data(columns, categorical=categorical, **options)


def _check_settings(bins: int, resolution: int, max_categories: int, sample_size: int, projections: int) -> None:
    if not 2 <= bins <= 100:
        raise InvalidArgumentError(f"bins must be between 2 and 100; got {bins}")
    if not bins <= resolution <= 250:
        raise InvalidArgumentError(f"resolution must be between bins ({bins}) and 250; got {resolution}")
    if not 1 <= max_categories <= 1000:
        raise InvalidArgumentError(f"max_categories must be between 1 and 1000; got {max_categories}")
    if sample_size < 1000:
        raise InvalidArgumentError(f"sample_size must be at least 1000; got {sample_size}")
    if not 0 <= projections <= 64:
        raise InvalidArgumentError(f"projections must be between 0 and 64; got {projections}")


def _sample_rows(rng: np.random.Generator, n: int, size: int) -> np.ndarray[Any, np.dtype[np.int64]] | None:
    if n <= size:
        return None
    return np.sort(rng.choice(n, size=size, replace=False)).astype(np.int64)


def _embedding_arrays(embeddings: object, n_rows: int) -> list[tuple[str, np.ndarray[Any, Any]]]:
    if embeddings is None:
        return []
    items = embeddings.items() if isinstance(embeddings, Mapping) else [("embedding", embeddings)]
    out = []
    for name, values in items:
        arr = np.asarray(values, dtype=np.float64)
        if arr.ndim != 2:
            raise InputDataError(f"embedding {name!r} must be 2-D (rows x dimensions); got shape {arr.shape}")
        if n_rows and arr.shape[0] != n_rows:
            raise InputDataError(f"embedding {name!r} has {arr.shape[0]} rows; the features have {n_rows}")
        out.append((str(name), arr))
    return out


def _output_columns(outputs: object) -> tuple[list[str], list[np.ndarray[Any, Any]]]:
    if isinstance(outputs, Mapping) or type(outputs).__name__ == "DataFrame":
        return columns_of(outputs)
    arr = np.asarray(outputs)
    if arr.ndim == 1:
        return ["output"], [arr]
    if arr.ndim == 2:
        return [f"output[{j}]" for j in range(arr.shape[1])], [arr[:, j] for j in range(arr.shape[1])]
    raise InputDataError(f"outputs must be 1-D or 2-D; got shape {arr.shape}")


def _label_like(column: np.ndarray[Any, Any], max_categories: int) -> bool:
    """Class labels: text, booleans, or integers with at most ``max_categories`` distinct values."""
    if column.dtype.kind in "biu":
        return column.dtype.kind == "b" or len(np.unique(column)) <= max_categories
    return column.dtype.kind in "OUS" and not all(
        isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in column[:1000]
    )
