"""Every attribute and metric a generation writes is listed in docs/semantic-conventions.md."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from pathlib import Path

import pytest
from opentelemetry import trace

import mltrace
from mltrace.genai import _embed as embed
from mltrace.genai import _semconv as sc
from mltrace.testing import CapturedSpans

DOC = (Path(__file__).parents[2] / "docs" / "semantic-conventions.md").read_text()
SUMMARY_PREFIXES = ("ml.input.", "ml.output.")  # documented as summaries (ml.input.*), key by key below them


def _documented(key: str) -> bool:
    if key.startswith(SUMMARY_PREFIXES):
        return "`" + ".".join(key.split(".")[:2]) + ".*`" in DOC
    return f"`{key}`" in DOC


def test_every_genai_constant_is_documented() -> None:
    prefixes = ("ml.", "gen_ai.", "mltrace.")
    constants = {**vars(sc), **vars(embed)}
    keys = [v for k, v in constants.items() if k.isupper() and isinstance(v, str) and v.startswith(prefixes)]
    assert len(keys) > 25
    assert [k for k in keys if f"`{k}`" not in DOC] == []


@pytest.mark.parametrize("latest", [False, True])
async def test_every_attribute_a_generation_writes_is_documented(
    spans: CapturedSpans, monkeypatch: pytest.MonkeyPatch, latest: bool
) -> None:
    if latest:
        monkeypatch.setenv(sc.OPT_IN_ENV, sc.OPT_IN_LATEST)

    @mltrace.inference(model="doc", version="1", kind="generate", attributes={"gen_ai.operation.name": "chat"})
    async def generate(prompt: str, fail: bool = False) -> AsyncGenerator[str, None]:
        stage = mltrace.current_stage()
        stage.generation_started()
        stage.set_input_tokens(3)
        stage.record_prompt(prompt)
        for ch in "hello":
            await asyncio.sleep(0)
            yield ch
        if fail:
            raise RuntimeError("boom")
        stage.set_response_model("doc-2")
        stage.set_finish_reason("length")

    with trace.get_tracer("test").start_as_current_span("request", kind=trace.SpanKind.SERVER):
        assert "".join([c async for c in generate("hi")]) == "hello"
        with pytest.raises(RuntimeError):
            _ = [c async for c in generate("hi", fail=True)]
        g = generate("bye")
        await g.__anext__()
        await g.aclose()
    keys = {k for s in spans.stages("inference") for k in (s.attributes or {})}
    assert {sc.ML_GENERATE_TTFT, sc.ML_GENERATE_CLIENT_DISCONNECTED, sc.GEN_AI_RESPONSE_FINISH_REASONS} <= keys
    assert sorted(k for k in keys if not _documented(k)) == []


def test_every_generation_metric_is_documented() -> None:
    kinds = ("GEN_AI_SERVER", "MLTRACE_GENERATE")
    names = [v for k, v in vars(sc).items() if k.startswith(kinds) and isinstance(v, str)]
    assert len(names) == 7
    assert [n for n in names if f"`{n}`" not in DOC] == []
