"""The cost of applying the privacy rules to summaries: ``python benchmarks/bench_span_safe.py``.

Times ``spans._guarded.summary_attributes`` (summarise, apply the rules, prefix: what a stage pays
per recorded input) on typical payloads, with the rules (``privacy.span_safe``) and with them
replaced by the identity, interleaved in one process so both see the same machine load. Content is
the same on every call, so the summary memo applies as it does to a stage's repeated output; the
difference is the rules' own cost. Prints per case the median and the fastest of the per-round
means, in µs, and the median ratio.
"""

from __future__ import annotations

import statistics
import timeit
from typing import Any

import numpy as np

import mltrace.spans._guarded as record
from mltrace.privacy import _attributes, record_feature_values

ROUNDS = 15
NUMBER = 2_000


def _cases() -> list[tuple[str, Any]]:
    rng = np.random.default_rng(0)
    return [
        ("dict of 8 floats (one row)", {f"f{i}": float(x) for i, x in enumerate(rng.random(8))}),
        ("dict with ssn + email (one row)", {"age": 41, "salary": 5.5e4, "ssn": "123-45-6789", "email": "a@b.co"}),
        ("ndarray (1, 32)", rng.random((1, 32))),
        ("records 100 x 8", [{f"f{j}": float(j * i) for j in range(8)} for i in range(100)]),
        ("list of 32 floats (no features)", [float(x) for x in rng.random(32)]),
    ]


def _time(obj: Any) -> float:
    return min(timeit.repeat(lambda: record.summary_attributes("ml.input.", obj), number=NUMBER, repeat=1)) / NUMBER


def main() -> None:
    rules = record.span_safe
    for values in (False, True):
        record_feature_values(values)
        print(f"\nsingle-row feature values {'recorded (opt-in)' if values else 'off (default)'}")
        print(f"{'payload':34} {'rules µs (med/min)':>20} {'no rules µs (med/min)':>22} {'ratio':>6}")
        for name, obj in _cases():
            with_rules, without = [], []
            for _ in range(ROUNDS):  # interleaved: both see the same load
                record.span_safe = rules
                with_rules.append(_time(obj) * 1e6)
                record.span_safe = lambda s: s
                without.append(_time(obj) * 1e6)
            record.span_safe = rules
            ratio = statistics.median(a / b for a, b in zip(with_rules, without, strict=True))
            print(
                f"{name:34} {statistics.median(with_rules):9.2f} / {min(with_rules):6.2f}"
                f"   {statistics.median(without):9.2f} / {min(without):6.2f}   {ratio:5.2f}"
            )
    _attributes._feature_values = None


if __name__ == "__main__":
    main()
