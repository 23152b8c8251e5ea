"""Drift monitors as OpenTelemetry metrics: window score and per-feature PSI gauges, an alert counter."""

from __future__ import annotations

import gc
import itertools
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from mltrace import semconv
from mltrace.drift import DriftMonitor, ReferenceProfile
from mltrace.export._metrics import enable_metrics

Points = dict[tuple[str, frozenset[tuple[str, str]]], float]
_names = itertools.count()


@pytest.fixture(scope="module")
def profile() -> ReferenceProfile:
    rng = np.random.default_rng(0)
    return ReferenceProfile.from_data({"age": rng.normal(40, 10, 5000), "income": rng.lognormal(0, 1, 5000)})


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    assert enable_metrics(provider) is True
    yield reader
    provider.shutdown()


def _model() -> str:
    """A model name no other test's monitor has (the registry of live monitors is process-wide)."""
    return f"model-{next(_names)}"


def _points(reader: InMemoryMetricReader, model: str) -> Points:
    out: Points = {}
    data = reader.get_metrics_data()
    for rm in data.resource_metrics if data is not None else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                for p in metric.data.data_points:  # type: ignore[union-attr]
                    attrs = {k: str(v) for k, v in (p.attributes or {}).items()}
                    if metric.name == "mltrace.drift.bin.count":  # tests/drift/test_fleet_drift.py
                        continue
                    if metric.name.startswith("mltrace.drift.") and attrs.get(semconv.ML_MODEL_NAME) == model:
                        out[(metric.name, frozenset(attrs.items()))] = float(p.value)  # type: ignore[union-attr]
    return out


def _rows(rng: np.random.Generator, n: int, shift: float = 0.0) -> np.ndarray:
    return np.c_[rng.normal(40 + shift, 10, n), rng.lognormal(0, 1, n)]


def test_gauges_report_the_window_and_each_feature(reader: InMemoryMetricReader, profile: ReferenceProfile) -> None:
    """Window score and per-feature PSI appear once the window holds min_samples values, labelled."""
    model = _model()
    monitor = DriftMonitor(profile, window=500, model=model)
    rng = np.random.default_rng(1)
    monitor.score(_rows(rng, 50))
    assert _points(reader, model) == {}  # below min_samples (100): nothing to report yet
    for _ in range(4):
        monitor.score(_rows(rng, 100))
    points = _points(reader, model)
    labels = {semconv.ML_MODEL_NAME: model, semconv.ML_DRIFT_REFERENCE: profile.id}
    report = monitor.report()
    score = points[("mltrace.drift.window.score", frozenset(labels.items()))]
    assert score == pytest.approx(report["score"])
    for feature in ("age", "income"):
        key = frozenset({**labels, semconv.ML_DRIFT_FEATURE: feature}.items())
        assert points[("mltrace.drift.feature.psi", key)] == pytest.approx(report["features"][feature]["psi"])
    assert not any(name == "mltrace.drift.alerts" for name, _ in points)  # no alert, no count


def test_alert_counter_counts_each_time_the_alert_turns_on(
    reader: InMemoryMetricReader, profile: ReferenceProfile
) -> None:
    """The counter rises when the window alert turns on, not while it stays on; again after a reset."""
    model = _model()
    monitor = DriftMonitor(profile, window=300, model=model)
    rng = np.random.default_rng(2)
    labels = {semconv.ML_MODEL_NAME: model, semconv.ML_DRIFT_REFERENCE: profile.id}
    key = ("mltrace.drift.alerts", frozenset(labels.items()))
    for _ in range(3):
        assert monitor.score(_rows(rng, 100))["alert"] is False
    for _ in range(5):
        monitor.score(_rows(rng, 100, shift=15.0))
    assert monitor.score(_rows(rng, 1, shift=15.0))["alert"] is True
    assert _points(reader, model)[key] == 1
    monitor.reset()
    for _ in range(3):
        monitor.score(_rows(rng, 100, shift=15.0))
    assert _points(reader, model)[key] == 2


def test_a_dead_monitor_stops_reporting(reader: InMemoryMetricReader, profile: ReferenceProfile) -> None:
    """Monitors are held weakly: once garbage collected, their gauges are gone."""
    model = _model()
    monitor = DriftMonitor(profile, window=200, model=model)
    rng = np.random.default_rng(3)
    for _ in range(2):
        monitor.score(_rows(rng, 100))
    assert any(name == "mltrace.drift.window.score" for name, _ in _points(reader, model))
    del monitor
    gc.collect()
    assert _points(reader, model) == {}


def test_monitors_of_one_model_and_reference_are_one_series(
    reader: InMemoryMetricReader, profile: ReferenceProfile
) -> None:
    """Two monitors with the same labels report the larger window score, not two clashing points."""
    model = _model()
    calm, drifted = DriftMonitor(profile, window=200, model=model), DriftMonitor(profile, window=200, model=model)
    rng = np.random.default_rng(4)
    for _ in range(2):
        calm.score(_rows(rng, 100))
        drifted.score(_rows(rng, 100, shift=15.0))
    scores = [v for (name, _), v in _points(reader, model).items() if name == "mltrace.drift.window.score"]
    assert scores == [pytest.approx(drifted.report()["score"])]
    assert drifted.report()["score"] > calm.report()["score"]


LAZY = """
import gc, json
import numpy as np
from opentelemetry import metrics
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
import mltrace
from mltrace.drift import DriftMonitor, ReferenceProfile

def names():
    data = reader.get_metrics_data()
    return sorted({m.name for rm in data.resource_metrics for sm in rm.scope_metrics for m in sm.metrics
                   if m.name.startswith("mltrace.drift.")})

mltrace.configure(exporter="none")  # MLTRACE_METRICS=true, before any MeterProvider exists
reader = InMemoryMetricReader()
metrics.set_meter_provider(MeterProvider(metric_readers=[reader]))
before = names()
rng = np.random.default_rng(0)
monitor = DriftMonitor(ReferenceProfile.from_data(rng.normal(size=(2000, 3))), window=200, model="m")
for _ in range(3):
    monitor.score(rng.normal(3, 1, size=(100, 3)))
print(json.dumps({"before": before, "after": names()}))
"""


def _python(script: str, tmp_path: Path, **env: str) -> dict[str, Any]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MLTRACE_"))}
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(script)],
        env={**base, **env}, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_registration_is_lazy_and_follows_mltrace_metrics(tmp_path: Path) -> None:
    """``MLTRACE_METRICS=true``: no drift instruments until a monitor exists, then all three."""
    out = _python(LAZY, tmp_path, MLTRACE_METRICS="true")
    assert out["before"] == []
    assert out["after"] == [
        "mltrace.drift.alerts", "mltrace.drift.bin.count", "mltrace.drift.feature.psi", "mltrace.drift.window.score"
    ]


BROKEN = """
import json
import numpy as np
from mltrace.drift import DriftMonitor, ReferenceProfile
from mltrace.export import COUNTERS
from mltrace.export._drift_metrics import watch_drift

class Broken:
    def get_meter(self, *args, **kwargs):
        raise RuntimeError("meter provider down")

watch_drift(Broken())
rng = np.random.default_rng(0)
monitor = DriftMonitor(ReferenceProfile.from_data(rng.normal(size=(2000, 3))), window=200)
result = [monitor.score(rng.normal(3, 1, size=(100, 3)))["alert"] for _ in range(3)]
print(json.dumps({"alerts": result, "errors": COUNTERS.snapshot()["instrumentation_errors"]}))
"""


def test_a_failing_meter_provider_never_reaches_score(tmp_path: Path) -> None:
    """A MeterProvider that raises costs a counted instrumentation error, never a failed score()."""
    out = _python(BROKEN, tmp_path)
    assert out["alerts"][-1] is True
    assert out["errors"] >= 1
