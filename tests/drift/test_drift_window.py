"""The window's code ring keeps true counts under any mix of single rows, batches, resets and reads.

Pushes defer the count update and the fold reads the evicted rows from a copy taken at the previous
fold (the slots the next pushes overwrite); these tests recount the ring's rows from scratch after
every step, for windows smaller than, equal to and larger than the fold interval.
"""

from __future__ import annotations

import numpy as np
import pytest

from mltrace.drift._window import CodeRing


def _recount(ring: CodeRing, history: list[np.ndarray]) -> np.ndarray:
    """Window counts of the last ``size`` rows pushed since the last clear."""
    window = np.zeros((ring.m, ring.n_codes), dtype=np.int64)
    for row in history[-ring.size :]:
        window[np.arange(ring.m), row] += 1
    return window


@pytest.mark.parametrize("size", [1, 2, 5, 63, 64, 65, 100, 130])
def test_counts_match_a_recount_after_every_step(size: int) -> None:
    rng = np.random.default_rng(size)
    m, n_codes = 3, 7
    ring = CodeRing(size, m, n_codes, np.uint8)
    since_clear: list[np.ndarray] = []
    everything: list[np.ndarray] = []
    for step in range(600):
        kind = rng.random()
        if kind < 0.75:
            rows = rng.integers(0, n_codes, size=(1, m))
        elif kind < 0.97:
            rows = rng.integers(0, n_codes, size=(int(rng.integers(2, 2 * size + 3)), m))
        else:
            ring.clear()
            since_clear = []
            continue
        ring.push(rows)
        since_clear.extend(rows)
        everything.extend(rows)
        if rng.random() < 0.3 or step == 599:  # reads fold; between reads, pushes stay deferred
            want = _recount(ring, since_clear)
            np.testing.assert_array_equal(ring.counts, want, err_msg=f"step {step}")
            totals = np.zeros(m * n_codes, dtype=np.int64)
            np.add.at(totals, (np.asarray(everything) + ring.offsets).ravel(), 1)
            np.testing.assert_array_equal(ring.totals, totals, err_msg=f"step {step}")
            assert ring.fill == min(size, len(since_clear))
