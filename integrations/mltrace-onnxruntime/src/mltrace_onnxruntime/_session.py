"""``traced_session(sess)``: ``InferenceSession.run`` as an inference stage span."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from mltrace import semconv
from mltrace.spans import StageScope, sampled_out
from mltrace.spans._stage import stage_attributes

ML_MODEL_DEVICE: Final = "ml.model.device"
ML_ONNX_PROVIDER: Final = "ml.onnx.provider"
ML_ONNX_GRAPH_NAME: Final = "ml.onnx.graph_name"
ML_ONNX_PRODUCER: Final = "ml.onnx.producer"
ML_ONNX_OUTPUTS: Final = "ml.onnx.outputs"

FRAMEWORK: Final = "onnxruntime"
_DEVICE_OF_PROVIDER: Final = {
    "CPUExecutionProvider": "cpu",
    "CUDAExecutionProvider": "cuda",
    "TensorrtExecutionProvider": "cuda",
    "ROCMExecutionProvider": "rocm",
    "MIGraphXExecutionProvider": "rocm",
    "CoreMLExecutionProvider": "coreml",
    "DmlExecutionProvider": "dml",
    "OpenVINOExecutionProvider": "openvino",
}


def session_attributes(session: Any) -> dict[str, Any]:
    """Provider, device, graph name and producer: read once, when the session is wrapped."""
    attrs: dict[str, Any] = {}
    providers = list(session.get_providers())
    if providers:
        attrs[ML_ONNX_PROVIDER] = str(providers[0])
        attrs[ML_MODEL_DEVICE] = _DEVICE_OF_PROVIDER.get(str(providers[0]), str(providers[0]))
    try:
        meta = session.get_modelmeta()
    except Exception:  # a session without metadata still runs
        return attrs
    if getattr(meta, "graph_name", ""):
        attrs[ML_ONNX_GRAPH_NAME] = str(meta.graph_name)
    if getattr(meta, "producer_name", ""):
        attrs[ML_ONNX_PRODUCER] = str(meta.producer_name)
    return attrs


class TracedSession:
    """An ``onnxruntime.InferenceSession`` whose ``run`` is traced; the rest passes through."""

    __slots__ = (
        "_mltrace_attrs",
        "_mltrace_record_input",
        "_mltrace_record_output",
        "_mltrace_session",
        "_mltrace_stage_attrs",
    )

    def __init__(
        self,
        session: Any,
        *,
        name: str | None = None,
        version: str | None = None,
        record_input: bool = True,
        record_output: bool = True,
    ) -> None:
        if not callable(getattr(session, "run", None)) or not callable(getattr(session, "get_providers", None)):
            raise TypeError(f"traced_session() wraps an onnxruntime.InferenceSession, not {type(session).__name__}")
        self._mltrace_session = session
        self._mltrace_record_input = record_input
        self._mltrace_record_output = record_output
        attrs = session_attributes(session)
        attrs[semconv.ML_MODEL_NAME] = name or attrs.get(ML_ONNX_GRAPH_NAME) or "onnx-model"
        if version is not None:
            attrs[semconv.ML_MODEL_VERSION] = str(version)
        attrs[semconv.ML_MODEL_FRAMEWORK] = FRAMEWORK
        self._mltrace_attrs = attrs
        # What mltrace.stage("inference", attributes=attrs) would build on every call, built once.
        self._mltrace_stage_attrs = stage_attributes(semconv.STAGE_INFERENCE, attributes=attrs)

    @property
    def session(self) -> Any:
        """The wrapped session, unchanged."""
        return self._mltrace_session

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_mltrace_"):
            raise AttributeError(name)
        return getattr(self._mltrace_session, name)

    def __repr__(self) -> str:
        return f"traced_session({self._mltrace_session!r})"

    def run(
        self, output_names: Sequence[str] | None, input_feed: Mapping[str, Any], run_options: Any = None
    ) -> list[Any]:
        """``InferenceSession.run`` inside an ``inference`` stage span."""
        if sampled_out():
            return self._mltrace_session.run(output_names, input_feed, run_options)  # type: ignore[no-any-return]
        with StageScope(semconv.STAGE_INFERENCE, self._mltrace_stage_attrs) as stage:
            if stage.is_recording():
                batch = _batch_size(input_feed)
                if batch is not None:
                    stage.set_attribute(semconv.ML_BATCH_SIZE, batch)
                if self._mltrace_record_input:
                    stage.record_input(_single(list(input_feed.values())) if len(input_feed) == 1 else dict(input_feed))
            outputs: list[Any] = self._mltrace_session.run(output_names, input_feed, run_options)
            if self._mltrace_record_output and stage.is_recording():
                stage.set_attribute(ML_ONNX_OUTPUTS, len(outputs))
                stage.record_output(_single(outputs))
            return outputs


def _single(values: list[Any]) -> Any:
    return values[0] if len(values) == 1 else values


def _batch_size(input_feed: Mapping[str, Any]) -> int | None:
    """The first input's leading dimension (numpy arrays; ``OrtValue.shape()`` is a method)."""
    for value in input_feed.values():
        shape = getattr(value, "shape", None)
        if callable(shape):
            shape = shape()
        if isinstance(shape, Sequence) and len(shape) > 0 and isinstance(shape[0], int):
            return int(shape[0])
        return None
    return None


def traced_session(
    session: Any,
    *,
    name: str | None = None,
    version: str | None = None,
    record_input: bool = True,
    record_output: bool = True,
) -> TracedSession:
    """Wrap an ``onnxruntime.InferenceSession`` so that each ``run`` makes an ``inference`` span.

    The span records the execution provider (``ml.onnx.provider``) and the device it implies
    (``ml.model.device``), the graph name and producer, ``ml.batch.size`` (the first input's
    leading dimension), and summaries of the input feed and the outputs. ``run`` is synchronous
    in onnxruntime, so the span's duration is the inference time on any provider.
    """
    return TracedSession(session, name=name, version=version, record_input=record_input, record_output=record_output)
