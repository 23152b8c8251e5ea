"""Detection rates of DriftMonitor: false alarms without drift, detection of each drift scenario.

Run: ``python benchmarks/drift_detection.py [--runs 30]``. A reference of 50,000 rows with 20
numerical features (normal, log-normal, uniform, Student t, integer) and 2 categorical ones is
profiled once. Each run streams fresh data in batches of 100 (one window recompute per batch):

- *no drift*: 20 windows of reference-like data; a false alarm is any alert in the run;
- each drift scenario: one window of drifted data; detected if the window alerts at its end.

The same runs are scored with the default thresholds and without the corrections
(``alpha=0.999``: the window-size floors of PSI and JS fall below the fixed 0.25 / 0.1, the
feature-count correction is gone; only the Wasserstein floor still bites at small windows).
Prints a Markdown table for docs/drift.md.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np
import pandas as pd

from mltrace.drift import DriftMonitor, DriftThresholds, ReferenceProfile

CITIES = ["paris", "lyon", "nice", "lille", "nantes"]
CITY_P = np.array([0.35, 0.25, 0.2, 0.12, 0.08])
DEVICES = ["ios", "android", "web"]
DEVICE_P = np.array([0.4, 0.4, 0.2])

Make = Callable[[np.random.Generator, int, float], pd.DataFrame]


def data(rng: np.random.Generator, n: int) -> pd.DataFrame:
    columns: dict[str, object] = {}
    for j in range(8):
        columns[f"normal{j}"] = rng.normal(size=n)
    for j in range(4):
        columns[f"lognormal{j}"] = rng.lognormal(0, 1, size=n)
    for j in range(3):
        columns[f"uniform{j}"] = rng.random(n)
    for j in range(3):
        columns[f"t{j}"] = rng.standard_t(3, size=n)
    for j in range(2):
        columns[f"count{j}"] = rng.poisson(3, size=n).astype(float)
    columns["city"] = rng.choice(CITIES, size=n, p=CITY_P)
    columns["device"] = rng.choice(DEVICES, size=n, p=DEVICE_P)
    return pd.DataFrame(columns)


def mean_shift(size: float) -> Make:
    def make(rng: np.random.Generator, n: int, progress: float) -> pd.DataFrame:
        frame = data(rng, n)
        frame["normal0"] += size
        return frame

    return make


def variance(factor: float) -> Make:
    def make(rng: np.random.Generator, n: int, progress: float) -> pd.DataFrame:
        frame = data(rng, n)
        frame["normal1"] *= factor
        return frame

    return make


def new_category(share: float) -> Make:
    def make(rng: np.random.Generator, n: int, progress: float) -> pd.DataFrame:
        frame = data(rng, n)
        frame.loc[rng.random(n) < share, "city"] = "marseille"
        return frame

    return make


def category_mix(rng: np.random.Generator, n: int, progress: float) -> pd.DataFrame:
    frame = data(rng, n)
    frame["device"] = rng.choice(DEVICES, size=n, p=[0.3, 0.4, 0.3])
    return frame


def missing(share: float) -> Make:
    def make(rng: np.random.Generator, n: int, progress: float) -> pd.DataFrame:
        frame = data(rng, n)
        frame.loc[rng.random(n) < share, "lognormal0"] = np.nan
        return frame

    return make


def many_small(rng: np.random.Generator, n: int, progress: float) -> pd.DataFrame:
    frame = data(rng, n)
    for j in range(8):
        frame[f"normal{j}"] += 0.15
    return frame


def gradual(rng: np.random.Generator, n: int, progress: float) -> pd.DataFrame:
    frame = data(rng, n)
    frame["normal2"] += progress  # 0 -> 1 std over the run
    return frame


SCENARIOS: list[tuple[str, Make]] = [
    ("mean shift 0.2 std (1 feature)", mean_shift(0.2)),
    ("mean shift 0.5 std (1 feature)", mean_shift(0.5)),
    ("std x1.25 (1 feature)", variance(1.25)),
    ("std x1.5 (1 feature)", variance(1.5)),
    ("new category 5%", new_category(0.05)),
    ("new category 10%", new_category(0.10)),
    ("category mix 40/40/20 -> 30/40/30", category_mix),
    ("missing 20% (1 feature)", missing(0.2)),
    ("mean shift 0.15 std on 8 features", many_small),
]

PEER_ONLY = DriftThresholds(alpha=0.999, warn_alpha=0.999, drift_share=None)


def stream(monitor: DriftMonitor, make: Make, rng: np.random.Generator, rows: int) -> list[bool]:
    alerts = []
    for k in range(rows // 100):
        alerts.append(bool(monitor.score(make(rng, 100, k * 100 / rows))["alert"]))
    return alerts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--windows", type=int, nargs="+", default=[200, 1000])
    args = parser.parse_args()
    started = time.perf_counter()
    profile = ReferenceProfile.from_data(data(np.random.default_rng(0), 50_000))
    settings = {"default": DriftThresholds(), "uncorrected (alpha=0.999)": PEER_ONLY}
    header = "| scenario | window | " + " | ".join(settings) + " |"
    print(header)
    print("|" + "---|" * (2 + len(settings)))
    for window in args.windows:
        cells = []
        for thresholds in settings.values():
            runs_alerting = evaluations = alerting = 0
            for run in range(args.runs):
                monitor = DriftMonitor(profile, window=window, thresholds=thresholds)
                rng = np.random.default_rng(1000 + run)
                alerts = stream(monitor, lambda r, n, p: data(r, n), rng, 20 * window)[window // 100 :]
                runs_alerting += any(alerts)
                evaluations += len(alerts)
                alerting += sum(alerts)
            cells.append(f"{runs_alerting / args.runs:.0%} of runs ({alerting / evaluations:.2%} of recomputes)")
        print(f"| no drift: false alarms in 20 windows | {window} | " + " | ".join(cells) + " |")
        for name, make in SCENARIOS:
            cells = []
            for thresholds in settings.values():
                detected = 0
                for run in range(args.runs):
                    monitor = DriftMonitor(profile, window=window, thresholds=thresholds)
                    detected += stream(monitor, make, np.random.default_rng(2000 + run), window)[-1]
                cells.append(f"{detected / args.runs:.0%}")
            print(f"| {name} | {window} | " + " | ".join(cells) + " |")
        cells = []
        for thresholds in settings.values():
            delays = []
            for run in range(args.runs):
                monitor = DriftMonitor(profile, window=window, thresholds=thresholds)
                alerts = stream(monitor, gradual, np.random.default_rng(3000 + run), 20 * window)
                first = next((i for i, a in enumerate(alerts) if a), None)
                delays.append(np.inf if first is None else (first + 1) * 100 / (20 * window))
            found = [d for d in delays if np.isfinite(d)]
            median = f"{np.median(found):.2f} std" if found else "-"
            cells.append(f"{len(found) / args.runs:.0%}, at shift {median}")
        print(f"| gradual: 0 -> 1 std over 20 windows (1 feature) | {window} | " + " | ".join(cells) + " |")
    print(f"\n{args.runs} runs per cell; {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
