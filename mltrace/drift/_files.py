"""Reading CSV and Parquet training files into columns (pandas when present, else the stdlib)."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np

from .._errors import InputDataError
from ._features import to_float


def read_table(path: Path) -> dict[str, Any]:
    """Columns of a ``.csv`` (or ``.csv.gz``/``.tsv``) or ``.parquet`` file, by name."""
    name = path.name.lower()
    if name.endswith((".parquet", ".pq")):
        return _read_parquet(path)
    if name.endswith((".csv", ".csv.gz", ".tsv", ".txt")):
        try:
            import pandas as pd
        except ImportError:
            return _read_csv_stdlib(path)
        frame = pd.read_csv(path, sep="\t" if name.endswith(".tsv") else ",")
        return {str(c): frame[c].to_numpy() for c in frame.columns}
    raise InputDataError(f"{path}: unknown file type; expected .csv, .tsv or .parquet")


def _read_parquet(path: Path) -> dict[str, Any]:
    try:
        import pandas as pd
        import pyarrow  # noqa: F401  (pandas needs it to read Parquet)
    except ImportError as exc:
        raise ImportError(
            f"reading Parquet needs pandas and pyarrow ({exc.name} is missing): pip install 'mltrace-serving[parquet]'"
        ) from exc
    frame = pd.read_parquet(path)
    return {str(c): frame[c].to_numpy() for c in frame.columns}


def _read_csv_stdlib(path: Path) -> dict[str, Any]:
    delimiter = "\t" if path.name.lower().endswith(".tsv") else ","
    import gzip

    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        header = next(reader, None)
        if header is None:
            raise InputDataError(f"{path}: empty file")
        raw: list[list[str]] = [[] for _ in header]
        for row in reader:
            for j in range(len(header)):
                raw[j].append(row[j] if j < len(row) else "")
    columns: dict[str, Any] = {}
    for name, values in zip(header, raw, strict=True):
        present = [v for v in values if v.strip() != ""]
        numbers = [to_float(v) for v in present]
        if present and all(n == n for n in numbers):
            columns[name] = np.array([to_float(v) if v.strip() else np.nan for v in values], dtype=np.float64)
        else:
            column = np.empty(len(values), dtype=object)
            column[:] = [v if v.strip() != "" else None for v in values]
            columns[name] = column
    return columns
