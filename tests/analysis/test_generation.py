"""Generation (LLM streaming) analysis without the CLI: time-to-first-token and per-token
percentiles, and `slow --by ttft` finding a planted cause among inputs, not among outcomes."""

from __future__ import annotations

import random

import pytest

from mltrace.analysis._generation import analyze_slow_generation, generation_stats
from mltrace.genai import _semconv as gsc
from mltrace.query import Span, Trace


def _generation(i: int, ttft_s: float, tpot_s: float, **attrs: object) -> Trace:
    tid = f"{i + 1:032x}"
    total_us = int((ttft_s + 20 * tpot_s) * 1e6) + 1000
    return Trace.of(tid, [
        Span(tid, f"{2 * i + 1:016x}", None, "POST /generate", "llm", "SERVER", 0, total_us, {}),
        Span(tid, f"{2 * i + 2:016x}", f"{2 * i + 1:016x}", "inference", "llm", "INTERNAL", 500, total_us - 1000, {
            "ml.stage": "inference", gsc.ML_GENERATE_KIND: "generate", gsc.ML_GENERATE_TTFT: ttft_s,
            gsc.ML_GENERATE_TPOT: tpot_s, gsc.ML_GENERATE_OUTPUT_TOKENS: 20, **attrs}),
    ])


def _planted(n: int = 120) -> list[Trace]:
    """Prompts of 4,000 tokens or more (one in ten) wait 0.5 s longer for their first token; the
    finish reason (an outcome) is "length" for exactly those, which must not be named a cause."""
    rng = random.Random(4)
    out = []
    for i in range(n):
        long = i % 10 == 0
        tokens = rng.randint(4000, 8000) if long else rng.randint(10, 500)
        out.append(_generation(i, 0.05 + rng.random() * 0.02 + (0.5 if long else 0.0), 0.01 + rng.random() * 0.002,
                               **{gsc.ML_GENERATE_INPUT_TOKENS: tokens, gsc.ML_GENERATE_QUEUE_TIME: 0.001,
                                  gsc.ML_GENERATE_FINISH_REASON: "length" if long else "stop"}))
    return out


def test_slow_by_ttft_names_the_input_not_the_outcome() -> None:
    traces = _planted()
    report = analyze_slow_generation(traces, by="ttft")
    assert report["generations"] == 120 and report["slow_count"] == 12
    top = report["causes"][0]
    assert top["attribute"] == gsc.ML_GENERATE_INPUT_TOKENS and top["condition"].startswith(">= 4")
    assert top["reason"].startswith("time to first token is")
    assert all(c["attribute"] != gsc.ML_GENERATE_FINISH_REASON for c in report["causes"])
    assert report["traces"][0]["ttft_ms"] >= 550 and report["traces"][0]["input_tokens"] >= 4000


def test_no_generations_and_percentiles() -> None:
    plain = Trace.of("a" * 32, [Span("a" * 32, "b" * 16, None, "GET /", "svc", "SERVER", 0, 10, {})])
    assert generation_stats([plain]) is None
    empty = analyze_slow_generation([plain], by="tpot")
    assert (empty["generations"], empty["causes"], empty["median_ms"]) == (0, [], None)
    stats = generation_stats([_generation(i, 0.1 * (i + 1), 0.01) for i in range(10)] + [plain])
    assert stats is not None and stats["count"] == 10
    assert stats["time_to_first_token_ms"]["max"] == pytest.approx(1000.0)
    assert stats["time_to_first_token_ms"]["p50"] == pytest.approx(550.0)
    assert stats["output_tokens"]["mean"] == 20.0 and stats["client_disconnects"] == 0
