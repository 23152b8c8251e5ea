"""Drift monitors as OpenTelemetry metrics, when metrics are on (``configure(metrics=True)``).

- ``mltrace.drift.window.score``: gauge, each monitor's last window score (``ml.model.name``,
  ``ml.drift.reference``); nothing before the window holds ``min_samples`` values.
- ``mltrace.drift.feature.psi``: gauge, the PSI of each feature in that window (plus ``ml.drift.feature``).
- ``mltrace.drift.alerts``: counter, +1 each time a monitor's window alert turns on.
- ``mltrace.drift.bin.count``: counter, rows seen since the process started per feature and bin
  code (``ml.drift.feature``, ``ml.drift.bin``: the reference profile's bins, so every replica's
  counts add up), with ``mltrace.replica`` (one value per process) so that replicas of one service
  stay separate series. Summed across replicas by Prometheus, they give the fleet's window
  (``mltrace drift --source prometheus://``, :mod:`mltrace.query.prometheus`). Only non-zero bins
  are reported: about features x bins series per replica at most.

Instruments are created on a MeterProvider only once a monitor exists (lazily), once per provider.
The gauges read the monitors' cached window state at collection time through weak references:
collecting costs the served path nothing, and a monitor that is garbage collected stops reporting.
Monitors with the same model and reference report as one series (the larger value).
"""

from __future__ import annotations

import logging
import math
import os
import secrets
import socket
import threading
from collections.abc import Callable, Iterable

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Counter, Observation

from .. import semconv
from .._version import __version__
from ..drift import DriftMonitor, _registry
from ._counters import COUNTERS

_log = logging.getLogger("mltrace.export")

WINDOW_SCORE = "mltrace.drift.window.score"
FEATURE_PSI = "mltrace.drift.feature.psi"
ALERTS = "mltrace.drift.alerts"
BIN_COUNT = "mltrace.drift.bin.count"

Key = tuple[tuple[str, str], ...]


def _attributes(model: str | None, reference: str) -> dict[str, str]:
    attrs = {semconv.ML_DRIFT_REFERENCE: reference}
    if model is not None:
        attrs[semconv.ML_MODEL_NAME] = str(model)
    return attrs


def _guarded(collect: Callable[[], dict[Key, float]]) -> Callable[[CallbackOptions], Iterable[Observation]]:
    def observe(options: CallbackOptions) -> Iterable[Observation]:
        try:
            points = collect()
        except Exception:  # a collection must never fail the reader's other metrics
            COUNTERS.add("instrumentation_errors")
            _log.debug("mltrace: drift metrics collection failed", exc_info=True)
            return []
        return [Observation(value, dict(key)) for key, value in points.items()]

    return observe


def _keep_max(points: dict[Key, float], attrs: dict[str, str], value: float) -> None:
    if not math.isfinite(value):
        return
    key = tuple(sorted(attrs.items()))
    old = points.get(key)
    points[key] = value if old is None else max(old, value)


def _window_scores() -> dict[Key, float]:
    points: dict[Key, float] = {}
    for monitor in _registry.live():
        snap = _registry.snapshot(monitor)
        if snap.window_score is not None:
            _keep_max(points, _attributes(snap.model, snap.reference), snap.window_score)
    return points


def _feature_psi() -> dict[Key, float]:
    points: dict[Key, float] = {}
    for monitor in _registry.live():
        snap = _registry.snapshot(monitor)
        base = _attributes(snap.model, snap.reference)
        for feature, psi in snap.psi.items():
            _keep_max(points, {**base, semconv.ML_DRIFT_FEATURE: feature}, psi)
    return points


_replica: tuple[int, str] = (0, "")


def replica_id() -> str:
    """This process's ``mltrace.replica``: host, pid and a random part (new after a fork or restart)."""
    global _replica
    pid = os.getpid()
    if _replica[0] != pid:
        _replica = (pid, f"{socket.gethostname()}:{pid}:{secrets.token_hex(4)}")
    return _replica[1]


def _bin_counts() -> dict[Key, float]:
    points: dict[Key, float] = {}
    replica = replica_id()
    for monitor in _registry.live():
        totals, n_codes, names = monitor.bin_totals()
        base = {**_attributes(monitor.model, monitor.profile.id), semconv.MLTRACE_REPLICA: replica}
        for flat in totals.nonzero()[0].tolist():
            feature, code = divmod(flat, n_codes)
            attrs = {**base, semconv.ML_DRIFT_FEATURE: names[feature], semconv.ML_DRIFT_BIN: str(code)}
            key = tuple(sorted(attrs.items()))
            points[key] = points.get(key, 0.0) + float(totals[flat])
    return points


class DriftMetrics:
    """The registry's listener: registers instruments on each watched provider when needed."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._providers: list[metrics.MeterProvider] = []
        self._counters: dict[int, Counter] = {}

    def watch(self, provider: metrics.MeterProvider) -> None:
        """Publish drift on ``provider`` too (now if a monitor exists, else when the first is made)."""
        with self._lock:
            if any(p is provider for p in self._providers):
                return
            self._providers.append(provider)
        if _registry.listen(self):
            self._register()

    def monitor_added(self, monitor: DriftMonitor) -> None:
        try:
            self._register()
        except Exception:
            COUNTERS.add("instrumentation_errors")
            _log.debug("mltrace: could not register drift metrics", exc_info=True)

    def alert_raised(self, monitor: DriftMonitor) -> None:
        try:
            attrs = _attributes(monitor.model, monitor.profile.id)
            for counter in list(self._counters.values()):
                counter.add(1, attrs)
        except Exception:  # never into the request that crossed the threshold
            COUNTERS.add("instrumentation_errors")
            _log.debug("mltrace: could not count a drift alert", exc_info=True)

    def _register(self) -> None:
        with self._lock:
            for provider in self._providers:
                if id(provider) in self._counters:
                    continue
                meter = provider.get_meter("mltrace", __version__)
                meter.create_observable_gauge(
                    WINDOW_SCORE, callbacks=[_guarded(_window_scores)], unit="1",
                    description="Drift score of the recent window, 0 to 1 (0.5 = at the alert threshold)",
                )
                meter.create_observable_gauge(
                    FEATURE_PSI, callbacks=[_guarded(_feature_psi)], unit="1",
                    description="Population stability index of each feature over the recent window",
                )
                meter.create_observable_counter(
                    BIN_COUNT, callbacks=[_guarded(_bin_counts)], unit="{row}",
                    description="Rows a drift monitor saw since the process started, per feature and reference bin",
                )
                self._counters[id(provider)] = meter.create_counter(
                    ALERTS, unit="{alert}", description="Times a drift monitor's window alert turned on"
                )


_METRICS = DriftMetrics()


def watch_drift(provider: metrics.MeterProvider) -> None:
    """Publish every drift monitor's state on ``provider`` (called by ``enable_metrics``)."""
    _METRICS.watch(provider)

