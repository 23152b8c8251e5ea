"""The typed contracts: ``DriftScorer`` (what ``drift=`` accepts) and the one attribute-value alias."""

from __future__ import annotations

import re
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from opentelemetry.util import types as otel_types

import mltrace
from mltrace import _types, summaries
from mltrace.drift import DriftScorer, OutputDriftScorer
from mltrace.testing import CapturedSpans


def test_one_attr_value_alias() -> None:
    assert summaries.AttrValue is _types.AttrValue
    scalars = (str, bool, int, float)
    assert set(typing.get_args(_types.AttrValue)) == {*scalars, *(Sequence[t] for t in scalars)}
    otel = typing.get_args(otel_types.AttributeValue)  # OTel's API accepts all of them (AnyValue)
    assert set(scalars) <= set(otel) and any(typing.get_origin(t) is Sequence for t in otel)
    # no second alias beside it
    package = Path(mltrace.__file__).parent
    defined = [
        str(p.relative_to(package)) for p in package.rglob("*.py")
        if re.search(r"^(AttrValue|AttributeValue)\b.*=", p.read_text(), re.M)
    ]
    assert defined == ["_types.py"]


def test_drift_monitor_is_a_scorer() -> None:
    rng = np.random.default_rng(0)
    profile = mltrace.ReferenceProfile.from_data(rng.normal(size=(2000, 2)), feature_names=["a", "b"])
    monitor = mltrace.DriftMonitor(profile)
    assert isinstance(monitor, DriftScorer) and isinstance(monitor, OutputDriftScorer)
    assert not isinstance(object(), DriftScorer)


class _Constant:
    """A scorer that is not a DriftMonitor: the protocol is all a stage needs."""

    def __init__(self) -> None:
        self.seen: list[object] = []

    def score(self, x: object) -> Mapping[str, Any]:
        self.seen.append(x)
        return {"score": 0.25}

    def span_attributes(self, result: Mapping[str, Any]) -> Mapping[str, _types.AttrValue]:
        return {"ml.drift.score": float(result["score"])}


def test_a_custom_scorer_drives_a_stage(spans: CapturedSpans) -> None:
    scorer = _Constant()
    assert isinstance(scorer, DriftScorer) and not isinstance(scorer, OutputDriftScorer)

    @mltrace.inference(model="m", drift=scorer)
    def predict(x: list[float]) -> float:
        return sum(x)

    assert predict([1.0, 2.0]) == 3.0
    assert scorer.seen == [[1.0, 2.0]]
    assert (spans.stage("inference").attributes or {})["ml.drift.score"] == 0.25
