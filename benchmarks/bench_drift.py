"""Drift benchmarks: per-request score, window recompute, profile build, memory per monitor.

Run: ``python benchmarks/bench_drift.py [--rows 1000000] [--features 100]``. Prints two tables.

First, before / after issue 13's hot-path rework, side by side in one run: the drift package at
commit ``1574da6`` is loaded from git (tests/_drift_before.py) beside today's, both monitors get
the same profile and traffic, and their blocks alternate. For 1, 10 and 100 numerical features:
score + window update per request (recompute every 100 included, amortized), the same without
recomputes, score only; for 100 features the window recompute right after 100 requests (today's
includes folding the deferred counts) and a batch of 100 rows. ``--before COMMIT`` compares with
the package at another commit instead (e.g. the previous step of the work).

Then where one request's time goes at 100 features (each step of the one-row path timed alone over
the same distinct rows; ``--breakdown-only`` prints just this).

Then today's code alone: per operation the median over repeated blocks of the CPU time this
process spent per call (what the operation costs, less exposed to other processes taking the CPU
away), the fastest block (the best estimate of the undisturbed cost, as timeit's docs advise), the
median wall time per call, the target from the issue and the ratio CPU median / target (below 1
meets it).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mltrace.drift import DriftMonitor, ReferenceProfile

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
import _drift_before  # the drift package before the rework (or at --before COMMIT)


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


def side_by_side(fns: dict[str, Callable[[], object]], calls: int, blocks: int) -> dict[str, list[float]]:
    """CPU seconds per call of each function, per block; the functions' blocks alternate (order
    rotated every block) so that both see the same load."""
    out: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for b in range(blocks):
        for name in names[b % len(names) :] + names[: b % len(names)]:
            fn = fns[name]
            start = time.process_time()
            for _ in range(calls):
                fn()
            out[name].append((time.process_time() - start) / calls)
    return out


Timings = list[float]
Row = tuple[str, Timings, Timings, float | None]


def _scorer(monitor: Any, live: np.ndarray, update: bool = True) -> Callable[[], object]:
    """Scores the next row of ``live`` (distinct rows: a repeated one trains the branch predictor
    of the bins' binary search and reads 3 µs faster)."""
    it = iter(range(10**12))
    return lambda: monitor.score(live[next(it) % len(live)], update=update)


def _recompute_after_traffic(monitor: Any, live: np.ndarray, took: Timings) -> Callable[[], object]:
    """100 requests without recomputing, then one recompute, timed alone into ``took``: the
    recompute as it happens in serving (its tables out of cache, deferred counts to fold)."""

    def run() -> None:
        monitor._pending = -(10**9)
        for row in live[:100]:
            monitor.score(row)
        start = time.process_time()
        with monitor._lock:
            monitor._inputs.recompute()
        took.append(time.process_time() - start)

    return run


def before_after(m: int, blocks: int, old: Any) -> list[Row]:
    """(operation, before CPU per block, after CPU per block, target) for ``m`` features."""
    rng = np.random.default_rng(m)
    profile = ReferenceProfile.from_data(rng.normal(size=(50_000, m)))
    old_profile = old.ReferenceProfile.from_dict(profile.to_dict())
    live = rng.normal(size=(5000, m))
    out: list[Row] = []
    for every in (100, 10**9):
        monitors = {
            "before": old.DriftMonitor(old_profile, window=1000, recompute_every=every),
            "after": DriftMonitor(profile, window=1000, recompute_every=every),
        }
        for monitor in monitors.values():
            for row in live[:2000]:
                monitor.score(row)  # a full window: every update evicts
        r = side_by_side({k: _scorer(v, live) for k, v in monitors.items()}, 1000, blocks)
        if every > 100:
            out.append((f"score+update, no recompute, {m} features", r["before"], r["after"], None))
            continue
        target = 15e-6 if m == 100 else None
        out.append((f"score+update (recompute every 100), {m} features", r["before"], r["after"], target))
        r = side_by_side({k: _scorer(v, live, update=False) for k, v in monitors.items()}, 1000, blocks)
        out.append((f"score only (update=False), {m} features", r["before"], r["after"], None))
        if m != 100:
            continue
        took: dict[str, Timings] = {k: [] for k in monitors}
        side_by_side({k: _recompute_after_traffic(v, live, took[k]) for k, v in monitors.items()}, 10, blocks)
        per = {k: [statistics.median(t[i : i + 10]) for i in range(0, len(t), 10)] for k, t in took.items()}
        out.append(("window recompute after 100 requests (folds deferred counts)", per["before"], per["after"], 200e-6))
        hot = {k: v._inputs.recompute for k, v in monitors.items()}
        r = side_by_side(hot, 100, blocks)
        out.append(("window recompute, repeated (tables in cache)", r["before"], r["after"], 200e-6))
        batch = live[:100]
        r = side_by_side({k: (lambda v=v, batch=batch: v.score(batch)) for k, v in monitors.items()}, 20, blocks)
        out.append(("score+update, batch of 100 rows (per batch)", r["before"], r["after"], None))
    return out


def print_before_after(blocks: int, old: Any) -> None:
    print(f"\nbefore ({_drift_before.BEFORE}) / after, side by side in one run: CPU µs per call, median and fastest")
    print(f"of {blocks} alternating blocks; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs\n")
    head = f"{'operation':<62} {'before':>8} {'fastest':>8} {'after':>8} {'fastest':>8} {'ratio':>6} {'target':>7}"
    print(head)
    print("-" * len(head))
    for features in (1, 10, 100):
        for name, before, after, target in before_after(features, blocks, old):
            bm, bf, am, af = statistics.median(before), min(before), statistics.median(after), min(after)
            limit = f"{target * 1e6:.0f}" if target else "-"
            print(
                f"{name:<62} {bm * 1e6:8.2f} {bf * 1e6:8.2f} {am * 1e6:8.2f} {af * 1e6:8.2f} {am / bm:6.2f} {limit:>7}"
            )


def breakdown(blocks: int, m: int = 100) -> None:
    """Where one request's CPU time goes (score + update, 100 features, distinct rows): each step of
    :meth:`DriftMonitor._score_one` timed alone over the same 5,000 rows, in alternating blocks,
    and the whole call beside them; the rest (Python calls, the lock, the result dict, the cache
    misses after a recompute) is the whole less the sum."""
    from mltrace.drift._binning import clip_ufunc

    rng = np.random.default_rng(m)
    profile = ReferenceProfile.from_data(rng.normal(size=(50_000, m)))
    monitor = DriftMonitor(profile, window=1000, recompute_every=100)
    live = rng.normal(size=(5000, m))
    for row in live[:2000]:
        monitor.score(row)
    group = monitor._inputs
    b = group.g.binner
    keys = [(row * b.inv + b.shift).clip(b.lower, b.upper) for row in live]
    flats = [b.keys.searchsorted(u, side="right") for u in keys]
    ring = group.ring
    it = iter(range(10**12))

    def nxt() -> int:
        return next(it) % 5000

    def map_clip() -> object:
        u = live[nxt()] * b.inv
        u += b.shift
        return clip_ufunc(u, b.lower, b.upper, out=u)

    def lookup_score() -> object:
        chi = group._chi.take(flats[nxt()])
        return 1.0 - _fisher(float(np.add.reduce(chi, None)), m)

    def ring_write() -> None:
        with monitor._lock:
            ring.push_row(flats[nxt()])
            monitor._pending += 1

    steps: dict[str, Callable[[], object]] = {
        "whole score(row) (score + update, recompute every 100)": lambda: monitor.score(live[nxt()]),
        "affine map and clip (3 ufunc calls)": map_clip,
        "searchsorted over the padded keys (uint64 bit patterns)": lambda: b.key_bits.searchsorted(
            keys[nxt()].view(np.uint64), side="right"
        ),
        "contribution lookup, sum, Fisher score": lookup_score,
        "top features (order keys of the row, sort those past p < 0.1)": lambda: group.top_of_row(flats[nxt()]),
        "lock, ring write, pending count (folds every 64 included)": ring_write,
    }
    r = side_by_side(steps, 1000, blocks)
    took: list[float] = []
    side_by_side({"recompute": _recompute_after_traffic(monitor, live, took)}, 10, max(3, blocks // 2))
    recompute = statistics.median(took) / monitor.recompute_every
    print(f"\nwhere one request's time goes, {m} features (CPU µs per call: median, fastest of {blocks} blocks)\n")
    whole = statistics.median(r[next(iter(steps))])
    parts = 0.0
    for name, t in r.items():
        med = statistics.median(t)
        if not name.startswith("whole"):
            parts += med
        print(f"  {name:<62} {med * 1e6:6.2f} {min(t) * 1e6:6.2f}")
    parts += recompute
    print(f"  {'window recompute after 100 requests, per request':<62} {recompute * 1e6:6.2f}")
    print(f"  {'the rest (Python calls, result dict, cache misses)':<62} {(whole - parts) * 1e6:6.2f}")


def latency_distribution(rounds: int = 5) -> None:
    """Per-request latency of ``score(row)`` (score + update, recompute every 100 included), each
    call timed on its own (wall ``perf_counter_ns``) over 5,000 distinct rows, for 1, 10 and 100
    features: p50 shows the ordinary request, p99 the one request in 100 that recomputes the window."""
    print(f"\nper-request latency of score(row), each call timed alone (wall µs; 5,000 distinct rows x {rounds})\n")
    print(f"  {'features':>8} {'p50':>8} {'p90':>8} {'p99':>8} {'p99.9':>8} {'max':>9}")
    clock = time.perf_counter_ns
    for m in (1, 10, 100):
        rng = np.random.default_rng(m)
        monitor = DriftMonitor(ReferenceProfile.from_data(rng.normal(size=(50_000, m))), window=1000)
        live = list(rng.normal(size=(5000, m)))
        for row in live[:2000]:
            monitor.score(row)
        score = monitor.score
        took = []
        for _ in range(rounds):
            for row in live:
                start = clock()
                score(row)
                took.append(clock() - start)
        q = np.percentile(np.asarray(took, dtype=np.float64) / 1e3, [50, 90, 99, 99.9, 100])
        print(f"  {m:>8} {q[0]:8.1f} {q[1]:8.1f} {q[2]:8.1f} {q[3]:8.1f} {q[4]:9.1f}")


def _fisher(total: float, m: int) -> float:
    from mltrace.drift._divergence import fisher_sf_scalar

    return fisher_sf_scalar(total, m)


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
    parser.add_argument("--no-before", action="store_true", help="skip the before/after table")
    parser.add_argument(
        "--before", metavar="COMMIT", help=f"compare with mltrace/drift at this commit (default {_drift_before.BEFORE})"
    )
    parser.add_argument("--breakdown-only", action="store_true", help="only where one request's time goes")
    args = parser.parse_args()
    m = args.features
    if args.before:  # e.g. the previous step of the work, beside today's
        _drift_before.BEFORE, _drift_before.NAME = args.before, f"mltrace._drift_at_{args.before}"
    old = None if args.no_before or args.breakdown_only else _drift_before.load_before()
    if old is not None:
        print_before_after(args.blocks, old)
    breakdown(args.blocks)
    if args.breakdown_only:
        return
    latency_distribution()
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
    rows.append((f"score+update, {m} numerical, numpy row (incl. recompute every 100)", cpu, best, wall, 15e-6))
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
    evicted_kib = ring._evicted.nbytes / 1024
    profile_kib = len(json.dumps(profile.to_dict())) / 1024
    print(
        f"\nmemory per monitor (window 1000 x {m} features): {monitor.nbytes / 1024:.1f} KiB "
        f"= codes {codes_kib:.1f} KiB ({ring.codes.dtype}) + counts {counts_kib:.1f} KiB "
        f"+ rows copied aside for the next count update {evicted_kib:.1f} KiB; "
        f"profile JSON {profile_kib:.0f} KiB"
    )


if __name__ == "__main__":
    main()
