"""What a stored trace stands for (``_weights``): adjusted counts read from spans and tracestate,
the weighted quantile every sampled-store figure uses, and ``slow``/``stats`` weighted by them."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mltrace import semconv
from mltrace.analysis import analyze_slow
from mltrace.analysis._weights import trace_weight, trace_weights, weighted_quantile
from mltrace.query import Span, Trace


def _trace(i: int, ms: float, **attrs: object) -> Trace:
    tid = f"{i:032x}"
    root = Span(tid, f"{i:016x}", None, "POST /predict", "svc", "SERVER", 0, int(ms * 1000), dict(attrs))
    inf = Span(tid, f"{i + 1:016x}"[::-1], root.span_id, "inference", "svc", "INTERNAL", 100, int(ms * 1000) - 200,
               {"ml.stage": "inference"})
    return Trace.of(tid, [root, inf])


@pytest.mark.parametrize(
    ("attrs", "expected"),
    [
        ({}, 1.0),
        ({semconv.MLTRACE_SAMPLING_ADJUSTED_COUNT: 10.0}, 10.0),
        ({semconv.MLTRACE_SAMPLING_ADJUSTED_COUNT: 4}, 4.0),
        ({"w3c.tracestate": "vendor=x,ot=th:8"}, 2.0),  # threshold 0x8 = keep half: stands for 2
        ({"w3c.tracestate": "ot=rv:abc;th:e"}, 8.0),  # th after another sub-key
        ({"w3c.tracestate": "other=th:8"}, 1.0),  # not the ot member
        ({semconv.MLTRACE_SAMPLING_ADJUSTED_COUNT: math.nan, "w3c.tracestate": "ot=th:8"}, 2.0),
        ({semconv.MLTRACE_SAMPLING_ADJUSTED_COUNT: True}, 1.0),  # a bool is not a count
        ({semconv.MLTRACE_SAMPLING_ADJUSTED_COUNT: 0.5}, 1.0),  # below one request: ignored
    ],
)
def test_the_adjusted_count_a_trace_declares(attrs: dict[str, object], expected: float) -> None:
    assert trace_weight(_trace(1, 5.0, **attrs)) == expected


def test_the_largest_count_of_any_span_wins_and_unsampled_stores_have_no_weights() -> None:
    t = _trace(1, 5.0, **{semconv.MLTRACE_SAMPLING_ADJUSTED_COUNT: 2.0})
    t.spans[1].attributes = {**t.spans[1].attributes, semconv.MLTRACE_SAMPLING_ADJUSTED_COUNT: 5.0}
    assert trace_weight(Trace.of(t.trace_id, list(t.spans))) == 5.0
    assert trace_weights([_trace(i, 5.0) for i in range(3)]) is None
    weights = trace_weights([_trace(1, 5.0), t])
    assert weights is not None and weights.tolist() == [1.0, 5.0]


def test_weighted_quantile_is_the_inverted_cdf() -> None:
    assert math.isnan(weighted_quantile([], [], 0.5))
    assert weighted_quantile([3.0], [7.0], 0.99) == 3.0
    values, weights = [1.0, 2.0, 3.0, 4.0], [1.0, 1.0, 1.0, 1.0]
    for q in (0.1, 0.25, 0.5, 0.75, 0.9, 1.0):
        assert weighted_quantile(values, weights, q) == np.percentile(values, 100 * q, method="inverted_cdf")
    # weight 3 on the value 1 is the value written three times
    assert weighted_quantile([1.0, 5.0], [3.0, 1.0], 0.75) == weighted_quantile([1.0, 1.0, 1.0, 5.0], [1] * 4, 0.75)
    assert weighted_quantile([5.0, 1.0, 3.0], [1.0, 1.0, 1.0], 0.5) == 3.0  # unsorted input


def test_slow_counts_requests_not_kept_traces() -> None:
    """A ratio-sampled store keeps 1 in 10 fast requests (each standing for 10) and every slow one
    (standing for itself): the slow set is the top tenth of the 1,020 requests (the 20 slow ones
    and the 14 kept traces at the fast ones' top value, 140 requests), not of the 120 traces."""
    fast = [_trace(i, 5.0 + (i % 7) * 0.1, **{semconv.MLTRACE_SAMPLING_ADJUSTED_COUNT: 10.0}) for i in range(100)]
    slow = [_trace(1000 + i, 80.0 + i) for i in range(20)]
    report = analyze_slow(fast + slow)
    assert report["requests"] == 1020.0
    assert report["slow_count"] == 34 and report["slow_threshold_ms"] == 5.6
    assert report["median_ms"] < 6.0
    plain = analyze_slow([_trace(i, t.duration_ms) for i, t in enumerate(fast + slow)])
    assert plain["requests"] == 120.0 and plain["median_ms"] < 6.0 and plain["slow_count"] == 12
