"""Time ``mltrace.summarize`` on typical payloads: ``python benchmarks/bench_summaries.py``.

Prints, per payload, the median over repeats of the mean µs per call (CPU time of this process
and wall time), next to the target where there is one, and the number of keys in the summary.
"""

from __future__ import annotations

import functools
import statistics
import sys
import time
import timeit
from collections.abc import Callable

import numpy as np

from mltrace.summaries import summarize

REPEATS = 15


def _cases() -> list[tuple[str, object, float | None]]:
    rng = np.random.default_rng(0)
    cases: list[tuple[str, object, float | None]] = [
        ("ndarray float64 (1,000)", rng.random(1_000), 30.0),
        ("ndarray float64 (1,000,000)", rng.random(1_000_000), 2_000.0),
        ("ndarray float64 (1,000, 1,000)", rng.random((1_000, 1_000)), 2_000.0),
        ("ndarray float32 (64, 32) with NaN", np.where(rng.random((64, 32)) < 0.1, np.nan, 1.0), None),
        ("list of 32 floats", [float(x) for x in rng.random(32)], 30.0),
        ("dict of 30 features", {f"feature_{i}": float(x) for i, x in enumerate(rng.random(30))}, 30.0),
        ("dict of 30 mixed features", {f"f{i}": (i if i % 3 else f"v{i}") for i in range(30)}, None),
        ("records 100 x 30", [{f"f{j}": float(j * i) for j in range(30)} for i in range(100)], None),
        ("str (1,000 chars)", "x" * 1_000, None),
        ("None", None, None),
    ]
    if "pandas" in sys.modules or _try_import_pandas():
        import pandas as pd

        cases.append(("DataFrame 1,000 x 30", pd.DataFrame(rng.random((1_000, 30))), None))
    return cases


def _try_import_pandas() -> bool:
    try:
        import pandas  # noqa: F401
    except ImportError:
        return False
    return True


def _time(call: Callable[[], object], clock: Callable[[], float]) -> float:
    """Median over repeats of the mean µs per call, on ``clock``."""
    timer = timeit.Timer(call, timer=clock)
    number, _ = timer.autorange()
    number = max(number, 20)
    runs = timer.repeat(repeat=REPEATS, number=number)
    return statistics.median(runs) / number * 1e6


def main() -> None:
    print(f"numpy {np.__version__}, Python {sys.version.split()[0]}; median of {REPEATS} repeats")
    print("cpu: this process's CPU time (robust when other work shares the machine); wall: elapsed")
    print(f"{'case':<36} {'cpu µs':>9} {'wall µs':>9} {'target':>8} {'keys':>5}")
    for name, payload, target in _cases():
        call = functools.partial(summarize, payload)
        cpu = _time(call, time.process_time)
        wall = _time(call, time.perf_counter)
        verdict = "" if target is None else ("ok" if cpu <= target else "SLOW")
        shown = "" if target is None else f"{target:.0f}"
        print(f"{name:<36} {cpu:>9.1f} {wall:>9.1f} {shown:>8} {len(call()):>5} {verdict}")


if __name__ == "__main__":
    main()
