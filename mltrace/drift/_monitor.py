"""DriftMonitor: per-request drift scores and windowed per-feature drift for one model."""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Mapping
from typing import Any

import numpy as np

from .. import semconv
from .._errors import InvalidArgumentError
from .._types import AttrValue
from . import _registry
from ._group import GroupMonitor, WindowState
from ._profile import ReferenceProfile
from ._rows import RowReader
from ._thresholds import DriftThresholds
from ._window import VectorRing

#: ``ml.drift.method`` of a per-request score: reference-quantile tail p-values, Fisher-combined
METHOD = "quantile-tail"
#: what the window tests, in report()["method"]
WINDOW_METHOD = "psi+js+wasserstein"
#: a row scoring at least this is "unusual" (more unusual than 99% of reference rows)
UNUSUAL = 0.99
_F64 = np.dtype(np.float64)


class DriftMonitor:
    """Scores requests against a :class:`ReferenceProfile` and tracks drift over a window.

    ``score(x)`` is cheap (about 7 µs for one feature, 16 µs for 100, window update included)
    and thread-safe: binning and scoring need no lock; adding the request to the window takes a
    short one (the row is written, its count update deferred), and every ``recompute_every``
    updates (or ``recompute_seconds``) the window statistics are recomputed inline. Memory is fixed
    at construction (:attr:`nbytes`). Use one monitor per model.
    """

    def __init__(
        self,
        profile: ReferenceProfile,
        window: int = 1000,
        recompute_every: int = 100,
        recompute_seconds: float | None = None,
        thresholds: DriftThresholds | None = None,
        model: str | None = None,
        *,
        strict: bool = False,
        max_rows: int = 10_000,
    ) -> None:
        if not isinstance(profile, ReferenceProfile):
            raise TypeError(f"profile must be a ReferenceProfile; got {type(profile).__name__}")
        if not isinstance(window, int) or window < 1:
            raise InvalidArgumentError(f"window must be a positive integer; got {window!r}")
        if not isinstance(recompute_every, int) or recompute_every < 1:
            raise InvalidArgumentError(f"recompute_every must be a positive integer; got {recompute_every!r}")
        if recompute_seconds is not None and not recompute_seconds > 0:
            raise InvalidArgumentError(f"recompute_seconds must be positive or None; got {recompute_seconds!r}")
        self.profile = profile
        self.model = model
        self.window = window
        self.recompute_every = recompute_every
        self.recompute_seconds = recompute_seconds
        if not isinstance(max_rows, int) or max_rows < 1:
            raise InvalidArgumentError(f"max_rows must be a positive integer; got {max_rows!r}")
        self.thresholds = thresholds if thresholds is not None else DriftThresholds()
        self.strict = strict
        self.max_rows = max_rows
        self._reader = RowReader(profile.features, profile.embeddings, strict, max_rows)
        self._inputs = GroupMonitor(profile.inputs, self.thresholds, window)
        out_group = profile.output_group
        self._outputs = GroupMonitor(out_group, self.thresholds, window) if out_group is not None else None
        self._out_reader = RowReader(profile.outputs, (), strict, max_rows) if profile.outputs else None
        self._vectors = {e.name: VectorRing(window, e.dim) for e in profile.embeddings}
        #: one float row of this shape takes :meth:`_score_one` (all-numerical inputs, no embeddings)
        self._row_shape = self._reader.row_shape
        self._one_row_path = self._reader.fast
        self._owner = {d: e.name for e in profile.embeddings for d in e.derived_names()}
        self._lock = threading.Lock()
        self._pending = 0
        self._out_pending = 0
        self._last = time.monotonic()
        self._window: tuple[float | None, bool, list[str]] = (None, False, [])
        self._out_window: tuple[float | None, bool, list[str]] = (None, False, [])
        _registry.add(self)

    # -- per request ----------------------------------------------------------------------------

    def score(
        self, x: object, *, update: bool = True, embeddings: Mapping[str, object] | None = None
    ) -> dict[str, Any]:
        """How unusual ``x`` is against the reference, and the window's state.

        ``x`` is a row in feature order, a dict of feature values, a list of records, a 2-D batch or a
        DataFrame; embeddings come as dict entries or ``embeddings={name: vector}``. A batch scores
        as the mean of its rows' scores (so a batch of reference-like rows scores about 0.5, like a
        typical row), with ``max_score`` (its most unusual row), ``unusual_share`` (the share of rows
        scoring at least 0.99) and ``row_scores`` beside it. A batch of more than ``max_rows`` rows
        is scored (and added to the window) as a deterministic strided sample of them
        (``sampled_from`` says how many came). Raises ProfileMismatchError when the shape cannot be
        aligned with the profile, before any per-value work; odd values never raise.
        """
        if type(x) is np.ndarray and x.shape == self._row_shape and x.dtype == _F64 and self._one_row_path:
            return self._score_one(x, update)
        rows = self._reader.read(x, embeddings)
        group = self._inputs
        scores, chi, flat, any_missing = group.score_rows(rows.numeric, rows.categorical)
        n = len(flat)
        raised = False
        if update:
            with self._lock:
                if n == 1:
                    group.ring.push_row(flat[0])
                else:
                    group.ring.push_flat(flat)
                if self._vectors:
                    for name, ring in self._vectors.items():
                        vectors = rows.vectors.get(name)
                        if vectors is not None:
                            ring.push(vectors)
                self._pending += n
                if self._pending >= self.recompute_every or (
                    self.recompute_seconds is not None and self._due(self._pending)
                ):
                    raised = self._recompute()
            if raised:
                _registry.alert_raised(self)
        window_score, alert, window_top = self._window
        result: dict[str, Any] = {
            "score": scores[0] if n == 1 else _batch_score(scores),
            "top_features": group.top_features(chi[0] if n == 1 else chi.mean(axis=0)),
            "reference": self.profile.id,
            "method": METHOD,
            "window_score": window_score,
            "window_top_features": window_top,
            "alert": alert,
            "missing_features": self._missing(rows.absent, group.missing_names(flat)) if any_missing else rows.absent,
            "unseen_categories": group.unseen_names(flat) if group.has_categories else [],
            "rows": n,
        }
        if n > 1 or rows.sampled_from is not None:
            _put_batch(result, scores, rows.sampled_from)
        return result

    def _score_one(self, x: np.ndarray[Any, Any], update: bool) -> dict[str, Any]:
        """:meth:`score` for one float row of an all-numerical profile without embeddings (the
        serving hot path): the same result, with the reader, the batch branches and the 2-D shapes
        left out."""
        group = self._inputs
        score, _, flat, any_missing = group.score_row(x)
        raised = False
        if update:
            with self._lock:
                group.ring.push_row(flat)
                self._pending += 1
                if self._pending >= self.recompute_every or (
                    self.recompute_seconds is not None and self._due(self._pending)
                ):
                    raised = self._recompute()
            if raised:
                _registry.alert_raised(self)
        window_score, alert, window_top = self._window
        return {
            "score": score,
            "top_features": group.top_of_row(flat),
            "reference": self.profile.id,
            "method": METHOD,
            "window_score": window_score,
            "window_top_features": window_top,
            "alert": alert,
            "missing_features": self._missing([], group.missing_names(flat[None])) if any_missing else [],
            "unseen_categories": [],
            "rows": 1,
        }

    @property
    def has_outputs(self) -> bool:
        """Whether the profile describes outputs (built with ``outputs=...``): output drift is optional."""
        return self._outputs is not None

    def observe_output(self, y: object, *, update: bool = True) -> dict[str, Any] | None:
        """Score model outputs against the profile's output distribution and add them to the output window.

        ``y`` is one prediction (a scalar, or a vector when the profile has several outputs), a
        batch of them, or a dict by output name. Output drift is optional: with a profile built
        without ``outputs=`` this does nothing and returns None (a stage decorated with
        ``drift=monitor`` calls it for every output, and must not record a failure each time).
        """
        if self._outputs is None or self._out_reader is None:
            return None
        k = len(self.profile.outputs)
        sampled_from = None
        if not isinstance(y, (Mapping, list, tuple, np.ndarray)) and not hasattr(y, "columns"):
            y = [[y]]
        elif k == 1 and isinstance(y, (list, tuple, np.ndarray)):
            if getattr(y, "ndim", 1) >= 1 and len(y) > self.max_rows:  # cut before converting, as score() does
                sampled_from, y = len(y), y[:: -(-len(y) // self.max_rows)]
            y = np.asarray(y, dtype=object if not _numeric(y) else np.float64).reshape(-1, 1)
        rows = self._out_reader.read(y)
        if sampled_from is not None:
            rows.sampled_from = sampled_from
        group = self._outputs
        scores, chi, flat, _ = group.score_rows(rows.numeric, rows.categorical)
        if update:
            with self._lock:
                group.ring.push_flat(flat)
                self._out_pending += len(flat)
                if self._out_pending >= self.recompute_every:
                    self._out_pending = 0
                    self._out_window = self._summary(group.recompute())
        window_score, alert, top = self._out_window
        result: dict[str, Any] = {
            "score": _batch_score(scores),
            "top_features": group.top_features(chi[0] if len(scores) == 1 else chi.mean(axis=0)),
            "reference": self.profile.id,
            "window_score": window_score,
            "window_top_features": top,
            "alert": alert,
            "rows": len(flat),
        }
        _put_batch(result, scores, rows.sampled_from)
        return result

    def span_attributes(self, result: Mapping[str, Any]) -> dict[str, AttrValue]:
        """A handful of span attributes for a :meth:`score` result (never one per feature)."""
        attrs: dict[str, AttrValue] = {
            semconv.ML_DRIFT_SCORE: float(result["score"]),
            semconv.ML_DRIFT_METHOD: str(result.get("method", METHOD)),
            semconv.ML_DRIFT_REFERENCE: str(result.get("reference", self.profile.id)),
            semconv.ML_DRIFT_ALERT: bool(result.get("alert", False)),
        }
        top = result.get("top_features")
        if top:
            attrs[semconv.ML_DRIFT_TOP_FEATURES] = [str(name) for name in top]
        window_score = result.get("window_score")
        if window_score is not None:
            attrs[semconv.ML_DRIFT_WINDOW_SCORE] = float(window_score)
        window_top = result.get("window_top_features")
        if window_top:
            attrs[semconv.ML_DRIFT_WINDOW_FEATURES] = [str(name) for name in window_top]
        if result.get("max_score") is not None:  # a batch: its worst row and unusual share beside the mean
            attrs[semconv.ML_DRIFT_MAX_SCORE] = float(result["max_score"])
            attrs[semconv.ML_DRIFT_UNUSUAL_SHARE] = float(result["unusual_share"])
            # (no rows attribute: ml.input.n_rows says it, and a duplicate stole slow's first cause)
        return attrs

    # -- the window -----------------------------------------------------------------------------

    def report(self) -> dict[str, Any]:
        """Drift over the current window: per feature PSI, JS, KS, Wasserstein (or chi-square), bands, alerts."""
        with self._lock:
            counts = self._inputs.ring.counts.astype(np.float64)
            n = self._inputs.ring.fill
            seen = self._inputs.ring.seen
            means = {name: ring.mean() for name, ring in self._vectors.items()}
            fills = {name: ring.fill for name, ring in self._vectors.items()}
            out_snapshot = (
                (self._outputs.ring.counts.astype(np.float64), self._outputs.ring.fill) if self._outputs else None
            )
        body = self._inputs.report(counts, n)
        embeddings = {e.name: self._centroid(e.name, means[e.name], fills[e.name]) for e in self.profile.embeddings}
        alert = bool(body["alert"]) or any(e["alert"] for e in embeddings.values())
        score = max([body["score"], *(e["severity"] or 0.0 for e in embeddings.values())])
        report: dict[str, Any] = {
            "alert": alert,
            "score": float(score),
            "n": n,
            "seen": seen,
            "window": self.window,
            "reference": self.profile.id,
            "model": self.model,
            "method": WINDOW_METHOD,
            "top_features": body["top_features"],
            "drifted_share": body["drifted_share"],
            "features": body["features"],
            "embeddings": embeddings,
            "thresholds": self.thresholds.to_dict(),
            "output": None,
        }
        if self._outputs is not None and out_snapshot is not None:
            report["output"] = self._outputs.report(*out_snapshot)
        return report

    def reset(self) -> None:
        """Empty the windows (after a deliberate change, such as a new model or a new reference)."""
        with self._lock:
            self._inputs.ring.clear()
            if self._outputs is not None:
                self._outputs.ring.clear()
            for ring in self._vectors.values():
                ring.clear()
            self._inputs.state = None
            self._window = (None, False, [])
            self._out_window = (None, False, [])
            self._pending = self._out_pending = 0

    @property
    def nbytes(self) -> int:
        """Bytes held by the windows (fixed at construction)."""
        total = self._inputs.ring.nbytes + sum(r.nbytes for r in self._vectors.values())
        return total + (self._outputs.ring.nbytes if self._outputs is not None else 0)

    def __repr__(self) -> str:
        return f"DriftMonitor(reference={self.profile.id!r}, model={self.model!r}, window={self.window})"

    # -- internals ----------------------------------------------------------------------------------

    def _missing(self, absent: list[str], missing: list[str]) -> list[str]:
        """Absent then missing names, an embedding's derived features named by the embedding."""
        return list(dict.fromkeys([*absent, *(self._owner.get(n, n) for n in missing)]))

    def window_state(self) -> tuple[float | None, bool, dict[str, float]]:
        """The cached state of the last window recompute, without recomputing (collecting metrics
        costs the served path nothing): the window score (``None`` before ``min_samples``), whether
        the window is in alert, and each ready input feature's PSI (empty while the score is ``None``)."""
        score, alert, _ = self._window
        state = self._inputs.state
        psi: dict[str, float] = {}
        if score is not None and state is not None:
            names = self._inputs.g.names
            psi = {names[i]: float(state.psi[i]) for i in range(len(names)) if state.ready[i]}
        return score, alert, psi

    def bin_totals(self) -> tuple[np.ndarray[Any, Any], int, tuple[str, ...]]:
        """Every input row's bin counts since construction (:meth:`reset` keeps them), for the bin-count
        metrics: a copy of the flat ``feature * n_codes + code`` totals, taken with the window's
        deferred rows folded in under the lock its writer holds, then ``n_codes`` and the feature names."""
        group = self._inputs
        with self._lock:
            group.ring.fold()
            totals = group.ring.totals.copy()
        return totals, group.g.n_codes, group.g.names

    def _due(self, pending: int) -> bool:
        if pending >= self.recompute_every:
            return True
        return self.recompute_seconds is not None and time.monotonic() - self._last >= self.recompute_seconds

    def _recompute(self) -> bool:
        """Refresh the cached window state (lock held); ``True`` when the window alert just turned on."""
        was_alert = self._window[1]
        self._pending = 0
        self._last = time.monotonic()
        score, alert, top = self._summary(self._inputs.recompute())
        for e in self.profile.embeddings:
            ring = self._vectors[e.name]
            c = self._centroid(e.name, ring.mean(), ring.fill)
            if c["alert"]:
                alert = True
                top = [*top, e.name][:5]
            if c["severity"] is not None:
                score = max(score or 0.0, c["severity"])
        self._window = (score, alert, top)
        return alert and not was_alert

    def _summary(self, state: WindowState) -> tuple[float | None, bool, list[str]]:
        if state.n < self.thresholds.min_samples:
            return None, False, []
        return state.score, state.window_alert, list(state.top)

    def _centroid(self, name: str, mean: np.ndarray[Any, Any] | None, n: int) -> dict[str, Any]:
        e = next(e for e in self.profile.embeddings if e.name == name)
        if mean is None or n == 0 or e.rms_radius <= 0:
            return {"n": n, "centroid_distance": None, "threshold": None, "alert": False, "severity": None}
        distance = float(np.linalg.norm(mean - np.asarray(e.centroid)) / e.rms_radius)
        t = self._inputs.t
        f = 1.0 / n + 1.0 / max(e.count, 1)
        threshold = max(t.centroid or 0.0, t.z_two_sided * math.sqrt(f)) if t.centroid is not None else None
        ready = n >= self.thresholds.min_samples
        ratio = distance / threshold if threshold else 0.0
        return {
            "n": n,
            "centroid_distance": distance,
            "threshold": threshold,
            "alert": bool(ready and ratio >= 1.0),
            "severity": ratio / (1 + ratio) if ready else None,
        }


def _batch_score(scores: list[float]) -> float:
    """One row: its score. A batch: the mean row score. The worst row would saturate: of 100
    reference-like rows the most unusual scores about 0.99 (median 0.999 in the demo's batches),
    so every batch would read as drifted; the mean stays near 0.5 for reference-like batches."""
    return float(scores[0]) if len(scores) == 1 else float(sum(scores) / len(scores))


def _put_batch(result: dict[str, Any], scores: list[float], sampled_from: int | None) -> None:
    if len(scores) > 1:
        result["max_score"] = float(max(scores))
        result["unusual_share"] = sum(1 for s in scores if s >= UNUSUAL) / len(scores)
        result["row_scores"] = scores
    if sampled_from is not None:
        result["sampled_from"] = sampled_from


def _numeric(values: object) -> bool:
    try:
        np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    return True
