"""Agreement of mltrace's drift statistics with Evidently 0.7 on the same data.

Evidently must not share mltrace's environment (it pins pandas < 3); make its own:

    python -m venv /tmp/evvenv && /tmp/evvenv/bin/pip install "evidently==0.7.*" "pandas<3"
    python benchmarks/validate_against_evidently.py --evidently-python /tmp/evvenv/bin/python

This script (in mltrace's environment) draws the data, runs itself again under Evidently's
Python in ``--worker`` mode to get Evidently's values (its legacy stattests, the ones
DataDriftPreset uses) and its bin counts, then prints a Markdown table comparing:

- the same formula on the same bins: our ``psi``/``js_distance`` on Evidently's Sturges bins
  (PSI differs only through smoothing: ours adds 0.5 per bin, Evidently replaces empty bins by 1e-4);
- what each library reports with its own binning: our PSI/JS on reference deciles, our binned W1;
- the drift decision: Evidently's default for large references (normed Wasserstein 0.1 for
  numerical, Jensen–Shannon 0.1 for categorical columns) against our window alert.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

N_REF, N_CUR = 20_000, 1_000


def scenarios(rng: np.random.Generator) -> dict[str, tuple[str, np.ndarray[Any, Any], np.ndarray[Any, Any]]]:
    normal = rng.normal(size=N_REF)
    lognormal = rng.lognormal(0, 1, size=N_REF)
    cities = np.array(["a", "b", "c", "d"])
    city_ref = rng.choice(cities, size=N_REF, p=[0.4, 0.3, 0.2, 0.1])
    return {
        "normal, no drift": ("num", normal, rng.normal(size=N_CUR)),
        "normal, mean +0.1 std": ("num", normal, rng.normal(0.1, 1, size=N_CUR)),
        "normal, mean +0.3 std": ("num", normal, rng.normal(0.3, 1, size=N_CUR)),
        "normal, mean +0.5 std": ("num", normal, rng.normal(0.5, 1, size=N_CUR)),
        "normal, std x1.5": ("num", normal, rng.normal(0, 1.5, size=N_CUR)),
        "log-normal, no drift": ("num", lognormal, rng.lognormal(0, 1, size=N_CUR)),
        "log-normal, sigma 1 -> 1.2": ("num", lognormal, rng.lognormal(0, 1.2, size=N_CUR)),
        "categorical, no drift": ("cat", city_ref, rng.choice(cities, size=N_CUR, p=[0.4, 0.3, 0.2, 0.1])),
        "categorical, mix change": ("cat", city_ref, rng.choice(cities, size=N_CUR, p=[0.25, 0.3, 0.25, 0.2])),
        "categorical, new category 10%": (
            "cat",
            city_ref,
            np.where(rng.random(N_CUR) < 0.1, "e", rng.choice(cities, size=N_CUR, p=[0.4, 0.3, 0.2, 0.1])),
        ),
    }


def worker(path: Path) -> None:
    """Under Evidently's Python: its statistics and bins for every scenario, as JSON on stdout."""
    import pandas as pd
    from evidently.legacy.calculations.stattests.chisquare_stattest import _chi_stat_test
    from evidently.legacy.calculations.stattests.jensenshannon import _jensenshannon
    from evidently.legacy.calculations.stattests.ks_stattest import _ks_stat_test
    from evidently.legacy.calculations.stattests.psi import _psi
    from evidently.legacy.calculations.stattests.utils import get_binned_data
    from evidently.legacy.calculations.stattests.wasserstein_distance_norm import _wasserstein_distance_norm
    from evidently.legacy.core import ColumnType

    data = np.load(path, allow_pickle=True)
    out: dict[str, Any] = {}
    for name in json.loads(str(data["names"])):
        kind = str(data[f"{name}/kind"])
        ref, cur = pd.Series(data[f"{name}/ref"]), pd.Series(data[f"{name}/cur"])
        ctype = ColumnType.Numerical if kind == "num" else ColumnType.Categorical
        ref_p, cur_p = get_binned_data(ref, cur, ctype, 30, False)
        row: dict[str, Any] = {
            "psi": float(_psi(ref, cur, ctype, 0.1)[0]),
            "js": float(_jensenshannon(ref, cur, ctype, 0.1)[0]),
            "ref_counts": (np.asarray(ref_p) * len(ref)).round().tolist(),
            "cur_counts": (np.asarray(cur_p) * len(cur)).round().tolist(),
        }
        if kind == "num":
            row["wasserstein_norm"] = float(_wasserstein_distance_norm(ref, cur, ctype, 0.1)[0])
            row["ks_pvalue"] = float(_ks_stat_test(ref, cur, ctype, 0.05)[0])
            row["drift"] = row["wasserstein_norm"] >= 0.1
        else:
            row["chi2_pvalue"] = float(_chi_stat_test(ref, cur, ctype, 0.05)[0])
            row["drift"] = row["js"] >= 0.1
        out[name] = row
    json.dump(out, sys.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--evidently-python", default="/tmp/evvenv/bin/python")
    parser.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return

    from mltrace.drift import DriftMonitor, ReferenceProfile
    from mltrace.drift import _divergence as ds

    cases = scenarios(np.random.default_rng(0))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "data.npz"
        arrays: dict[str, Any] = {"names": json.dumps(list(cases))}
        for name, (kind, ref, cur) in cases.items():
            arrays |= {f"{name}/kind": kind, f"{name}/ref": ref, f"{name}/cur": cur}
        np.savez(path, **arrays)
        done = subprocess.run(
            [args.evidently_python, __file__, "--worker", str(path)], capture_output=True, text=True, check=True
        )
    theirs = json.loads(done.stdout)

    print(
        "| scenario | PSI Evidently (Sturges bins) | PSI ours, same bins | PSI ours (deciles) "
        "| JS Evidently | JS ours, same bins | JS ours (deciles) | W1/std Evidently (exact) | W1/std ours (binned) "
        "| KS / chi² p Evidently | KS / chi² p ours | drift Evidently | alert ours |"
    )
    print("|" + "---|" * 13)
    for name, (kind, ref, cur) in cases.items():
        ev = theirs[name]
        profile = ReferenceProfile.from_data({"x": ref}, categorical=["x"] if kind == "cat" else None)
        monitor = DriftMonitor(profile, window=N_CUR, recompute_every=N_CUR)
        monitor.score(cur[:, None].astype(object) if kind == "cat" else cur[:, None])
        report = monitor.report()
        ours = report["features"]["x"]
        same_psi = float(ds.psi(ev["ref_counts"], ev["cur_counts"])[0])
        same_js = float(ds.js_distance(ev["ref_counts"], ev["cur_counts"])[0])
        if kind == "num":
            w_ev, w_ours = f"{ev['wasserstein_norm']:.4f}", f"{ours['wasserstein_norm']:.4f}"
            p_ev, p_ours = ev["ks_pvalue"], ours["ks_pvalue"]
        else:
            w_ev = w_ours = "-"
            p_ev, p_ours = ev["chi2_pvalue"], ours["chi2_pvalue"]
        print(
            f"| {name} | {ev['psi']:.4f} | {same_psi:.4f} | {ours['psi']:.4f} | {ev['js']:.4f} | {same_js:.4f} "
            f"| {ours['js']:.4f} | {w_ev} | {w_ours} | {p_ev:.3g} | {p_ours:.3g} | {ev['drift']} | {report['alert']} |"
        )
    print(f"\nreference {N_REF:,} rows, current window {N_CUR:,} rows; Evidently from {args.evidently_python}")


if __name__ == "__main__":
    main()
