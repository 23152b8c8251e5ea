"""``drift_report``: a batch of recent data (a file or columns) against a reference, offline.

The rows go through a :class:`DriftMonitor` whose window holds them all (or the last ``window``),
so the report is exactly what a serving monitor would say after seeing them.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from ._errors import ProfileMismatchError
from ._features import CategoricalFeature
from ._inputs import as_float_column, columns_of
from ._monitor import DriftMonitor
from ._profile import ReferenceProfile
from ._thresholds import DriftThresholds

CHUNK = 20_000

Data = str | os.PathLike[str] | Mapping[str, Any] | Any


def _columns(data: Data) -> tuple[dict[str, Any], str]:
    if isinstance(data, str | os.PathLike):
        from ._files import read_table

        path = Path(data)
        return read_table(path), path.name
    names, cols = columns_of(data)
    return dict(zip(names, cols, strict=True)), type(data).__name__


def _batch(profile: ReferenceProfile, columns: Mapping[str, Any], names: tuple[str, ...], n: int) -> Any:
    """The features in profile order: a float array when all are numerical, else a DataFrame (or objects)."""
    numeric = [not isinstance(profile.feature(name), CategoricalFeature) for name in names]
    if all(numeric):
        return np.column_stack([as_float_column(np.asarray(columns[name])) for name in names]) if names else None
    try:
        import pandas as pd
    except ImportError:
        batch = np.empty((n, len(names)), dtype=object)
        for j, name in enumerate(names):
            batch[:, j] = np.asarray(columns[name], dtype=object)
        return batch
    return pd.DataFrame({name: columns[name] for name in names})


def _rows(batch: Any, start: int, stop: int) -> Any:
    return batch.iloc[start:stop] if hasattr(batch, "iloc") else batch[start:stop]


def drift_report(
    profile: ReferenceProfile | str | os.PathLike[str],
    data: Data,
    *,
    window: int | None = None,
    thresholds: DriftThresholds | None = None,
) -> dict[str, Any]:
    """Drift of ``data`` (a CSV/Parquet path, a DataFrame or a dict of columns) against ``profile``.

    Returns :meth:`DriftMonitor.report` over the rows (the last ``window`` of them; default all),
    plus ``profile`` (id, rows, description), ``data``, ``rows``, ``row_score`` (percentiles of
    the per-row drift scores, and ``unusual_share``: rows scoring at least 0.99) and
    ``ignored_columns``. When the data holds the profile's output columns
    (``from_file(target=...)``), ``output`` reports their drift too. Raises
    :class:`ProfileMismatchError` naming the features the data lacks.
    """
    if not isinstance(profile, ReferenceProfile):
        profile = ReferenceProfile.load(profile)
    columns, label = _columns(data)
    names = profile.feature_names
    missing = [name for name in names if name not in columns]
    if missing:
        raise ProfileMismatchError(
            f"{label} lacks {len(missing)} of the reference's features: {missing[:10]}"
            f"{' ...' if len(missing) > 10 else ''}; its columns: {list(columns)[:10]}"
        )
    if profile.embeddings:
        raise ProfileMismatchError(f"reference {profile.id} has embeddings; tabular files cannot carry them")
    n = len(next(iter(columns.values()))) if columns else 0
    if n == 0:
        raise ProfileMismatchError(f"{label} has no rows")
    size = min(window or n, n)
    monitor = DriftMonitor(profile, window=size, recompute_every=max(size, 1), thresholds=thresholds)
    batch = _batch(profile, columns, names, n)
    outputs = [name for name in profile.output_names if name in columns]
    out_batch = None
    if outputs and len(outputs) == len(profile.outputs):
        out_batch = np.column_stack([np.asarray(columns[o]) for o in outputs])
    scores: list[float] = []
    for start in range(max(0, n - size), n, CHUNK):
        stop = min(n, start + CHUNK)
        result = monitor.score(_rows(batch, start, stop))
        scores.extend(result.get("row_scores", [result["score"]]))
        if out_batch is not None:
            chunk = out_batch[start:stop]
            monitor.observe_output(chunk[:, 0] if chunk.shape[1] == 1 else chunk)
    report = monitor.report()
    arr = np.asarray(scores, dtype=np.float64)
    ignored = [c for c in columns if c not in set(names) and c not in set(outputs)]
    return {
        **report,
        "data": str(data) if isinstance(data, str | os.PathLike) else label,
        "rows": n,
        "profile": {"id": profile.id, "rows": profile.rows, "description": profile.meta.get("description")},
        "row_score": {
            "p50": float(np.percentile(arr, 50)),
            "p95": float(np.percentile(arr, 95)),
            "max": float(arr.max()),
            "unusual_share": float((arr >= 0.99).mean()),
        },
        "ignored_columns": ignored,
    }
