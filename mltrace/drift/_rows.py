"""Reading one request (a row, a dict, records, a 2-D batch, a DataFrame) against a profile.

Shapes that cannot be aligned with the profile raise :class:`ProfileMismatchError`; values never
raise: anything that is not a number in a numerical feature is missing, ``±inf`` is out of range.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from ._embeddings import EmbeddingProfile
from ._errors import ProfileMismatchError
from ._features import CategoricalFeature, FeatureProfile, to_float
from ._inputs import as_float_column, is_dataframe

FloatArray = npt.NDArray[np.float64]
AnyArray = npt.NDArray[Any]
_ABSENT = object()
_SCALAR_TYPES = frozenset({float, int, bool, type(None), np.float64, np.float32, np.int64, np.int32})


@dataclass
class Rows:
    """A request read into numerical values (``rows x numerical features``, embeddings' derived
    features last) and categorical columns, with the names of features that were absent."""

    numeric: FloatArray
    categorical: list[list[object]]
    absent: list[str]
    vectors: dict[str, FloatArray] = field(default_factory=dict)
    sampled_from: int | None = None  # rows in the request when only a strided sample was read


class RowReader:
    """Reads requests for one profile's features and embeddings."""

    def __init__(
        self,
        features: Sequence[FeatureProfile],
        embeddings: Sequence[EmbeddingProfile],
        strict: bool,
        max_rows: int = 10_000,
    ) -> None:
        self.max_rows = max_rows
        self.names = [f.name for f in features]
        self.name_set = frozenset(self.names)
        self.n = len(self.names)
        self.strict = strict
        self.embeddings = list(embeddings)
        self.cat_idx = [i for i, f in enumerate(features) if isinstance(f, CategoricalFeature)]
        self.num_idx = [i for i, f in enumerate(features) if not isinstance(f, CategoricalFeature)]
        self.num_names = [self.names[i] for i in self.num_idx]
        self.cat_names = [self.names[i] for i in self.cat_idx]
        self.all_numeric = not self.cat_idx
        self.fast = self.all_numeric and not self.embeddings
        self.row_shape = (self.n,)

    def read(self, x: object, embeddings: Mapping[str, object] | None = None) -> Rows:
        """``x`` read into rows. The shape is checked first and a batch is cut to ``max_rows``
        rows (a strided sample) before any value is converted: a hostile 10-million-value list
        costs a length check, not a conversion (it took 457 ms before raising)."""
        if self.fast and type(x) is np.ndarray and x.shape == self.row_shape and x.dtype == np.float64:
            return Rows(x.reshape(1, -1), [], [])  # one float row of a numerical profile: the hot path
        if type(x).__name__ == "Series" and hasattr(x, "to_dict"):  # one pandas row
            x = x.to_dict()
        sampled_from: int | None = None
        if isinstance(x, (np.ndarray, list, tuple)) or is_dataframe(x):
            x, embeddings, sampled_from = self._bounded(x, embeddings)
        if isinstance(x, np.ndarray):
            rows = self._array(x)
        elif isinstance(x, Mapping):
            rows = self._records([x])
            if self.embeddings:
                embeddings = {**{e.name: x.get(e.name, _ABSENT) for e in self.embeddings}, **(embeddings or {})}
        elif is_dataframe(x):
            rows = self._frame(x)
        elif isinstance(x, (list, tuple)):
            first = x[0]
            if isinstance(first, Mapping):
                rows = self._records(x)
                if self.embeddings:
                    given: dict[str, object] = {e.name: [r.get(e.name) for r in x] for e in self.embeddings}
                    embeddings = {**given, **(embeddings or {})}
            elif all(isinstance(v, (list, tuple, np.ndarray)) for v in x):
                rows = self._array(_object_array(x, 2))
            else:
                rows = self._array(_object_array(x, 1))
        else:
            raise ProfileMismatchError(
                f"cannot read a {type(x).__name__}: expected a row, a dict of features, records, "
                "a 2-D array or a DataFrame"
            )
        if self.embeddings:
            rows.numeric = np.concatenate([rows.numeric, self._derived(embeddings or {}, rows)], axis=1)
        rows.sampled_from = sampled_from
        return rows

    def _bounded(
        self, x: Any, embeddings: Mapping[str, object] | None
    ) -> tuple[Any, Mapping[str, object] | None, int | None]:
        """Shape checks that cost no conversion, then at most ``max_rows`` rows (every k-th)."""
        if isinstance(x, np.ndarray):
            if (x.ndim in (1, 2) and x.shape[-1] != self.n) or x.ndim > 2:
                raise self._width_error(x.shape[-1], f"shape {x.shape}")
            n = x.shape[0] if x.ndim == 2 else 1
        elif is_dataframe(x):
            n = len(x)
        else:
            if not x:
                raise ProfileMismatchError("empty request: expected a row, a dict of features or a batch")
            first = x[0]
            if not isinstance(first, (Mapping, list, tuple, np.ndarray)):  # one row in feature order
                if len(x) != self.n:
                    raise self._width_error(len(x), f"a list of {len(x):,} values")
                return x, embeddings, None
            if not isinstance(first, Mapping):
                if len(x) == self.n and not all(isinstance(v, (list, tuple, np.ndarray)) for v in x):
                    return x, embeddings, None  # one row whose first value is itself a list (missing)
                if len(first) != self.n:
                    raise self._width_error(len(first), f"a batch of {len(x):,} rows")
            n = len(x)
        if n <= self.max_rows:
            return x, embeddings, None
        step = -(-n // self.max_rows)
        x = x.iloc[::step] if is_dataframe(x) else x[::step]
        if embeddings:  # vectors given beside the batch follow the same rows
            embeddings = {
                k: v[::step] if isinstance(v, (list, tuple, np.ndarray)) and len(v) == n else v
                for k, v in embeddings.items()
            }
        return x, embeddings, n

    def _width_error(self, got: int, what: str) -> ProfileMismatchError:
        more = "..." if self.n > 10 else ""
        return ProfileMismatchError(
            f"expected {self.n} values per row in feature order {self.names[:10]}{more}; got {what}"
            + (f" of {got} values" if what.startswith("a batch") else "")
        )

    # -- shapes ------------------------------------------------------------------------------

    def _array(self, arr: AnyArray) -> Rows:
        if arr.ndim == 1:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.n:
            got = arr.shape[-1] if arr.ndim else 0
            raise ProfileMismatchError(
                f"expected {self.n} values per row in feature order {self.names[:10]}"
                f"{'...' if self.n > 10 else ''}; got {got} (shape {arr.shape})"
            )
        numeric_dtype = arr.dtype.kind in "fiub"
        if self.all_numeric:
            values = np.asarray(arr, dtype=np.float64) if numeric_dtype else _floats(arr)
            return Rows(values, [], [])
        num = arr[:, self.num_idx]
        values = np.asarray(num, dtype=np.float64) if numeric_dtype else _floats(num)
        cats = [arr[:, i].tolist() for i in self.cat_idx]
        return Rows(values, cats, [])

    def _records(self, records: Sequence[Mapping[str, Any]]) -> Rows:
        bad = next((r for r in records if not isinstance(r, Mapping)), _ABSENT)
        if bad is not _ABSENT:
            raise ProfileMismatchError(
                f"records must all be dicts of features; found a {type(bad).__name__} among them"
            )
        gone: set[str] = set()
        for record in records:
            gone |= self.name_set - record.keys()
        absent = [n for n in self.names if n in gone] if gone else []
        if absent and self.strict:
            raise ProfileMismatchError(f"features missing from the request: {absent}")
        shape = (len(records), len(self.num_names))
        try:
            cells = [[r[n] for n in self.num_names] for r in records]
            # a value that is itself a container is missing; numpy would first walk all of it
            # (a 10-million-item list in one feature: a 10-million-float array, then a mismatch)
            if any(type(v) not in _SCALAR_TYPES for row in cells for v in row):
                raise TypeError
            values = np.array(cells, dtype=np.float64)
            if values.shape != shape:  # a value was itself a sequence
                raise ValueError
        except (KeyError, TypeError, ValueError, OverflowError):
            values = np.array([[to_float(r.get(n)) for n in self.num_names] for r in records], dtype=np.float64)
            values = values.reshape(shape)
        cats = [[r.get(n) for r in records] for n in self.cat_names]
        return Rows(values, cats, absent)

    def _frame(self, frame: Any) -> Rows:
        columns = [str(c) for c in frame.columns]
        lookup = {str(c): c for c in frame.columns}
        absent = [n for n in self.names if n not in lookup]
        if absent and self.strict:
            raise ProfileMismatchError(f"columns missing from the DataFrame: {absent}; it has {columns[:20]}")
        n_rows = len(frame)
        values = np.full((n_rows, len(self.num_names)), np.nan)
        for j, name in enumerate(self.num_names):
            if name in lookup:
                values[:, j] = as_float_column(np.asarray(frame[lookup[name]].to_numpy()))
        cats: list[list[object]] = [
            frame[lookup[n]].tolist() if n in lookup else [None] * n_rows for n in self.cat_names
        ]
        return Rows(values, cats, absent)

    # -- embeddings --------------------------------------------------------------------------

    def _derived(self, given: Mapping[str, object], rows: Rows) -> FloatArray:
        b = rows.numeric.shape[0]
        parts = []
        for e in self.embeddings:
            raw = given.get(e.name, _ABSENT)
            if raw is _ABSENT or raw is None:
                if self.strict:
                    raise ProfileMismatchError(f"embedding {e.name!r} missing from the request")
                rows.absent.append(e.name)
                parts.append(np.full((b, 1 + len(e.projection)), np.nan))
                continue
            vectors = self._vectors(e, raw, b)
            rows.vectors[e.name] = vectors
            parts.append(e.derive(vectors))
        return np.concatenate(parts, axis=1)

    def _vectors(self, e: EmbeddingProfile, raw: object, b: int) -> FloatArray:
        # sizes first: a hostile 10-million-item "vector" is refused before it is walked or converted
        if isinstance(raw, (list, tuple)) and len(raw) not in (b, e.dim):
            raise ProfileMismatchError(
                f"embedding {e.name!r}: expected {b} vector(s) of {e.dim} dimensions; got a list of {len(raw):,} items"
            )
        if isinstance(raw, np.ndarray) and raw.ndim and raw.shape[-1] != e.dim and raw.size != e.dim:
            raise ProfileMismatchError(
                f"embedding {e.name!r}: expected {b} vector(s) of {e.dim} dimensions; got shape {raw.shape}"
            )
        if isinstance(raw, list) and raw and all(v is None or isinstance(v, (list, tuple, np.ndarray)) for v in raw):
            return np.stack([self._vectors(e, v, 1)[0] if v is not None else np.full(e.dim, np.nan) for v in raw])
        try:
            vectors = np.asarray(raw, dtype=np.float64)
        except (TypeError, ValueError):
            return np.full((b, e.dim), np.nan)
        if vectors.ndim == 1:
            vectors = vectors[None, :]
        if vectors.ndim != 2 or vectors.shape != (b, e.dim):
            raise ProfileMismatchError(
                f"embedding {e.name!r}: expected {b} vector(s) of {e.dim} dimensions; got shape {vectors.shape}"
            )
        return vectors


def _object_array(x: Sequence[Any], ndim: int) -> AnyArray:
    """A float array when every value is a number, else an object array (no text coercion)."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        try:
            arr = np.array(x, dtype=object)
        except ValueError:
            raise ProfileMismatchError("rows of the batch have different lengths") from None
        if ndim == 1 and arr.ndim != 1:
            arr = np.empty(len(x), dtype=object)
            for i, v in enumerate(x):
                arr[i] = v
    if arr.ndim != ndim:
        raise ProfileMismatchError(f"expected a {ndim}-D input; got shape {arr.shape}")
    return arr


def _floats(arr: AnyArray) -> FloatArray:
    flat = np.fromiter((to_float(v) for v in arr.ravel().tolist()), dtype=np.float64, count=arr.size)
    return flat.reshape(arr.shape)
