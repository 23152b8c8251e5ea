"""Drift merged across replicas: bin counts add up to exactly what one monitor fed every row sees."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from mltrace import semconv
from mltrace.drift import DriftMonitor, ReferenceProfile
from mltrace.drift._window import CodeRing
from mltrace.export._drift_metrics import BIN_COUNT, replica_id
from mltrace.export._metrics import enable_metrics
from mltrace.query.prometheus import bin_count_query, window_report

N = 3_000


def _profile() -> ReferenceProfile:
    rng = np.random.default_rng(7)
    return ReferenceProfile.from_data(
        {
            "age": rng.normal(40, 10, 4000),
            "income": rng.lognormal(0, 1, 4000),
            "score": rng.uniform(0, 1, 4000),
            "plan": rng.choice(["basic", "pro", "team"], 4000, p=[0.6, 0.3, 0.1]),
        },
        categorical=["plan"],
    )


def _rows(n: int, seed: int = 11) -> list[dict[str, object]]:
    """Served rows: ``income`` drifted upward, the rest as in the reference, some values missing."""
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 10, n)
    age[::97] = np.nan
    income = rng.lognormal(0.6, 1, n)
    score = rng.uniform(0, 1, n)
    plan = rng.choice(["basic", "pro", "team", "enterprise"], n, p=[0.6, 0.29, 0.1, 0.01])
    return [{"age": a, "income": i, "score": s, "plan": p} for a, i, s, p in zip(age, income, score, plan, strict=True)]


def _totals(monitor: DriftMonitor) -> np.ndarray:
    ring = monitor._inputs.ring
    ring.fold()
    return ring.totals.reshape(ring.m, ring.n_codes).astype(np.float64)


def test_three_replicas_merge_to_the_single_monitor_exactly() -> None:
    """Rows split over 3 replicas (small windows, single rows and batches): summed bin counts equal
    the counts of one monitor fed all rows; every statistic agrees within 1e-9."""
    profile = _profile()
    rows = _rows(N)
    single = DriftMonitor(profile, window=N)
    for start in range(0, N, 500):
        single.score(rows[start : start + 500])
    replicas = [DriftMonitor(profile, window=w, recompute_every=50) for w in (100, 257, 1000)]
    for i, row in enumerate(rows):
        target = replicas[i % 3]
        if i % 7 == 0:
            target.score(row)
        else:
            target.score([row])
    replicas[2].score(rows[:0] or [rows[0]], update=False)  # scoring without update adds nothing
    merged = sum(_totals(r) for r in replicas)
    expected = single._inputs.ring.counts.astype(np.float64)
    assert np.array_equal(merged, expected)
    fleet = window_report(profile, merged)
    alone = single.report()
    assert fleet["n"] == alone["n"] == N
    assert fleet["alert"] == alone["alert"] and fleet["top_features"] == alone["top_features"]
    assert "income" in fleet["top_features"] and "score" not in fleet["top_features"]
    for name, entry in alone["features"].items():
        for key, value in entry.items():
            got = fleet["features"][name][key]
            if isinstance(value, float):
                assert got == pytest.approx(value, abs=1e-9, rel=1e-9), (name, key)
            elif isinstance(value, dict):
                for k, v in value.items():
                    assert got[k] == pytest.approx(v, abs=1e-9), (name, key, k)
            else:
                assert got == value, (name, key)


def test_ring_totals_survive_eviction_big_batches_and_reset() -> None:
    """Cumulative totals count every row once, whatever the window evicted or reset() cleared."""
    ring = CodeRing(10, 2, 4, np.uint8)
    rng = np.random.default_rng(3)
    pushed = np.zeros(8, dtype=np.int64)
    for step in range(200):
        b = int(rng.choice([1, 3, 9, 10, 25]))
        rows = rng.integers(0, 4, size=(b, 2))
        if b == 1:
            ring.push_one(rows[0], rows[0] + ring.offsets)
        else:
            ring.push(rows)
        pushed += np.bincount((rows + ring.offsets).ravel(), minlength=8)
        if step % 37 == 0:
            ring.clear()
        if step % 11 == 0:
            ring.fold()
            assert np.array_equal(ring.totals, pushed)
    ring.fold()
    assert np.array_equal(ring.totals, pushed)


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    enable_metrics(provider)
    yield reader
    provider.shutdown()


def test_bin_counts_are_exported_per_replica(reader: InMemoryMetricReader) -> None:
    """``mltrace.drift.bin.count`` carries the reference bins, the feature and this process's replica id."""
    profile = _profile()
    monitor = DriftMonitor(profile, window=50, model="fleet-test")
    rows = _rows(400)
    for row in rows:
        monitor.score(row)
    data = reader.get_metrics_data()
    points = [
        p
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == BIN_COUNT
        for p in m.data.data_points  # type: ignore[union-attr]
        if (p.attributes or {}).get(semconv.ML_MODEL_NAME) == "fleet-test"
    ]
    assert {p.attributes[semconv.MLTRACE_REPLICA] for p in points} == {replica_id()}  # type: ignore[index]
    by_feature: dict[str, float] = {}
    for p in points:
        name = str(p.attributes[semconv.ML_DRIFT_FEATURE])  # type: ignore[index]
        by_feature[name] = by_feature.get(name, 0.0) + float(p.value)  # type: ignore[union-attr]
    assert by_feature == {"age": 400.0, "income": 400.0, "score": 400.0, "plan": 400.0}


def test_the_query_subtracts_per_replica_before_summing() -> None:
    """The PromQL takes each series' rows within the window (or all of a series born inside it)."""
    q = bin_count_query("abc", "model", 3600)
    assert q.startswith("sum by (ml_drift_feature, ml_drift_bin) ((last_over_time(")
    assert "offset 3600s" in q and ") or last_over_time(" in q
    assert 'job=~"(.+/)?model"' in q and 'ml_drift_reference="abc"' in q
