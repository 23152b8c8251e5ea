"""The capture rules apply to every attribute mltrace writes, not only to captured payloads.

Every writer of summaries (stage decorators, the ``stage`` context manager, the middleware's body
summaries) is driven with the same personal row in every shape summaries know (a dict, records, a
pydantic model, a dataclass, a DataFrame, a Series, a one-row array); then every attribute and
event of every span is swept for the denied values. A guard checks that summaries reach spans
through one function only, so a new writer that bypassed the rules would fail here.
"""

from __future__ import annotations

import ast
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import mltrace
from mltrace._settings import SETTINGS
from mltrace.privacy import CaptureRules, FileSink, PayloadCapture, _attributes, record_feature_values, span_safe
from mltrace.testing import CapturedSpans

PACKAGE = Path(mltrace.__file__).parent
SALARY = 91234.25
SSN = "987-65-4321"
ROW = {"age": 52, "salary": SALARY, "ssn": SSN, "city": "lyon"}


class Person(BaseModel):
    age: int
    salary: float
    ssn: str
    city: str


@dataclasses.dataclass
class PersonRow:
    age: int
    salary: float
    ssn: str
    city: str


def _shapes() -> dict[str, Any]:
    return {
        "dict": dict(ROW),
        "records": [dict(ROW), {**ROW, "age": 53}],
        "pydantic": Person(**ROW),
        "dataclass": PersonRow(**ROW),
        "frame": pd.DataFrame([ROW, {**ROW, "age": 53}]),
        "series": pd.Series(ROW),
        "one_row_frame": pd.DataFrame([ROW]),
    }


@pytest.fixture
def deny_salary(monkeypatch: pytest.MonkeyPatch) -> None:
    """``**.salary`` denied through the environment (capture off), the cache of env rules reset."""
    monkeypatch.setenv("MLTRACE_PAYLOAD_DENY", "**.salary")
    monkeypatch.setattr(_attributes, "_env_rules", None)
    monkeypatch.setattr(SETTINGS, "payload_capture", None)
    return


def _every_value(spans: CapturedSpans) -> Iterator[tuple[str, Any]]:
    for span in spans:
        yield from (span.attributes or {}).items()
        for event in span.events:
            yield from (event.attributes or {}).items()
        yield "status", span.status.description


def _leaks(spans: CapturedSpans) -> list[tuple[str, Any]]:
    out = []
    for key, value in _every_value(spans):
        values = value if isinstance(value, (list, tuple)) else [value]
        if any(v == SALARY or (isinstance(v, str) and (SSN in v or str(SALARY) in v)) for v in values):
            out.append((key, value))
        if ".feature.salary." in key or ".feature.ssn." in key:
            out.append((key, value))
    return out


@pytest.mark.parametrize("values", [False, True], ids=["default", "values_opted_in"])
def test_no_writer_lets_a_denied_value_through(
    spans: CapturedSpans, deny_salary: None, values: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Decorators, the stage context manager and body summaries: no denied value, in any shape."""
    monkeypatch.setattr(_attributes, "_feature_values", values)
    monkeypatch.setattr(SETTINGS, "capture_request_body", True)
    monkeypatch.setattr(SETTINGS, "capture_response_body", True)

    @mltrace.preprocess
    def prepare(x: object) -> object:
        return x

    for obj in _shapes().values():
        prepare(obj)
        with mltrace.stage("inference") as s:
            s.record_input(obj)
            s.record_output(obj)

    async def echo(request: Request) -> JSONResponse:
        return JSONResponse(await request.json())

    app = Starlette(routes=[Route("/echo", echo, methods=["POST"])])
    app.add_middleware(mltrace.MLTraceMiddleware)
    with TestClient(app) as client:
        assert client.post("/echo", json=ROW).json() == ROW
    assert _leaks(spans) == []
    redacted = [k for k, v in _every_value(spans) if k.endswith((".feature.salary", ".feature.ssn"))]
    assert all(v == "[REDACTED]" for k, v in _every_value(spans) if k in redacted)
    assert len(redacted) >= 2 * len(_shapes())  # every shape said so, rather than dropping silently
    ages = [v for k, v in _every_value(spans) if k.endswith(".feature.age")]
    assert bool(ages) is values  # single-row values only when opted in
    assert any(k.endswith(".feature.age.mean") for k, _ in _every_value(spans))  # batch statistics either way


def test_capture_rules_apply_when_capture_is_on(
    spans: CapturedSpans, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With payload capture on, its rules (deny, allow, deny_keys) are the ones summaries obey."""
    rules = CaptureRules(deny=("user.age",), allow=("age", "city", "salary"), deny_keys=("salary",))
    monkeypatch.setattr(SETTINGS, "payload_capture", PayloadCapture(rules, FileSink(tmp_path)))
    monkeypatch.setattr(_attributes, "_feature_values", True)
    out = span_safe(
        {
            "n_rows": 1,
            "feature.age": 1,
            "feature.city.length": 4,
            "feature.salary": 2.0,
            "feature.ssn.length": 11,
            "kind": "dict",
        }
    )
    # age: a rule's last segment names it (deny wins); salary: a denied key; ssn: outside the allow list
    assert out == {
        "n_rows": 1,
        "feature.age": "[REDACTED]",
        "feature.city.length": 4,
        "feature.salary": "[REDACTED]",
        "feature.ssn": "[REDACTED]",
        "kind": "dict",
    }


def test_one_row_keeps_what_describes_it_without_its_values(monkeypatch: pytest.MonkeyPatch) -> None:
    """Default: a row's numbers and a vector value's numbers go; lengths, sizes, types and missing counts stay."""
    monkeypatch.setattr(_attributes, "_feature_values", None)
    monkeypatch.delenv("MLTRACE_FEATURE_VALUES", raising=False)
    summary = mltrace.summarize({"a": 1.5, "b": "text", "c": None, "v": [1.0, 2.0, 3.0], "o": object()})
    safe = span_safe(summary)
    assert "feature.a" not in safe and "feature.v.mean" not in safe and "feature.v.max" not in safe
    assert safe["feature.b.length"] == 4 and safe["feature.c.nan_count"] == 1 and safe["feature.v.size"] == 3
    assert safe["feature.o.type"] == "object" and safe["fingerprint"] == summary["fingerprint"]
    record_feature_values(True)
    try:
        assert span_safe(summary) is summary  # opted in, nothing denied: the same dict, no copy
    finally:
        record_feature_values(False)
    with pytest.raises(TypeError):
        record_feature_values("yes")  # type: ignore[arg-type]


def test_feature_values_env_is_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    """MLTRACE_FEATURE_VALUES takes true/false and names itself when it gets anything else."""
    monkeypatch.setattr(_attributes, "_feature_values", None)
    monkeypatch.setenv("MLTRACE_FEATURE_VALUES", "maybe")
    with pytest.raises(mltrace.ConfigurationError, match="MLTRACE_FEATURE_VALUES"):
        _attributes.feature_values_recorded()
    assert span_safe({"n_rows": 1, "feature.a": 1.0}) == {"n_rows": 1}  # on a span: off, never an error
    monkeypatch.setattr(_attributes, "_feature_values", None)
    monkeypatch.setenv("MLTRACE_FEATURE_VALUES", "true")
    assert _attributes.feature_values_recorded() is True


def test_one_row_array_features_follow_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """A (1, n) array's ``feature.0..`` values (the fast path) are off by default too."""
    monkeypatch.setattr(_attributes, "_feature_values", False)
    safe = span_safe(mltrace.summarize(np.array([[52.0, SALARY]])))
    assert not [k for k in safe if k.startswith("feature.")] and safe["n_features"] == 2


def test_summaries_reach_spans_through_one_function() -> None:
    """Only spans/_guarded.py calls summarize(): any other caller would write summaries past the rules."""
    callers = []
    for path in PACKAGE.rglob("*.py"):
        if path.parent.name == "summaries":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call):
                name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                if name in ("summarize", "summarize_general", "summarize_small"):
                    callers.append(str(path.relative_to(PACKAGE)))
    assert callers == ["spans/_guarded.py"], callers
    source = (PACKAGE / "spans" / "_guarded.py").read_text(encoding="utf-8")
    assert "span_safe(summary)" in source and "exception_attributes(exc)" in source
