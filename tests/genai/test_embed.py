"""``@mltrace.inference(kind="embed")``: an embedding batch's summary, and drift on embeddings, as
docs/generative.md shows them (the example there is this test's code)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

import mltrace
from mltrace import DriftMonitor, ReferenceProfile
from mltrace.testing import CapturedSpans


def _unit(v: np.ndarray) -> np.ndarray:
    return np.asarray(v / np.linalg.norm(v, axis=1, keepdims=True))


class ToyEncoder:
    """Texts to 32-d unit vectors (a hash-seeded projection: deterministic, no download)."""

    def __init__(self, shift: float = 0.0) -> None:
        self.shift = shift

    def encode(self, texts: list[str]) -> np.ndarray:
        seeds = [int.from_bytes(hashlib.sha256(t.encode()).digest()[:4], "little") for t in texts]
        rows = [np.random.default_rng(seed).normal(size=32) + self.shift for seed in seeds]
        return _unit(np.array(rows))


def test_embedding_batch_summary_and_drift(spans: CapturedSpans) -> None:
    rng = np.random.default_rng(0)
    # Reference: embeddings of the texts the service was validated on (here: 2,000 random ones).
    reference = _unit(rng.normal(size=(2000, 32)))
    lengths = rng.integers(5, 200, size=2000).astype(float)
    profile = ReferenceProfile.from_data(
        lengths[:, None], feature_names=["text_length"], embeddings={"embedding": reference}
    )
    monitor = DriftMonitor(profile, window=256, recompute_every=32, model="embedder")
    encoder = ToyEncoder()

    @mltrace.inference(model="embedder", version="3", kind="embed")
    def embed(texts: list[str]) -> np.ndarray:
        vectors = encoder.encode(texts)
        result = monitor.score(np.c_[[len(t) for t in texts]], embeddings={"embedding": vectors})
        mltrace.current_stage().set_attributes(monitor.span_attributes(result))
        return vectors

    texts = [f"text number {i} " * (i % 7 + 1) for i in range(64)]
    assert embed(texts).shape == (64, 32)
    a = spans.stage("inference").attributes or {}
    assert (a["ml.embedding.count"], a["ml.embedding.dimension"]) == (64, 32)
    assert a["ml.embedding.norm.min"] == pytest.approx(1.0) == a["ml.embedding.norm.max"]
    assert a["gen_ai.operation.name"] == "embeddings" and a["gen_ai.request.model"] == "embedder"
    assert a["ml.drift.alert"] is False

    encoder.shift = 0.6  # a new encoder version: every vector leans one way
    for i in range(4):
        embed([f"batch {i} text {j}" for j in range(64)])
    last = spans.stages("inference")[-1].attributes or {}
    assert last["ml.drift.alert"] is True
    assert float(last["ml.drift.window.score"]) > 0.5  # type: ignore[arg-type]
    assert monitor.report()["embeddings"]["embedding"]["alert"] is True


def test_embedding_summary_of_odd_outputs(spans: CapturedSpans) -> None:
    @mltrace.inference(kind="embed")
    def embed(texts: list[str]) -> object:
        return {"data": [{"embedding": [3.0, 4.0]}, {"embedding": [0.0, 0.0]}]} if texts else "not vectors"

    embed(["a", "b"])
    embed([])
    first, second = spans.stages("inference")
    a = first.attributes or {}
    assert (a["ml.embedding.count"], a["ml.embedding.norm.min"], a["ml.embedding.norm.max"]) == (2, 0.0, 5.0)
    assert not any(k.startswith("ml.embedding.") for k in second.attributes or {})
