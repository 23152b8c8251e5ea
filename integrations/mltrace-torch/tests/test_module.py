"""traced_module() with real torch modules on the CPU (skipped where torch is not installed)."""

from __future__ import annotations

import time
from typing import Any

import pytest
from mltrace_torch import DeviceTimer, Resolver, traced_module
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, SpanContext, StatusCode, TraceFlags
from sim_device import SimDevice

from mltrace.testing import CapturedSpans, deferred_request

torch = pytest.importorskip("torch")
nn = torch.nn


def _mlp() -> Any:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 3)).eval()


class _SimWork(nn.Module):  # type: ignore[misc]
    """A CPU module that also queues ``ms`` of simulated device work per call."""

    def __init__(self, device: SimDevice, ms: float) -> None:
        super().__init__()
        self.sim, self.ms = device, ms
        self.linear = nn.Linear(4, 2)

    def forward(self, x: Any) -> Any:
        self.sim.work(self.ms)
        return self.linear(x)


def _sim_timer(device: SimDevice, **kwargs: Any) -> DeviceTimer:
    """A timer that treats the CPU as a timed device and takes its events from the simulation."""
    return DeviceTimer(event_factory=device.event, stream_of=lambda d: "stream-0", device_types=("cpu",),
                       resolver=Resolver(background=False), **kwargs)


def test_call_makes_an_inference_span_with_device_dtype_and_batch(spans: CapturedSpans) -> None:
    """A call returns the module's output and records device, dtype, batch size and summaries."""
    net = _mlp()
    x = torch.randn(5, 8)
    out = traced_module(net, name="ranker", version="7")(x)
    torch.testing.assert_close(out, net(x))
    attrs = spans.stage("inference").attributes
    assert attrs["ml.model.name"] == "ranker" and attrs["ml.model.version"] == "7"
    assert attrs["ml.model.framework"] == "torch" and attrs["ml.model.class"] == "torch.nn.modules.container.Sequential"
    assert attrs["ml.model.device"] == "cpu" and attrs["ml.model.dtype"] == "float32"
    assert attrs["ml.batch.size"] == 5
    assert attrs["ml.input.kind"] == "tensor" and tuple(attrs["ml.output.shape"]) == (5, 3)
    assert "ml.gpu.device_time_ms" not in attrs and "ml.gpu.host_time_ms" not in attrs


@pytest.mark.parametrize("dtype", ["float64", "bfloat16"])
def test_dtype_follows_the_module(spans: CapturedSpans, dtype: str) -> None:
    """.to(dtype) through the wrapper returns the wrapper, and the span reports the new dtype."""
    model = traced_module(_mlp()).to(getattr(torch, dtype))
    model(torch.randn(2, 8, dtype=getattr(torch, dtype)))
    assert spans.stage("inference").attributes["ml.model.dtype"] == dtype


def test_refresh_after_changes_behind_the_wrappers_back(spans: CapturedSpans) -> None:
    """Parameters replaced behind the wrapper's back are described correctly after refresh()."""
    net = _mlp()
    model = traced_module(net)
    before = torch.__future__.get_overwrite_module_params_on_conversion()
    torch.__future__.set_overwrite_module_params_on_conversion(True)  # .double() makes new Parameters
    try:
        net.double()
    finally:
        torch.__future__.set_overwrite_module_params_on_conversion(before)
    model.refresh()
    model(torch.randn(1, 8, dtype=torch.float64))
    assert spans.stage("inference").attributes["ml.model.dtype"] == "float64"


def test_module_methods_keep_the_wrapper() -> None:
    """eval()/train()/to() return the wrapper; other attributes pass through to the module."""
    net = _mlp()
    model = traced_module(net)
    assert model.eval() is model and model.train(False) is model and model.to("cpu") is model
    assert model.module is net and model.training is False
    assert list(model.state_dict()) == list(net.state_dict())  # no "module." prefix: state dicts load as before
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in net.parameters())
    assert "traced_module(" in repr(model)


def test_keyword_inputs_and_batch_dim(spans: CapturedSpans) -> None:
    """The batch size comes from the first tensor, keyword arguments included, along batch_dim."""

    class Seq(nn.Module):  # type: ignore[misc]
        def forward(self, *, tokens: Any) -> Any:
            return tokens.float().mean(dim=0)

    traced_module(Seq(), batch_dim=1)(tokens=torch.ones(7, 4, dtype=torch.long))
    attrs = spans.stage("inference").attributes
    assert attrs["ml.batch.size"] == 4 and attrs["ml.model.dtype"] == "int64"


def test_errors_are_recorded_and_reraised(spans: CapturedSpans) -> None:
    """A shape error propagates unchanged and marks the span ERROR with error.type."""
    with pytest.raises(RuntimeError):
        traced_module(_mlp())(torch.randn(2, 5))
    span = spans.stage("inference")
    assert span.status.status_code is StatusCode.ERROR and span.attributes["error.type"] == "RuntimeError"


def test_rejects_what_is_not_a_module() -> None:
    """Wrapping a plain function is a TypeError naming its type."""
    with pytest.raises(TypeError, match="function"):
        traced_module(lambda x: x)


def test_span_waits_for_the_device_and_keeps_the_host_end_time(spans: CapturedSpans) -> None:
    """A timed span ends once its events complete, with device and host ms and the call's end time."""
    device = SimDevice()
    timer = _sim_timer(device)
    model = traced_module(_SimWork(device, ms=3.25), timer=timer)
    model(torch.randn(6, 4))
    returned = time.time_ns()
    assert spans.stages("inference") == []  # still open: the device has not reached the end event
    time.sleep(0.01)
    device.run()
    assert timer.resolver.poll() == 1
    span = spans.stage("inference")
    assert span.attributes["ml.gpu.device_time_ms"] == 3.25
    assert span.attributes["ml.gpu.host_time_ms"] > 0
    assert span.end_time is not None and span.end_time <= returned


def test_back_to_back_calls_each_get_their_own_device_time(spans: CapturedSpans) -> None:
    """Eight queued calls resolve in order with their own device time; the pool is reused afterwards."""
    device = SimDevice()
    timer = _sim_timer(device)
    model = traced_module(_SimWork(device, ms=2.0), timer=timer)
    for _ in range(8):
        model(torch.randn(1, 4))
    assert timer.pool(torch.device("cpu")).in_flight == 8
    timer.flush(timeout_s=5)
    assert [s.attributes["ml.gpu.device_time_ms"] for s in spans.stages("inference")] == [2.0] * 8
    for _ in range(8):
        model(torch.randn(1, 4))
        timer.flush(timeout_s=5)
    assert timer.pool(torch.device("cpu")).created == 8  # no new events after the first burst


def test_an_exhausted_pool_leaves_the_call_untimed(spans: CapturedSpans) -> None:
    """Past the pool limit the call still runs and its span ends at once, marked pool_exhausted."""
    device = SimDevice()
    model = traced_module(_SimWork(device, ms=1.0), timer=_sim_timer(device, pool_limit=1))
    model(torch.randn(1, 4))
    model(torch.randn(1, 4))
    span = spans.stage("inference")  # the second call's; the first still waits for the device
    assert span.attributes["ml.gpu.timing"] == "pool_exhausted"


def test_a_failing_timed_call_ends_its_span_and_frees_the_pair(spans: CapturedSpans) -> None:
    """An error inside a timed call ends the span at once and gives the event pair up."""
    device = SimDevice()
    timer = _sim_timer(device)
    with pytest.raises(RuntimeError):
        traced_module(_SimWork(device, ms=1.0), timer=timer)(torch.randn(1, 7))
    assert spans.stage("inference").status.status_code is StatusCode.ERROR
    assert timer.pool(torch.device("cpu")).in_flight == 0


def test_sampled_out_calls_record_nothing(spans: CapturedSpans) -> None:
    """Under an unsampled parent the call runs without events or attributes."""
    device = SimDevice()
    timer = _sim_timer(device)
    parent = NonRecordingSpan(SpanContext(trace_id=1, span_id=2, is_remote=True, trace_flags=TraceFlags(0)))
    token = otel_context.attach(trace.set_span_in_context(parent))
    try:
        traced_module(_SimWork(device, ms=1.0), timer=timer)(torch.randn(1, 4))
    finally:
        otel_context.detach(token)
    assert device.created == 0 and len(spans) == 0


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_device_time_is_recorded_without_a_sync(spans: CapturedSpans) -> None:
    """On a real GPU the span gets device time from CUDA events once the work completes."""
    from mltrace_torch import flush

    net = nn.Sequential(*[nn.Linear(2048, 2048) for _ in range(4)]).cuda().half().eval()
    model = traced_module(net)
    with torch.inference_mode():
        model(torch.randn(512, 2048, device="cuda", dtype=torch.half))
    assert flush(timeout_s=30)
    attrs = spans.stage("inference").attributes
    assert attrs["ml.model.device"].startswith("cuda") and attrs["ml.model.dtype"] == "float16"
    assert attrs["ml.gpu.device_time_ms"] > 0 and attrs["ml.gpu.host_time_ms"] > 0
    assert attrs["ml.output.kind"] == "tensor" and "ml.output.mean" not in attrs


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "int64", "bool"])
@pytest.mark.parametrize("shape", [(1, 64), (5, 3), (7,)])
def test_cpu_tensor_summary_is_the_tensor_summary(spans: CapturedSpans, dtype: str, shape: tuple[int, ...]) -> None:
    """A CPU tensor summarised through its numpy view (the fast path) records exactly what
    mltrace.summaries records for the tensor itself: every key and value."""
    from mltrace.spans._guarded import summary_attributes
    from mltrace.summaries import _memo

    torch.manual_seed(1)
    x = (torch.randn(*shape) * 3).to(getattr(torch, dtype))
    traced_module(nn.Identity())(x)
    recorded = {k: v for k, v in spans.stage("inference").attributes.items() if k.startswith("ml.input.")}
    _memo.clear()
    expected = summary_attributes("ml.input.", x)
    assert expected["ml.input.kind"] == "tensor" and expected["ml.input.device"] == "cpu"
    assert {k: (list(v) if isinstance(v, tuple) else v) for k, v in recorded.items()} == {
        k: (list(v) if isinstance(v, tuple) else v) for k, v in expected.items()
    }


def test_inside_a_deferred_request_the_span_is_deferred_and_the_same(spans: CapturedSpans) -> None:
    """Inside a request recorded with deferred spans the module's span is a light one under the
    server span, handed over after the request with the same attributes as a span made outside."""
    net, x = _mlp(), torch.randn(1, 8)
    model = traced_module(net, name="ranker")
    model(x)
    outside = dict(spans.stage("inference").attributes)
    spans.clear()
    with deferred_request("POST /rank") as request:
        with torch.inference_mode():
            model(x)
        assert spans.stages("inference") == []  # nothing handed to the SDK during the request
    span = spans.stage("inference")
    assert span.parent is not None and span.parent.span_id == request.span.get_span_context().span_id
    assert dict(span.attributes) == outside

