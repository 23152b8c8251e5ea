"""One window's drift computation: mltrace's DriftMonitor against Evidently's DataDriftPreset.

    python -m venv /tmp/evvenv && /tmp/evvenv/bin/pip install "evidently==0.7.*" "pandas<3"
    python benchmarks/bench_drift_vs_evidently.py --evidently-python /tmp/evvenv/bin/python

Same data for both: a 10,000-row reference and a 1,000-row current window of 100 numerical
features (the window is mean-shifted in 10 features). mltrace: the window recompute and a full
``report()`` on a monitor that has seen the window (the per-request updates are not counted here);
Evidently: one ``Report([DataDriftPreset()]).run(current, reference)``, in its own interpreter.
Both timed in the same run, median of repeats.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

N_REF, N_CUR, N_FEAT = 10_000, 1_000, 100

EVIDENTLY = r"""
import json, sys, time, statistics, warnings
import numpy as np, pandas as pd
warnings.simplefilter("ignore")
from evidently import Report
from evidently.presets import DataDriftPreset
data = np.load(sys.argv[1])
cols = [f"f{i}" for i in range(data["ref"].shape[1])]
ref, cur = pd.DataFrame(data["ref"], columns=cols), pd.DataFrame(data["cur"], columns=cols)
times = []
for _ in range(int(sys.argv[2])):
    t0 = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(cur, ref)
    times.append(time.perf_counter() - t0)
print(json.dumps({"median_s": statistics.median(times)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--evidently-python", default="/tmp/evvenv/bin/python")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    import mltrace

    rng = np.random.default_rng(7)
    ref = rng.normal(size=(N_REF, N_FEAT))
    cur = rng.normal(size=(N_CUR, N_FEAT))
    cur[:, :10] += 0.5
    profile = mltrace.ReferenceProfile.from_data(ref, feature_names=[f"f{i}" for i in range(N_FEAT)])
    monitor = mltrace.DriftMonitor(profile, window=N_CUR, recompute_every=10**9)
    monitor.score(cur)  # the window now holds the current rows

    recompute, report = [], []
    for _ in range(max(args.repeat, 20)):
        t0 = time.perf_counter()
        with monitor._lock:  # the recompute the monitor runs every k requests
            monitor._recompute()
        recompute.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        monitor.report()
        report.append(time.perf_counter() - t0)

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        np.savez(path, ref=ref, cur=cur)
        out = subprocess.run(
            [args.evidently_python, "-c", EVIDENTLY, str(path), str(args.repeat)],
            capture_output=True, text=True, check=True,
        ).stdout
    ev = json.loads(out.strip().splitlines()[-1])["median_s"]
    rec, rep = statistics.median(recompute), statistics.median(report)
    print(f"reference {N_REF:,} rows, window {N_CUR:,} rows, {N_FEAT} numerical features")
    print(f"{'computation':<44}{'median':>12}{'Evidently / this':>18}")
    print(f"{'mltrace window recompute':<44}{rec * 1e3:>10.2f}ms{ev / rec:>17.0f}x")
    print(f"{'mltrace report() (recompute + dicts)':<44}{rep * 1e3:>10.2f}ms{ev / rep:>17.0f}x")
    print(f"{'Evidently DataDriftPreset, one Report.run':<44}{ev * 1e3:>10.0f}ms{1:>17.0f}x")


if __name__ == "__main__":
    sys.exit(main())
