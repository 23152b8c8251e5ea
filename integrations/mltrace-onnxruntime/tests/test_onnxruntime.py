"""traced_session() with real onnxruntime sessions over small models built in memory."""

from __future__ import annotations

import numpy as np
import onnxruntime as ort
import pytest
from mltrace_onnxruntime import traced_session
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument
from opentelemetry.trace import StatusCode

from mltrace.testing import CapturedSpans

W = np.arange(12, dtype=np.float32).reshape(4, 3) / 10


def _linear_softmax(graph_name: str = "scorer") -> ort.InferenceSession:
    """probs = softmax(X @ W); logits are a second output."""
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["X", "W"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
        ],
        graph_name,
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 4])],
        [
            helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 3]),
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 3]),
        ],
        initializer=[numpy_helper.from_array(W, "W")],
    )
    model = helper.make_model(graph, producer_name="mltrace-tests", opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("batch", [1, 7])
def test_run_makes_an_inference_span(spans: CapturedSpans, batch: int) -> None:
    """run() returns onnxruntime's outputs and records provider, device, graph, batch and summaries."""
    session = _linear_softmax()
    x = np.random.default_rng(0).normal(size=(batch, 4)).astype(np.float32)
    probs, logits = traced_session(session, version="2").run(None, {"X": x})
    np.testing.assert_allclose(logits, x @ W, rtol=1e-5)
    np.testing.assert_allclose(probs.sum(axis=1), np.ones(batch), rtol=1e-5)
    attrs = spans.stage("inference").attributes
    assert attrs["ml.model.name"] == "scorer" and attrs["ml.model.version"] == "2"
    assert attrs["ml.model.framework"] == "onnxruntime"
    assert attrs["ml.onnx.provider"] == "CPUExecutionProvider" and attrs["ml.model.device"] == "cpu"
    assert attrs["ml.onnx.producer"] == "mltrace-tests" and attrs["ml.onnx.outputs"] == 2
    assert attrs["ml.batch.size"] == batch
    assert tuple(attrs["ml.input.shape"]) == (batch, 4)


def test_named_outputs_and_given_name(spans: CapturedSpans) -> None:
    """Asking for one output summarises that output; name= overrides the graph name."""
    (probs,) = traced_session(_linear_softmax(), name="ranker").run(["probs"], {"X": np.ones((2, 4), np.float32)})
    attrs = spans.stage("inference").attributes
    assert attrs["ml.model.name"] == "ranker" and attrs["ml.onnx.outputs"] == 1
    assert tuple(attrs["ml.output.shape"]) == probs.shape


def test_ort_value_inputs_give_a_batch_size(spans: CapturedSpans) -> None:
    """An OrtValue in the feed is measured like an array."""
    value = ort.OrtValue.ortvalue_from_numpy(np.ones((5, 4), np.float32))
    traced_session(_linear_softmax(), record_input=False).run(None, {"X": value})
    assert spans.stage("inference").attributes["ml.batch.size"] == 5


def test_errors_are_recorded_and_reraised(spans: CapturedSpans) -> None:
    """A feed of the wrong shape raises onnxruntime's own error and marks the span ERROR."""
    with pytest.raises(InvalidArgument):
        traced_session(_linear_softmax()).run(None, {"X": np.ones((2, 5), np.float32)})
    assert spans.stage("inference").status.status_code is StatusCode.ERROR


def test_everything_else_passes_through() -> None:
    """Session methods other than run() are the session's own."""
    session = _linear_softmax()
    traced = traced_session(session)
    assert [i.name for i in traced.get_inputs()] == ["X"] and traced.session is session
    assert "traced_session(" in repr(traced)


def test_rejects_what_is_not_a_session() -> None:
    """Wrapping something without run()/get_providers() is a TypeError naming its type."""
    with pytest.raises(TypeError, match="dict"):
        traced_session({})


def test_sampled_out_parent_runs_unwrapped(spans: CapturedSpans) -> None:
    """Under a sampled-out parent run() returns onnxruntime's outputs and makes no span; a
    recording parent still gets its child."""
    from opentelemetry import context as otel_context
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    session = _linear_softmax()
    traced = traced_session(session)
    x = np.ones((2, 4), dtype=np.float32)
    for sampled in (False, True):
        flags = TraceFlags(TraceFlags.SAMPLED if sampled else 0)
        parent = NonRecordingSpan(SpanContext(0x1234, 0x5678, is_remote=True, trace_flags=flags))
        token = otel_context.attach(trace.set_span_in_context(parent))
        try:
            got = traced.run(["logits"], {"X": x})
        finally:
            otel_context.detach(token)
        np.testing.assert_array_equal(got[0], session.run(["logits"], {"X": x})[0])
        assert len(spans.stages("inference")) == int(sampled)
