"""The fleet's drift from Prometheus: every replica's bin counts, summed by PromQL, against a profile.

Each replica exports ``mltrace.drift.bin.count`` (:mod:`mltrace.export._drift_metrics`): rows seen
since it started, per feature and reference bin, one series per process (``mltrace.replica``).
The rows a replica saw within ``(now - window, now]`` are its last value in the window minus its
last value before the window (or all of it when the process started within the window); PromQL
sums those over replicas, so the merge is done by Prometheus (or Thanos/Mimir, same query) and is
exact: integer counts, no extrapolation. The window statistics are then computed from the merged
counts exactly as one :class:`~mltrace.drift.DriftMonitor` fed every row would compute them.

```python
from mltrace.query.prometheus import fleet_drift
report = fleet_drift("prometheus://127.0.0.1:9090", "profile.json", service="model", window="1h")
```
"""

from __future__ import annotations

import math
import os
import re
import time
from typing import Any
from urllib.parse import urlsplit

import numpy as np

from .. import semconv
from ..drift import DriftThresholds, ReferenceProfile
from ..drift._group import GroupMonitor
from ..drift._monitor import WINDOW_METHOD
from ._errors import QueryError
from ._http import JsonApi
from ._protocol import parse_duration

METRIC = "mltrace_drift_bin_count_total"  # mltrace.drift.bin.count through Prometheus's OTLP translation


def _label(key: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", key)


FEATURE, BIN, REPLICA = _label(semconv.ML_DRIFT_FEATURE), _label(semconv.ML_DRIFT_BIN), _label(semconv.MLTRACE_REPLICA)
REFERENCE, MODEL = _label(semconv.ML_DRIFT_REFERENCE), _label(semconv.ML_MODEL_NAME)


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _seconds(window: str | float) -> int:
    seconds = parse_duration(window)
    if seconds is None or seconds < 1:
        raise QueryError(f"window must be at least 1s; got {window!r}")
    return math.ceil(seconds)


def bin_count_query(reference: str, service: str | None, window_s: int, model: str | None = None) -> str:
    """The PromQL that merges the replicas' bin counts over the last ``window_s`` seconds."""
    matchers = [f"{REFERENCE}={_quote(reference)}"]
    if service:  # Prometheus's OTLP receiver names the job service.namespace/service.name
        matchers.append(f"job=~{_quote('(.+/)?' + re.escape(service))}")
    if model:
        matchers.append(f"{MODEL}={_quote(model)}")
    sel = f"{METRIC}{{{', '.join(matchers)}}}"
    now = f"last_over_time({sel}[{window_s}s])"
    before = f"last_over_time({sel}[{window_s}s] offset {window_s}s)"
    # per series: rows within the window; a series born inside it (no sample before) counts whole
    return f"sum by ({FEATURE}, {BIN}) (({now} - {before}) or {now})"


def _endpoint(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("prometheus", "http", "https") or not parts.netloc:
        raise QueryError(f"not a Prometheus URL: {url!r} (try prometheus://host:9090)")
    scheme = "https" if parts.scheme == "https" else "http"
    return f"{scheme}://{parts.netloc}{parts.path.rstrip('/')}"


def fleet_counts(
    url: str, profile: ReferenceProfile, *, service: str | None, window: str | float = "1h",
    model: str | None = None, at: float | None = None, timeout: float = 30.0,
) -> tuple[np.ndarray[Any, np.dtype[np.float64]], dict[str, Any]]:
    """The merged ``(features, codes)`` counts of ``profile``'s inputs and what was asked."""
    window_s = _seconds(window)
    query = bin_count_query(profile.id, service, window_s, model)
    api = JsonApi(_endpoint(url), "Prometheus", timeout=timeout)
    when = time.time() if at is None else at
    try:
        body = api.get("/api/v1/query", {"query": query, "time": f"{when:.3f}"})
        replicas = api.get("/api/v1/query", {
            "query": f"count(count by ({REPLICA}) (last_over_time({METRIC}{{{REFERENCE}={_quote(profile.id)}"
            + (f", job=~{_quote('(.+/)?' + re.escape(service))}" if service else "") + f"}}[{window_s}s])))",
            "time": f"{when:.3f}",
        })
    finally:
        api.close()
    if body.get("status") != "success":
        raise QueryError(f"Prometheus refused the query: {body.get('error', body)}")
    group = profile.inputs
    index = {name: i for i, name in enumerate(group.names)}
    counts = np.zeros((group.m, group.n_codes), dtype=np.float64)
    unknown: set[str] = set()
    for item in body["data"]["result"]:
        metric = item["metric"]
        i = index.get(metric.get(FEATURE, ""))
        code = int(metric.get(BIN, "-1"))
        if i is None or not 0 <= code < group.n_codes:
            unknown.add(f"{metric.get(FEATURE)}[{metric.get(BIN)}]")
            continue
        counts[i, code] = round(float(item["value"][1]))
    rows = replicas.get("data", {}).get("result", [])
    meta = {
        "query": query,
        "time": when,
        "window_s": window_s,
        "replicas": int(float(rows[0]["value"][1])) if rows else 0,
        "unknown_bins": sorted(unknown),
    }
    return counts, meta


def window_report(
    profile: ReferenceProfile, counts: np.ndarray[Any, Any], thresholds: DriftThresholds | None = None
) -> dict[str, Any]:
    """The window report (:meth:`DriftMonitor.report`'s feature part) from merged bin counts."""
    group = GroupMonitor(profile.inputs, thresholds if thresholds is not None else DriftThresholds(), 1)
    n = int(counts[0].sum()) if len(counts) else 0  # every row has one code per feature
    body = group.report(counts, n)
    return {
        "alert": bool(body["alert"]),
        "score": float(body["score"]),
        "n": n,
        "reference": profile.id,
        "method": WINDOW_METHOD,
        "top_features": body["top_features"],
        "drifted_share": body["drifted_share"],
        "features": body["features"],
        "thresholds": group.t.settings.to_dict(),
    }


def fleet_drift(
    url: str,
    profile: ReferenceProfile | str | os.PathLike[str],
    *,
    service: str | None = None,
    window: str | float = "1h",
    model: str | None = None,
    thresholds: DriftThresholds | None = None,
    at: float | None = None,
) -> dict[str, Any]:
    """Per-feature PSI, JS, KS, Wasserstein, bands and alert of the whole fleet over ``window``.

    ``service`` restricts to one service's replicas (Prometheus's ``job``), ``model`` to one
    ``ml.model.name``. Returns :func:`window_report` plus ``source``, ``service``, ``window``,
    ``replicas`` (processes that reported in the window), ``query`` (the PromQL) and ``profile``.
    Embedding centroids and per-request scores are not merged: they stay per replica.
    """
    if not isinstance(profile, ReferenceProfile):
        profile = ReferenceProfile.load(profile)
    counts, meta = fleet_counts(url, profile, service=service, window=window, model=model, at=at)
    report = window_report(profile, counts, thresholds)
    return {
        **report,
        "source": url,
        "service": service,
        "window": window,
        "replicas": meta["replicas"],
        "query": meta["query"],
        "generated_us": int(meta["time"] * 1e6),
        "unknown_bins": meta["unknown_bins"],
        "profile": {"id": profile.id, "rows": profile.rows, "description": profile.meta.get("description")},
    }
