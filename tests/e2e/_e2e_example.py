"""What a traced request to examples/serve_sklearn.py looks like in any backend (Jaeger, Zipkin).

The server span (no parent: the client sent no trace context) and the four stage spans as its
children, with the ``ml.*`` tags each stage records. Read through :class:`SpanView`, so the same
checks hold for Jaeger's typed tags and Zipkin's string tags.
"""

from __future__ import annotations

import json

from _e2e_backends import SpanView

STAGES = ("feature_lookup", "preprocess", "inference", "postprocess")
BODY = {"customer_id": "c-17", "features": {"mean radius": 14.1, "mean texture": 19.3}}


def shape(tag: object) -> list[int]:
    """An int-array attribute as read back: Jaeger gives ``"[1,30]"``, Zipkin ``'["1","30"]'``."""
    return [int(n) for n in json.loads(str(tag))]


def complete(spans: list[SpanView]) -> bool:
    return {s.name.lower() for s in spans} >= {"post /predict", *STAGES}  # Zipkin lower-cases names


def check_example_trace(spans: list[SpanView], trace_id: str) -> None:
    """The example's trace shape, as read from any backend (shared with the Zipkin test)."""
    assert complete(spans), f"incomplete trace {trace_id}: {sorted(s.name for s in spans)}"
    assert {s.trace_id for s in spans} == {trace_id}
    assert {s.service for s in spans} == {"model-server"}
    servers = [s for s in spans if s.kind == "server"]
    assert len(servers) == 1, [(s.name, s.kind) for s in spans]
    server = servers[0]
    assert server.name.lower() == "post /predict" and server.parent_id is None
    stages = {s.name: s for s in spans if s.name in STAGES}
    for name, span in stages.items():
        assert span.parent_id == server.span_id, name
        assert span.kind == "internal", name
        assert str(span.tags["ml.stage"]) == name
        assert server.start_us <= span.start_us and span.end_us <= server.end_us + 1, name  # µs rounding
    lookup, pre, infer, post = (stages[n].tags for n in STAGES)
    assert lookup["ml.feature_store.name"] == "memory"
    assert int(lookup["ml.feature_store.hits"]) == 1 and int(lookup["ml.feature_store.misses"]) == 0
    assert pre["ml.input.kind"] == "pydantic" and shape(pre["ml.output.shape"]) == [1, 30]
    assert infer["ml.model.name"] == "breast-cancer" and infer["ml.model.version"] == "1"
    assert infer["ml.model.framework"] == "sklearn"
    assert shape(infer["ml.input.shape"]) == [1, 30] and shape(infer["ml.output.shape"]) == [1, 2]
    assert len(str(infer["ml.input.fingerprint"])) == 16
    assert post["ml.output.prediction"] in ("malignant", "benign")
    assert 0.5 <= float(post["ml.output.confidence"]) <= 1.0
