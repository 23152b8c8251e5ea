"""Test helpers for users and for mltrace's own tests: assert on the spans your code makes.

```python
from mltrace.testing import capture_spans

def test_predict_is_traced(client):
    with capture_spans() as spans:
        client.post("/predict", json={...})
    assert spans.stage("inference").attributes["ml.model.version"] == "3"
```
Spans are captured with OpenTelemetry's in-memory exporter (for tests only; never in serving).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from . import semconv
from .spans import _deferred


class CapturedSpans(Sequence[ReadableSpan]):
    """The finished spans seen while capturing, in the order they ended."""

    def __init__(self, exporter: InMemorySpanExporter) -> None:
        self._exporter = exporter

    @property
    def spans(self) -> tuple[ReadableSpan, ...]:
        return tuple(self._exporter.get_finished_spans())

    def __getitem__(self, index: int) -> ReadableSpan:  # type: ignore[override]
        return self.spans[index]

    def __len__(self) -> int:
        return len(self.spans)

    def named(self, name: str) -> list[ReadableSpan]:
        return [s for s in self.spans if s.name == name]

    def stages(self, name: str | None = None) -> list[ReadableSpan]:
        """Stage spans (those with ``ml.stage``), optionally only stage ``name``."""
        return [
            s
            for s in self.spans
            if s.attributes and semconv.ML_STAGE in s.attributes
            and (name is None or s.attributes[semconv.ML_STAGE] == name)
        ]

    def stage(self, name: str) -> ReadableSpan:
        """The one span of stage ``name``; fails if there is not exactly one."""
        found = self.stages(name)
        if len(found) != 1:
            raise AssertionError(f"expected one {name!r} stage span, found {len(found)}: {self.names()}")
        return found[0]

    def server(self) -> ReadableSpan:
        """The one SERVER span."""
        found = [s for s in self.spans if s.kind is trace.SpanKind.SERVER]
        if len(found) != 1:
            raise AssertionError(f"expected one server span, found {len(found)}: {self.names()}")
        return found[0]

    def names(self) -> list[str]:
        return [s.name for s in self.spans]

    def clear(self) -> None:
        self._exporter.clear()


class _Fanout(SpanProcessor):
    """Installed once on the provider; forwards ended spans to the active captures."""

    def __init__(self) -> None:
        self.targets: list[InMemorySpanExporter] = []
        self.lock = threading.Lock()

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        return None

    def on_end(self, span: ReadableSpan) -> None:
        if not span.context.trace_flags.sampled:
            return
        for exporter in list(self.targets):
            exporter.export((span,))

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


_fanout_lock = threading.Lock()


def _fanout() -> _Fanout:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        from ._configure import configure

        configure(exporter="none")
        provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider)
    with _fanout_lock:
        fan = getattr(provider, "_mltrace_fanout", None)
        if fan is None:
            fan = _Fanout()
            provider.add_span_processor(fan)
            setattr(provider, "_mltrace_fanout", fan)  # noqa: B010
    assert isinstance(fan, _Fanout)
    return fan


@contextmanager
def capture_spans() -> Iterator[CapturedSpans]:
    """Capture every span that ends inside the ``with`` block.

    Uses the global TracerProvider (configuring one with ``exporter="none"`` if none is set).
    """
    fan = _fanout()
    exporter = InMemorySpanExporter()
    with fan.lock:
        fan.targets.append(exporter)
    try:
        yield CapturedSpans(exporter)
    finally:
        with fan.lock:
            fan.targets.remove(exporter)


class DeferredRequest:
    """The request :func:`deferred_request` opened: ``span`` is its server span, ``held`` the spans
    ended so far that wait for the hand-over after the request."""

    def __init__(self, span: trace.Span, request: _deferred._Request) -> None:
        self.span = span
        self._request = request

    @property
    def held(self) -> int:
        return len(self._request.ended)


@contextmanager
def deferred_request(name: str = "POST /predict") -> Iterator[DeferredRequest]:
    """Run the ``with`` block inside a request recorded with deferred spans, as
    :class:`mltrace.MLTraceMiddleware` records one (a light server span made current, stage spans
    held until the request ends): for testing that a wrapper's spans are deferred and handed over
    after the request unchanged. The spans reach the processors when the block is left."""
    before = _deferred.deferred_enabled()
    _deferred.set_deferred(True)
    try:
        server, request = _deferred.start_request_span(name, otel_context.get_current(), SpanKind.SERVER, {})
        if request is None:
            raise RuntimeError("deferred spans need the SDK's TracerProvider as the global provider")
        token = _deferred.enter(request)
        attached = otel_context.attach(trace.set_span_in_context(server))
        try:
            yield DeferredRequest(server, request)
        finally:
            otel_context.detach(attached)
            server.end()
            _deferred.leave(request, token)
    finally:
        _deferred.set_deferred(before)
