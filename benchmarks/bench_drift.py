"""Drift benchmarks: per-request score, window recompute, profile build, memory per monitor.

Run: ``python benchmarks/bench_drift.py [--rows 1000000] [--features 100]``. Prints one table:
per operation the median over repeated blocks of the CPU time this process spent per call (what
the operation costs, less exposed to other processes taking the CPU away), the fastest block (the
best estimate of the undisturbed cost, as timeit's docs advise), the median wall time per call,
the target from the issue and the ratio CPU median / target (below 1 meets it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable

import numpy as np

from mltrace.drift import DriftMonitor, ReferenceProfile


def per_call(fn: Callable[[], object], calls: int, blocks: int) -> tuple[float, float, float]:
    """(median CPU, fastest-block CPU, median wall) seconds per call over ``blocks`` blocks of ``calls``."""
    cpu, wall = [], []
    for _ in range(blocks):
        start_cpu, start_wall = time.process_time(), time.perf_counter()
        for _ in range(calls):
            fn()
        cpu.append((time.process_time() - start_cpu) / calls)
        wall.append((time.perf_counter() - start_wall) / calls)
    return statistics.median(cpu), min(cpu), statistics.median(wall)


def fmt(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:8.2f} s "
    if seconds >= 1e-3:
        return f"{seconds * 1e3:8.2f} ms"
    return f"{seconds * 1e6:8.2f} µs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows for the profile-build timing")
    parser.add_argument("--features", type=int, default=100)
    parser.add_argument("--blocks", type=int, default=30)
    args = parser.parse_args()
    m = args.features
    rng = np.random.default_rng(0)
    rows: list[tuple[str, float, float, float, float | None]] = []  # name, CPU, fastest, wall, target

    train = rng.normal(size=(50_000, m))
    profile = ReferenceProfile.from_data(train)
    monitor = DriftMonitor(profile, window=1000, recompute_every=100)
    live = rng.normal(size=(5000, m))
    for row in live[:2000]:
        monitor.score(row)  # fill the window so that updates evict
    it = iter(range(10**12))

    def score_row() -> object:
        return monitor.score(live[next(it) % 5000])

    def score_only() -> object:
        return monitor.score(live[next(it) % 5000], update=False)

    names = list(profile.feature_names)
    records = [dict(zip(names, r, strict=True)) for r in live[:500].tolist()]

    def score_dict() -> object:
        return monitor.score(records[next(it) % 500])

    cpu, best, wall = per_call(score_row, 1000, args.blocks)
    rows.append((f"score+update, {m} numerical, numpy row (incl. recompute every 100)", cpu, best, wall, 25e-6))
    cpu, best, wall = per_call(score_only, 1000, args.blocks)
    rows.append((f"score only (update=False), {m} numerical", cpu, best, wall, None))
    cpu, best, wall = per_call(score_dict, 1000, args.blocks)
    rows.append((f"score+update, {m} numerical, dict of features", cpu, best, wall, None))

    group = monitor._inputs
    with monitor._lock:
        cpu, best, wall = per_call(group.recompute, 100, args.blocks)
    rows.append((f"window recompute, {m} features (PSI, JS, KS, W1, thresholds)", cpu, best, wall, 200e-6))
    cpu, best, wall = per_call(monitor.report, 5, max(5, args.blocks // 3))
    rows.append((f"report() as dicts, {m} features", cpu, best, wall, None))

    batch = live[:100]
    cpu, best, wall = per_call(lambda: monitor.score(batch), 20, args.blocks)
    rows.append(("score+update, batch of 100 rows (per batch)", cpu, best, wall, None))

    mixed_train = {f"n{j}": rng.normal(size=50_000) for j in range(m - 10)}
    mixed_train |= {f"c{j}": rng.choice(["a", "b", "c", "d", "e"], size=50_000) for j in range(10)}
    mixed = DriftMonitor(ReferenceProfile.from_data(mixed_train), window=1000)
    mixed_records = [{k: v[i] for k, v in mixed_train.items()} for i in range(500)]
    for r in mixed_records:
        mixed.score(r)
    cpu, best, wall = per_call(lambda: mixed.score(mixed_records[next(it) % 500]), 1000, args.blocks)
    rows.append((f"score+update, {m - 10} numerical + 10 categorical, dict", cpu, best, wall, None))

    big = rng.normal(size=(args.rows, m))
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    ReferenceProfile.from_data(big)
    build_cpu, build_wall = time.process_time() - start_cpu, time.perf_counter() - start_wall
    rows.append(
        (
            f"profile build, {args.rows:,} rows x {m} features (edges from 200k sample)",
            build_cpu,
            build_cpu,
            build_wall,
            10.0,
        )
    )
    del big

    print(f"\nmltrace drift benchmarks — {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}\n")
    header = f"{'operation':<74} {'CPU median':>11} {'fastest':>11} {'wall median':>11} {'target':>11} {'ratio':>6}"
    print(header)
    print("-" * len(header))
    for name, cpu, best, wall, target in rows:
        ratio = f"{cpu / target:6.2f}" if target else "     -"
        limit = fmt(target) if target else "-"
        print(f"{name:<74} {fmt(cpu):>11} {fmt(best):>11} {fmt(wall):>11} {limit:>11} {ratio}")
    ring = monitor._inputs.ring
    codes_kib, counts_kib = ring.codes.nbytes / 1024, ring.flat_counts.nbytes / 1024
    profile_kib = len(json.dumps(profile.to_dict())) / 1024
    print(
        f"\nmemory per monitor (window 1000 x {m} features): {monitor.nbytes / 1024:.1f} KiB "
        f"= codes {codes_kib:.1f} KiB ({ring.codes.dtype}) + counts {counts_kib:.1f} KiB; "
        f"profile JSON {profile_kib:.0f} KiB"
    )


if __name__ == "__main__":
    main()
