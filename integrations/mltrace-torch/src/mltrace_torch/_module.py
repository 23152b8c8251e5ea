"""``traced_module(m)``: calls of an ``nn.Module`` as inference spans with host and device time.

On a CUDA device the span carries ``ml.gpu.host_time_ms`` (the launch time the host saw) and
``ml.gpu.device_time_ms`` (the device time between two pooled CUDA events). The call never waits
for the device: the span stays open after the call returns, and ends (with the end time of the
call, so its duration is still the host's) once the end event has completed; see
``docs/integrations.md`` for why we defer the end instead of emitting a follow-up span.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable
from typing import Any, Final

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span

import mltrace
from mltrace import semconv
from mltrace.spans import record_error
from mltrace.spans._tracer import start_child  # the stage decorators' own: deferred spans, sampled-out skip

from ._device_timer import DeviceTimer, default_timer

ML_MODEL_CLASS: Final = "ml.model.class"
ML_MODEL_DEVICE: Final = "ml.model.device"
ML_MODEL_DTYPE: Final = "ml.model.dtype"
ML_GPU_HOST_TIME_MS: Final = "ml.gpu.host_time_ms"
ML_GPU_DEVICE_TIME_MS: Final = "ml.gpu.device_time_ms"
ML_GPU_TIMING: Final = "ml.gpu.timing"  # why a CUDA span has no device time: pool_exhausted | unresolved

FRAMEWORK: Final = "torch"


class TracedModule:
    """An ``nn.Module`` whose calls are traced; everything else passes through to it.

    ``traced.to("cuda")``, ``traced.eval()`` and other methods that return the module return the
    wrapper instead, so ``model = traced_module(net).to(device).eval()`` stays traced.
    """

    __slots__ = (
        "_mltrace_attrs",
        "_mltrace_batch_dim",
        "_mltrace_drift",
        "_mltrace_module",
        "_mltrace_param",
        "_mltrace_record_input",
        "_mltrace_record_output",
        "_mltrace_stage",
        "_mltrace_timer",
    )

    def __init__(
        self,
        module: Any,
        *,
        name: str | None = None,
        version: str | None = None,
        stage: str = semconv.STAGE_INFERENCE,
        record_input: bool = True,
        record_output: bool = True,
        device_timing: bool = True,
        timer: DeviceTimer | None = None,
        batch_dim: int = 0,
        drift: Any = None,
    ) -> None:
        import torch

        if not isinstance(module, torch.nn.Module):
            raise TypeError(f"traced_module() wraps a torch.nn.Module, not {type(module).__name__}")
        if not isinstance(stage, str) or not stage:
            raise TypeError("stage must be a non-empty string")
        self._mltrace_module = module
        self._mltrace_stage = stage
        self._mltrace_record_input = record_input
        self._mltrace_record_output = record_output
        self._mltrace_timer = (timer or default_timer()) if device_timing else None
        self._mltrace_batch_dim = batch_dim
        self._mltrace_drift = drift
        cls = type(module)
        self._mltrace_attrs: dict[str, Any] = {
            semconv.ML_STAGE: stage,
            semconv.ML_MODEL_NAME: name or cls.__name__,
            semconv.ML_MODEL_FRAMEWORK: FRAMEWORK,
            ML_MODEL_CLASS: f"{cls.__module__}.{cls.__qualname__}",
        }
        if version is not None:
            self._mltrace_attrs[semconv.ML_MODEL_VERSION] = str(version)
        self._mltrace_param: Any = None
        self._mltrace_find_param()

    @property
    def module(self) -> Any:
        """The wrapped module, unchanged."""
        return self._mltrace_module

    def refresh(self) -> None:
        """Look up the module's device and dtype again: needed only after changing the module behind
        the wrapper's back (methods called through the wrapper, such as ``.to()``, do it for you)."""
        self._mltrace_find_param()

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_mltrace_"):  # an unset slot (during unpickling): never recurse
            raise AttributeError(name)
        attr = getattr(self._mltrace_module, name)
        if callable(attr) and getattr(attr, "__self__", None) is self._mltrace_module:
            return functools.partial(_keep_wrapper, self, attr)
        return attr

    def __repr__(self) -> str:
        return f"traced_module({self._mltrace_module!r})"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # As mltrace.stage(): inside a request recorded with deferred spans, a light span handed to
        # the SDK after the response; under a sampled-out parent, no span at all (one check).
        span, started = start_child(self._mltrace_stage, self._mltrace_attrs)
        if not started:
            return self._mltrace_module(*args, **kwargs)
        token = otel_context.attach(trace.set_span_in_context(span))
        if not span.is_recording():  # dropped by the sampler: no attributes, nothing to wait for
            try:
                return self._mltrace_module(*args, **kwargs)
            finally:
                otel_context.detach(token)
                span.end()
        timer, timing, deferred = self._mltrace_timer, None, False
        try:
            stage = mltrace.Stage(span, self._mltrace_drift)
            device = self._mltrace_describe(span, args, kwargs)
            if self._mltrace_record_input:
                _record_io(stage, semconv.ML_INPUT_PREFIX, _input_of(args, kwargs))
            if timer is not None and device is not None and timer.applies(device):
                timing = timer.start(device)
                if timing is None:
                    span.set_attribute(ML_GPU_TIMING, "pool_exhausted")
            host_start = time.perf_counter_ns()
            result = self._mltrace_module(*args, **kwargs)
            host_ns = time.perf_counter_ns() - host_start
            if timing is not None:
                assert timer is not None
                timer.stop(timing)
                span.set_attribute(ML_GPU_HOST_TIME_MS, host_ns / 1e6)
            if self._mltrace_record_output:
                _record_io(stage, semconv.ML_OUTPUT_PREFIX, result)
            if timing is not None:
                assert timer is not None
                timer.submit(timing, functools.partial(_end_with_device_time, span, time.time_ns()))
                timing, deferred = None, True
            return result
        except BaseException as exc:
            if timing is not None and timer is not None:
                timer.abandon(timing)
            record_error(span, exc)
            raise
        finally:
            otel_context.detach(token)
            if not deferred:
                span.end()

    def _mltrace_describe(self, span: Span, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Device, dtype and batch size on the span; returns the device (``None`` if unknown)."""
        try:
            first_input = _first_tensor(args)
            if first_input is None:
                first_input = _first_tensor(kwargs.values())
            param = self._mltrace_param
            ref = param if param is not None else first_input
            if ref is None:
                return None
            device, dtype = ref.device, ref.dtype
            attrs = _describe(device, dtype)
            if first_input is not None and first_input.dim() > self._mltrace_batch_dim:
                attrs = {**attrs, semconv.ML_BATCH_SIZE: int(first_input.shape[self._mltrace_batch_dim])}
            span.set_attributes(attrs)
            return device
        except Exception:  # never break the model call over a description
            return None

    def _mltrace_find_param(self) -> None:
        """Remember the first parameter (or buffer): ``.to()`` converts parameters in place, so its
        device and dtype stay the module's. Looked up again after each method call through the
        wrapper, since walking ``parameters()`` on every call costs more than the span."""
        module = self._mltrace_module
        param = _first_tensor(module.parameters())
        self._mltrace_param = param if param is not None else _first_tensor(module.buffers())


def _keep_wrapper(wrapper: TracedModule, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    result = method(*args, **kwargs)
    wrapper._mltrace_find_param()
    return wrapper if result is wrapper.module else result


@functools.cache
def _describe(device: Any, dtype: Any) -> dict[str, Any]:
    return {ML_MODEL_DEVICE: str(device), ML_MODEL_DTYPE: str(dtype).removeprefix("torch.")}


def _first_tensor(values: Iterable[Any]) -> Any:
    tensor = _tensor_type()
    for value in values:
        if isinstance(value, tensor):
            return value
    return None


@functools.cache
def _tensor_type() -> type:
    import torch

    tensor: type = torch.Tensor
    return tensor


def _record_io(stage: mltrace.Stage, prefix: str, obj: Any) -> None:
    """Summarise a CPU value; for a tensor on an accelerator only its metadata: statistics of it
    (``summarize`` copies small device tensors to the host) would wait for the device here."""
    view = None
    try:
        is_tensor = isinstance(obj, _tensor_type())
        tensor: Any = obj if is_tensor else _first_tensor(_top_level(obj))
        if tensor is not None and tensor.device.type != "cpu":
            stage.set_attributes({
                prefix + "kind": "tensor",
                prefix + "shape": list(tensor.shape),
                prefix + "dtype": str(tensor.dtype).removeprefix("torch."),
                prefix + "size": int(tensor.numel()),
                prefix + "device": str(tensor.device),
            })
            return
        if is_tensor:
            view = _numpy_view(obj)
    except Exception:
        return
    record = stage.record_input if prefix == semconv.ML_INPUT_PREFIX else stage.record_output
    if view is None:
        record(obj)
        return
    # A plain CPU tensor is summarised through its numpy view: the same statistics, fingerprint and
    # features (mltrace.summaries' tensor path reads the same view), but by the fast paths for small
    # arrays: 11 µs instead of 64 µs for a (1, 64) float32 input. Inside a deferred request the view
    # is copied (~1 µs) and summarised after the response. Only kind and device differ: set back.
    record(view)
    stage.set_attributes({prefix + "kind": "tensor", prefix + "device": "cpu"})


# Dtypes whose numpy view holds the same values (bfloat16/float8 have none; complex keeps its own path).
_VIEW_DTYPES: Final = frozenset({
    "torch.float32", "torch.float64", "torch.float16", "torch.int64", "torch.int32", "torch.int16",
    "torch.int8", "torch.uint8", "torch.bool",
})


def _numpy_view(tensor: Any) -> Any:
    """The numpy view of a plain CPU tensor (strided, not quantized, nested, conjugated or negated
    lazily), or ``None`` when it has none that mltrace.summaries would read the same way."""
    if (
        str(tensor.dtype) not in _VIEW_DTYPES
        or tensor.layout is not _strided()
        or tensor.is_quantized
        or tensor.is_nested
        or tensor.is_conj()
        or tensor.is_neg()
    ):
        return None
    return tensor.detach().numpy()


@functools.cache
def _strided() -> Any:
    import torch

    return torch.strided


def _input_of(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if len(args) == 1 and not kwargs:
        return args[0]
    return args or kwargs


def _top_level(obj: Any) -> Iterable[Any]:
    if isinstance(obj, dict):
        return obj.values()
    if isinstance(obj, list | tuple):
        return obj
    return ()


def _end_with_device_time(span: Span, end_time_ns: int, device_ms: float | None) -> None:
    if device_ms is None:
        span.set_attribute(ML_GPU_TIMING, "unresolved")
    else:
        span.set_attribute(ML_GPU_DEVICE_TIME_MS, device_ms)
    span.end(end_time=end_time_ns)


def traced_module(
    module: Any,
    *,
    name: str | None = None,
    version: str | None = None,
    stage: str = semconv.STAGE_INFERENCE,
    record_input: bool = True,
    record_output: bool = True,
    device_timing: bool = True,
    timer: DeviceTimer | None = None,
    batch_dim: int = 0,
    drift: Any = None,
) -> TracedModule:
    """Wrap an ``nn.Module`` so that each call makes an ``inference`` stage span.

    The span records ``ml.model.device``, ``ml.model.dtype``, ``ml.batch.size`` (the size of
    the first tensor argument along ``batch_dim``) and summaries of the input and output (shape,
    dtype and device only for tensors that live on an accelerator). On CUDA it adds host and
    device time without synchronising (``device_timing=False`` turns that off).
    """
    return TracedModule(
        module,
        name=name,
        version=version,
        stage=stage,
        record_input=record_input,
        record_output=record_output,
        device_timing=device_timing,
        timer=timer,
        batch_dim=batch_dim,
        drift=drift,
    )
