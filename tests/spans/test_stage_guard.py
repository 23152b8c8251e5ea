"""mltrace's own failures stop at one guard (``spans._guarded.Guard``), the app's never do.

For every form a stage takes -- sync, async, generator, async generator, ``with mltrace.stage()``
and a batch -- a drift scorer that raises (mltrace's side: the scorer is called by mltrace) is
counted in ``instrumentation_errors``, noted on the span as an ``ml.trace_error`` event with
where it happened, and the caller gets the function's result unchanged. The function's own
exception reaches the caller as the very same object, recorded on the span. Sampled and sampled
out alike (drift sees every request).
"""

from __future__ import annotations

import ast
import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.trace import INVALID_SPAN, StatusCode
from test_stage_protocols import MODES, under

import mltrace
from mltrace import semconv
from mltrace.export import COUNTERS
from mltrace.spans._guarded import Guard
from mltrace.testing import CapturedSpans


class BrokenScorer:
    """A DriftScorer whose every method fails: mltrace calls it, so its failures are mltrace's."""

    def score(self, x: object) -> dict[str, Any]:
        raise RuntimeError("score broke")

    def span_attributes(self, result: Any) -> dict[str, Any]:
        raise RuntimeError("attributes broke")

    def observe_output(self, y: object) -> None:
        raise RuntimeError("output broke")


def _errors() -> int:
    return COUNTERS.snapshot()["instrumentation_errors"]


def _wheres(spans: CapturedSpans) -> list[str]:
    return [
        str((e.attributes or {}).get("where"))
        for s in spans
        for e in s.events
        if e.name == semconv.ML_TRACE_ERROR
    ]


def _forms(scorer: BrokenScorer, boom: Exception | None = None) -> dict[str, Callable[[list[float]], Any]]:
    """Each form of a stage over ``x``; with ``boom``, the function raises it (after one item)."""
    stage = mltrace.inference(model="m", drift=scorer)  # type: ignore[arg-type]

    def result(x: list[float]) -> float:
        if boom is not None:
            raise boom
        return sum(x)

    @stage
    def sync(x: list[float]) -> float:
        return result(x)

    @stage
    async def coro(x: list[float]) -> float:
        return result(x)

    @stage
    def gen(x: list[float]) -> Iterator[float]:
        yield from x
        result(x)

    @stage
    async def agen(x: list[float]) -> AsyncIterator[float]:
        for v in x:
            yield v
        result(x)

    async def drain(x: list[float]) -> list[float]:
        return [v async for v in agen(x)]

    def scope(x: list[float]) -> float:
        with mltrace.stage("inference", drift=scorer) as s:  # type: ignore[arg-type]
            s.record_input(x)
            out = result(x)
            s.record_output(out)
            return out

    return {
        "sync": sync,
        "async": lambda x: asyncio.run(coro(x)),
        "generator": lambda x: list(gen(x)),
        "async generator": lambda x: asyncio.run(drain(x)),
        "with stage()": scope,
    }


FORMS = ["sync", "async", "generator", "async generator", "with stage()"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("form", FORMS)
def test_a_failing_drift_scorer_never_reaches_the_app_and_is_counted(
    spans: CapturedSpans, form: str, mode: str
) -> None:
    call = _forms(BrokenScorer())[form]
    x = [1.0, 2.0, 3.0]
    expected = x if "generator" in form else 6.0
    before = _errors()
    with under(mode):
        assert call(x) == expected
    # score (input) and observe_output (output) each failed once; span_attributes is never
    # reached when score failed
    assert _errors() - before == 2, form
    if mode == "sampled":
        assert sorted(_wheres(spans)) == ["drift output", "drift score"], form
    else:
        assert _wheres(spans) == []  # nothing recorded sampled out, yet counted above


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("form", FORMS)
def test_the_apps_exception_passes_unchanged_next_to_a_guarded_failure(
    spans: CapturedSpans, form: str, mode: str
) -> None:
    boom = ValueError("the app's own")
    calls = _forms(BrokenScorer(), boom)
    before = _errors()
    with under(mode), pytest.raises(ValueError, match="the app's own") as caught:
        calls[form]([1.0])
    assert caught.value is boom
    assert _errors() - before >= 1  # the scorer's failure, counted; never in place of the app's
    if mode == "sampled":
        span = spans.stage("inference")
        assert span.status.status_code is StatusCode.ERROR
        assert (span.attributes or {})["error.type"] == "ValueError"


def test_a_batch_of_the_wrong_size_is_noted_on_the_batch_span_not_raised(spans: CapturedSpans) -> None:
    with under("sampled"):
        members = [mltrace.batch_member(v) for v in (1, 2)]
    before = _errors()
    with mltrace.record_batch(members) as batch:
        batch.record_outputs([1])  # one output for two members
    assert _errors() - before == 1
    assert "batch outputs" in _wheres(spans)


def test_guard_passes_base_exceptions_and_keeps_a_failure_until_there_is_a_span() -> None:
    with pytest.raises(KeyboardInterrupt), Guard(INVALID_SPAN, "x"):
        raise KeyboardInterrupt  # not mltrace's failure to swallow
    before = _errors()
    guard = Guard(None, "summary ml.input")
    with guard:
        raise RuntimeError("no span yet")
    assert isinstance(guard.error, RuntimeError)
    assert _errors() == before  # counted once, when noted
    guard.note(INVALID_SPAN)
    assert _errors() == before + 1


ROOT = Path(mltrace.__file__).parent
GUARDED = ["spans/_decorators.py", "spans/_stage.py", "spans/_lifetime.py", "batching/_batch_spans.py"]


@pytest.mark.parametrize("path", GUARDED)
def test_no_hand_written_guard_comes_back(path: str) -> None:
    """An ``except`` that calls ``note_failure`` is a guard written by hand: use ``Guard``."""
    tree = ast.parse((ROOT / path).read_text(encoding="utf-8"))
    offenders = [
        handler.lineno
        for handler in ast.walk(tree)
        if isinstance(handler, ast.ExceptHandler)
        for node in ast.walk(handler)
        if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "note_failure"
    ]
    assert offenders == [], f"{path}: {offenders}"
