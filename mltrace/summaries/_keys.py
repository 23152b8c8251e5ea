"""The keys a summary can hold, defined once; the caller prefixes them (``ml.input.``, ``ml.output.``).

Flags (``sampled``, ``fingerprint_sampled``, ``features_truncated``) appear only when true.
"""

from __future__ import annotations

from typing import Final

# -- what it is ----------------------------------------------------------------------------------
KIND: Final = "kind"  # ndarray | list | tuple | scalar | dict | records | dataframe | series | pydantic |
#                       dataclass | tensor | str | bytes | none | set | mapping | object
TYPE: Final = "type"  # class name of a pydantic model, dataclass or other object (never its repr)
ERROR: Final = "error"  # exception type name when summarising failed; only ``kind`` comes with it
DTYPE: Final = "dtype"  # numpy/torch/pandas dtype as text, or the Python type of a scalar
ITEM_TYPE: Final = "item_type"  # element type of a non-numeric list ("str", "mixed", ...)
DEVICE: Final = "device"  # torch tensors only

# -- how big -------------------------------------------------------------------------------------
SHAPE: Final = "shape"  # list[int], at most 16 dimensions
SIZE: Final = "size"  # element count (arrays, tensors, numeric lists) or byte count (bytes)
LENGTH: Final = "length"  # len() of a str, list, tuple, set or mapping

# -- numeric statistics over finite values (omitted when there are none) -------------------------
VALUE: Final = "value"  # a numeric or bool scalar
NAN_COUNT: Final = "nan_count"  # NaN (NaT for datetimes) count
INF_COUNT: Final = "inf_count"
MIN: Final = "min"
MAX: Final = "max"
MEAN: Final = "mean"
STD: Final = "std"  # population standard deviation
SAMPLED: Final = "sampled"  # statistics came from a deterministic strided subsample
SAMPLE_SIZE: Final = "sample_size"  # elements (or rows) in that subsample

# -- identity ------------------------------------------------------------------------------------
FINGERPRINT: Final = "fingerprint"  # 16 hex chars; equal content gives an equal fingerprint
FINGERPRINT_SAMPLED: Final = "fingerprint_sampled"  # the hash covers a deterministic part of the content

# -- tabular -------------------------------------------------------------------------------------
N_ROWS: Final = "n_rows"
N_FEATURES: Final = "n_features"
FEATURES_TRUNCATED: Final = "features_truncated"  # more features than max_features; the first ones kept
FEATURE_PREFIX: Final = "feature."
# Per feature, under ``feature.<name>``: the value itself (one row, numeric or bool), or
# ``.mean`` ``.min`` ``.max`` ``.nan_count`` (many rows, or a numeric list/array value; nan_count
# then counts entries with no finite value: NaN, ±inf, None or absent), ``.size`` (a numeric
# list/array value), ``.length`` (str, bytes or other container value), ``.type`` (anything else;
# for non-numeric columns, the column's type).
FEATURE_STATS: Final = ("mean", "min", "max", "nan_count", "size", "length", "type")

TOP_LEVEL: Final = frozenset(
    {
        KIND, TYPE, ERROR, DTYPE, ITEM_TYPE, DEVICE, SHAPE, SIZE, LENGTH, VALUE, NAN_COUNT, INF_COUNT,
        MIN, MAX, MEAN, STD, SAMPLED, SAMPLE_SIZE, FINGERPRINT, FINGERPRINT_SAMPLED, N_ROWS,
        N_FEATURES, FEATURES_TRUNCATED,
    }
)  # fmt: skip
