"""Generation figures from traces: ``slow --by ttft`` / ``--by tpot`` and the TTFT and per-token
percentiles ``stats`` shows.

A trace takes part when one of its spans carries ``ml.generate.time_to_first_token`` (an
``@inference(kind="generate")`` stage). ``slow --by ttft`` ranks those traces by time to first
token and names the attributes that set the slow ones apart (long prompts, a model version, a
queue), with the same cause search ``slow`` uses for stage times; outcomes of the generation
itself (its tokens out, its completion, its own timings) are left out of the candidates, since
they cannot have made the first token late.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from .._errors import InvalidArgumentError
from ..genai import _semconv as sc
from ..query import Trace, TraceSource, parse_duration
from ._effects import top_mask
from ._feedback import without_feedback
from ._gc import paused_gc
from ._slow import MIN_SLOW, SLOW_QUANTILE, _median, _Population, _trace_row, find_causes
from ._stats import percentiles

# metric name for --by -> (span attribute, label)
METRICS: dict[str, tuple[str, str]] = {
    "ttft": (sc.ML_GENERATE_TTFT, "time to first token"),
    "tpot": (sc.ML_GENERATE_TPOT, "time per output token"),
}

# What a generation produced or measured about itself: not candidate causes of its own timing.
_OUTCOMES = frozenset({
    sc.ML_GENERATE_TTFT, sc.ML_GENERATE_TTFT_FROM, sc.ML_GENERATE_TPOT, sc.ML_GENERATE_TPOT_MAX,
    sc.ML_GENERATE_OUTPUT_TOKENS, sc.GEN_AI_USAGE_OUTPUT_TOKENS, sc.ML_GENERATE_FINISH_REASON,
    sc.GEN_AI_RESPONSE_FINISH_REASONS, sc.ML_GENERATE_CLIENT_DISCONNECTED, sc.ML_GENERATE_COMPLETION_LENGTH,
    sc.ML_GENERATE_COMPLETION_FINGERPRINT, sc.ML_GENERATE_PROMPT_FINGERPRINT, "ml.output.stream.items",
    "ml.output.stream.closed_early",
})


def _seconds(trace: Trace, key: str) -> float | None:
    value = trace.attribute(key)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def generation_traces(traces: list[Trace]) -> list[Trace]:
    return [t for t in traces if _seconds(t, sc.ML_GENERATE_TTFT) is not None or t.attribute(sc.ML_GENERATE_KIND)]


def generation_stats(traces: list[Trace]) -> dict[str, Any] | None:
    """TTFT, time per output token, longest gap and queue time percentiles (ms), token counts,
    finish reasons and disconnects over the generation traces; ``None`` when there are none."""
    gen = generation_traces(traces)
    if not gen:
        return None

    def ms(key: str) -> list[float]:
        return [v * 1e3 for t in gen if (v := _seconds(t, key)) is not None]

    def counts(key: str) -> list[float]:
        return [float(v) for t in gen if isinstance(v := t.attribute(key), int) and not isinstance(v, bool)]

    reasons = Counter(str(r) for t in gen if (r := t.attribute(sc.ML_GENERATE_FINISH_REASON)))
    return {
        "count": len(gen),
        "time_to_first_token_ms": percentiles(ms(sc.ML_GENERATE_TTFT)),
        "time_per_output_token_ms": percentiles(ms(sc.ML_GENERATE_TPOT)),
        "max_token_gap_ms": percentiles(ms(sc.ML_GENERATE_TPOT_MAX)),
        "queue_time_ms": percentiles(ms(sc.ML_GENERATE_QUEUE_TIME)),
        "input_tokens": percentiles(counts(sc.ML_GENERATE_INPUT_TOKENS)),
        "output_tokens": percentiles(counts(sc.ML_GENERATE_OUTPUT_TOKENS)),
        "finish_reasons": dict(reasons.most_common()),
        "client_disconnects": sum(1 for t in gen if t.attribute(sc.ML_GENERATE_CLIENT_DISCONNECTED) is True),
    }


def analyze_slow_generation(traces: list[Trace], *, by: str = "ttft", limit: int = 10) -> dict[str, Any]:
    """The slowest generations by ``by`` (``ttft`` or ``tpot``) and the likely causes."""
    key, label = METRICS[by]
    gen = [t for t in traces if _seconds(t, key) is not None]
    base: dict[str, Any] = {"scanned": len(traces), "generations": len(gen), "metric": by, "label": label}
    if not gen:
        return {**base, "traces": [], "causes": [], "slow_count": 0, "slow_threshold_ms": None, "median_ms": None}
    pop = _Population.of(gen)
    pop.columns = [c for c in pop.columns if c.key not in _OUTCOMES]
    metric = np.array([(_seconds(t, key) or 0.0) * 1e3 for t in gen], dtype=np.float64)
    pop.times[by] = metric  # the search runs over "stage" times: this metric is one
    slow = top_mask(metric, SLOW_QUANTILE, MIN_SLOW)
    causes = find_causes(pop, [by], metric) if len(gen) >= 2 * MIN_SLOW else []
    for cause in causes:  # "ttft is 3x (...)" reads better with the metric's name
        cause["reason"] = str(cause["reason"]).replace(f"{by} is", f"{label} is", 1)
    highlight = list(dict.fromkeys(c["attribute"] for c in causes))[:3]
    rows = []
    for i in np.argsort(-metric, kind="stable")[:limit]:
        t = gen[int(i)]
        row: dict[str, Any] = {**_trace_row(pop, int(i), highlight)}  # gains a key named after the metric
        row["stages"].pop(by, None)
        row.update({
            f"{by}_ms": round(float(metric[int(i)]), 3),
            "queue_ms": _round_ms(_seconds(t, sc.ML_GENERATE_QUEUE_TIME)),
            "input_tokens": t.attribute(sc.ML_GENERATE_INPUT_TOKENS),
            "output_tokens": t.attribute(sc.ML_GENERATE_OUTPUT_TOKENS),
            "model_version": t.attribute("ml.model.version"),
        })
        rows.append(row)
    return {
        **base,
        "slow_count": int(slow.sum()),
        "slow_threshold_ms": round(float(metric[slow].min()), 3) if slow.any() else None,
        "median_ms": round(_median(metric), 3),
        "traces": rows,
        "causes": causes,
    }


def _round_ms(seconds: float | None) -> float | None:
    return round(seconds * 1e3, 3) if seconds is not None else None


def slow_generations(
    source: TraceSource,
    *,
    by: str = "ttft",
    service: str | None = None,
    since: str | float | None = "15m",
    limit: int = 10,
    scan: int = 10_000,
    min_duration: str | float | None = None,
    progress: Any = None,
) -> dict[str, Any]:
    """:func:`analyze_slow_generation` over the traces of ``service`` in the window."""
    if by not in METRICS:
        raise InvalidArgumentError(f"--by must be one of duration, {', '.join(METRICS)}; got {by!r}")
    with paused_gc():
        traces = source.find_traces(
            service, parse_duration(since), scan, parse_duration(min_duration), progress=progress
        )
        report = analyze_slow_generation(without_feedback(traces), by=by, limit=limit)
    return {"source": source.url, "service": service, "since": since, **report}
