"""Time ``mltrace.summarize`` on typical payloads: ``python benchmarks/bench_summaries.py [--sweep]``.

Prints, per payload, the median over repeats of the mean µs per call, warm (a ``timeit`` loop: CPU
time of this process and wall time) and cold (the median wall time of single calls, each after
summing a 4,000,000-float array, which evicts the caches as a served request's other work does),
next to the target where there is one. Content is new to the memo on every call unless the column
says ``repeat`` (the same content summarised again, as when a stage's output is the next stage's
input). ``--sweep`` compares the pure-Python path for small inputs with numpy's path by size, warm
and cold: where the first stops winning is ``FAST_MAX``. ``--against DIR`` times another copy of
``mltrace/summaries`` side by side with this one, in one process, warm and cold (interleaved), e.g.
``git archive HEAD~3 mltrace/summaries | tar -x -C /tmp/before`` then ``--against /tmp/before``.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import os
import statistics
import sys
import time
import timeit
from collections.abc import Callable
from types import ModuleType

import numpy as np

from mltrace.summaries import _memo, summarize
from mltrace.summaries._core import summarize_general

REPEATS = 15
COLD_CALLS = 201
_THRASH = np.random.default_rng(1).random(4_000_000)  # 32 MB: as big as the last-level cache


def _cases() -> list[tuple[str, object, float | None]]:
    rng = np.random.default_rng(0)
    cases: list[tuple[str, object, float | None]] = [
        ("list of 32 floats", [float(x) for x in rng.random(32)], 30.0),
        ("ndarray float64 (32,)", rng.random(32), None),
        ("ndarray float64 (1, 32)", rng.random((1, 32)), None),
        ("dict of 3 floats", {f"f{i}": float(x) for i, x in enumerate(rng.random(3))}, None),
        ("dict output {score, label}", {"score": 0.73, "label": True}, None),
        ("float scalar", 0.25, None),
        ("np.float32 scalar", np.float32(0.73), None),
        ("list of 1,000 floats", [float(x) for x in rng.random(1_000)], None),
        ("ndarray float64 (1,000)", rng.random(1_000), 30.0),
        ("ndarray float64 (1,000,000)", rng.random(1_000_000), 2_000.0),
        ("ndarray float64 (1,000, 1,000)", rng.random((1_000, 1_000)), 2_000.0),
        ("ndarray float32 (64, 32) with NaN", np.where(rng.random((64, 32)) < 0.1, np.nan, 1.0), None),
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


def _fresh(summarise: Callable[[object], object], payload: object) -> None:
    _memo.clear()
    summarise(payload)


def _cold(*calls: Callable[[], object], prepare: Callable[[], object] = _memo.clear) -> list[float]:
    """Median wall µs of single calls, each after ``prepare`` and evicting the caches (interleaved)."""
    times: list[list[int]] = [[] for _ in calls]
    for _ in range(COLD_CALLS):
        for call, spent in zip(calls, times, strict=True):
            prepare()
            _THRASH.sum()
            start = time.perf_counter_ns()
            call()
            spent.append(time.perf_counter_ns() - start)
    return [statistics.median(spent) / 1e3 for spent in times]


def main() -> None:
    print(f"numpy {np.__version__}, Python {sys.version.split()[0]}; warm: median of {REPEATS} repeats")
    print("cpu: this process's CPU time (robust when other work shares the machine); wall: elapsed")
    print(f"cold: median wall time of {COLD_CALLS} single calls, each after summing 4,000,000 floats")
    head = f"{'case':<36} {'cpu µs':>8} {'wall µs':>8} {'cold µs':>8} {'repeat':>8} {'cold rep':>8} {'target':>7}"
    print(head + " keys")
    for name, payload, target in _cases():
        fresh = functools.partial(_fresh, summarize, payload)
        cpu = _time(fresh, time.process_time)
        wall = _time(fresh, time.perf_counter)
        call = functools.partial(summarize, payload)
        repeat = _time(call, time.perf_counter)
        cold = _cold(call)[0]
        cold_repeat = _cold(call, prepare=call)[0]
        verdict = "" if target is None else ("ok" if cpu <= target else "SLOW")
        shown = "" if target is None else f"{target:.0f}"
        figures = f"{cpu:>8.1f} {wall:>8.1f} {cold:>8.1f} {repeat:>8.1f} {cold_repeat:>8.1f}"
        print(f"{name:<36} {figures} {shown:>7} {len(summarize(payload)):>4} {verdict}")


def sweep() -> None:
    """The pure-Python path against numpy's, by size, fresh content each call (interleaved)."""
    print("µs, median; fast: summarize; numpy: the path it replaces (summaries._core.summarize_general)")
    print(f"{'case':<16} {'numpy warm':>10} {'fast warm':>10} {'numpy cold':>10} {'fast cold':>10}")
    rng = np.random.default_rng(0)
    for n in (8, 32, 64, 128, 192, 256, 384, 512):
        x = rng.random(n)
        for name, payload in (("list", x.tolist()), ("ndarray", x), ("(1, n)", x[None, :])):
            paths = (summarize_general, summarize)
            figures = [_time(functools.partial(_fresh, f, payload), time.perf_counter) for f in paths]
            figures += _cold(*(functools.partial(f, payload) for f in paths))
            print(f"{name + ' ' + str(n):<16} " + " ".join(f"{v:>10.1f}" for v in figures), flush=True)


def _load_copy(root: str) -> tuple[ModuleType, ModuleType]:
    """``mltrace/summaries`` under ``root`` as a package of its own, and its memo module."""
    path = os.path.join(root, "mltrace", "summaries")
    name = "_summaries_before"
    init = os.path.join(path, "__init__.py")
    spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[path])
    if spec is None or spec.loader is None:
        raise SystemExit(f"no mltrace/summaries under {root}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module, importlib.import_module(f"{name}._memo")


def against(root: str) -> None:
    """Another copy of the summaries (before) and this one (after), warm CPU and cold wall µs."""
    before, before_memo = _load_copy(root)

    def clear() -> None:
        _memo.clear()
        before_memo.clear()

    def fresh(summarise: Callable[[object], object], payload: object) -> None:
        clear()
        summarise(payload)

    print(f"before: {root}; after: this checkout; µs, median; warm: CPU time; cold: wall, interleaved")
    print(f"{'case':<36} {'warm bef':>9} {'warm aft':>9} {'cold bef':>9} {'cold aft':>9} same")
    for name, payload, _ in _cases():
        paths = (before.summarize, summarize)
        clear()
        same = before.summarize(payload) == summarize(payload)
        figures = [_time(functools.partial(fresh, f, payload), time.process_time) for f in paths]
        figures += _cold(*(functools.partial(f, payload) for f in paths), prepare=clear)
        print(f"{name:<36} " + " ".join(f"{v:>9.1f}" for v in figures) + f" {'yes' if same else 'NO'}", flush=True)


if __name__ == "__main__":
    if "--against" in sys.argv[1:]:
        against(sys.argv[sys.argv.index("--against") + 1])
    elif "--sweep" in sys.argv[1:]:
        sweep()
    else:
        main()
