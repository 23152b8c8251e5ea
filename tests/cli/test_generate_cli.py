"""``mltrace slow --by ttft`` and the generation section of ``mltrace stats`` over a local store.

Known traffic with planted slowness: generations whose prompt has 1,000 tokens or more spend
25 ms in prefill before their first token; the others 1 ms. ``slow --by ttft`` must rank the long
prompts first and name the prompt length as the cause; ``stats`` must report TTFT and per-token
percentiles that match what was planted.
"""

from __future__ import annotations

import random
import time
from collections.abc import Generator
from pathlib import Path

import pytest
from _cli_run import run, run_json
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan

import mltrace
from mltrace.export import LocalStore
from mltrace.testing import capture_spans


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    @mltrace.inference(model="tiny", version="1", kind="generate")
    def generate(prompt_ids: list[int]) -> Generator[str, None, None]:
        time.sleep(0.025 if len(prompt_ids) >= 1000 else 0.001)  # prefill
        for _ in range(8):
            time.sleep(0.0005)
            yield "x"

    rng = random.Random(3)
    long_ids: set[str] = set()
    tracer = trace.get_tracer("test")
    with capture_spans() as captured:
        for i in range(60):
            n = 1200 if i % 6 == 0 else rng.randrange(8, 200)
            with tracer.start_as_current_span("POST /v1/chat/completions", kind=trace.SpanKind.SERVER) as server:
                assert "".join(generate(list(range(n)))) == "x" * 8
                if n >= 1000:
                    long_ids.add(format(server.get_span_context().trace_id, "032x"))
    resource = Resource.create({"service.name": "gen-cli"})
    spans = [
        ReadableSpan(
            name=s.name, context=s.context, parent=s.parent, resource=resource, attributes=s.attributes,
            events=s.events, links=s.links, kind=s.kind, instrumentation_scope=s.instrumentation_scope,
            status=s.status, start_time=s.start_time, end_time=s.end_time,
        )
        for s in captured.spans
    ]
    path = tmp_path_factory.mktemp("gen") / "traces.db"
    db = LocalStore(path)
    db.write(spans)
    db.close()
    return path, long_ids


def test_slow_by_ttft_finds_the_long_prompts(store: tuple[Path, set[str]], capsys: pytest.CaptureFixture[str]) -> None:
    path, long_ids = store
    data = run_json(capsys, "slow", "--by", "ttft", "--source", f"local://{path}", "--since", "1h", "--limit", "10")
    assert data["metric"] == "ttft" and data["generations"] == 60
    assert {t["trace_id"] for t in data["traces"]} == long_ids, "the ten long prompts are the ten slowest"
    assert all(t["ttft_ms"] >= 20 for t in data["traces"])
    top = data["causes"][0]
    assert "token" in top["attribute"] or top["attribute"].startswith("ml.input."), top
    assert "time to first token" in top["reason"]
    code, out, _ = run(capsys, "slow", "--metric", "ttft", "--source", f"local://{path}", "--since", "1h")
    assert code == 0
    assert "Slowest generations by time to first token" in out and "Likely causes" in out


def test_stats_reports_ttft_and_per_token_percentiles(
    store: tuple[Path, set[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    path, _ = store
    data = run_json(capsys, "stats", "--source", f"local://{path}", "--since", "1h")
    gen = data["generation"]
    assert gen["count"] == 60
    assert gen["output_tokens"]["p50"] == 8
    assert gen["finish_reasons"] == {"stop": 60}
    ttft = gen["time_to_first_token_ms"]
    assert 1 <= ttft["p50"] < 20 <= ttft["max"], ttft  # 50 short prompts, 10 long ones
    assert 0.4 <= gen["time_per_output_token_ms"]["p50"] < 20
    code, out, _ = run(capsys, "stats", "--source", f"local://{path}", "--since", "1h")
    assert code == 0 and "time to first token (ms)" in out and "time per output token (ms)" in out


def test_slow_by_ttft_without_generations_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = LocalStore(tmp_path / "empty.db")
    db.close()
    code, out, _ = run(capsys, "slow", "--by", "ttft", "--source", f"local://{tmp_path / 'empty.db'}")
    assert code == 0 and "No generation traces found" in out
