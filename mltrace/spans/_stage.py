"""Where a stage span is made: ``mltrace.stage(...)`` as a context manager (sync or async)."""

from __future__ import annotations

from collections.abc import Mapping
from types import TracebackType
from typing import Any

from opentelemetry import trace
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind

from .. import semconv
from ..drift import DriftScorer  # at run time: get_type_hints(mltrace.inference) resolves
from ..genai import _semconv as gsc
from ..genai._watch import active
from . import _deferred
from ._deferred import SPAN_KEY, DeferredSpan
from ._guarded import record_attributes, record_drift, record_drift_output, record_summary
from ._lifetime import QUICK, Lifetime, Scope, get_current
from ._tracer import start_child


def stage_attributes(
    name: str,
    *,
    model: str | None = None,
    version: str | None = None,
    framework: str | None = None,
    store: str | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The static attributes of a stage span (computed once per decorator, not per call)."""
    attrs: dict[str, Any] = {semconv.ML_STAGE: name}
    if model is not None:
        attrs[semconv.ML_MODEL_NAME] = str(model)
    if version is not None:
        attrs[semconv.ML_MODEL_VERSION] = str(version)
    if framework is not None:
        attrs[semconv.ML_MODEL_FRAMEWORK] = str(framework)
    if store is not None:
        attrs[semconv.ML_FEATURE_STORE_NAME] = str(store)
    if attributes:
        attrs.update(attributes)
    return attrs


class Stage:
    """A running stage: what ``with mltrace.stage(...) as s`` gives you."""

    __slots__ = ("_drift", "span")

    def __init__(self, span: Span, drift: DriftScorer | None = None) -> None:
        self.span = span
        self._drift = drift

    @property
    def trace_id(self) -> str:
        return format(self.span.get_span_context().trace_id, "032x")

    @property
    def span_id(self) -> str:
        return format(self.span.get_span_context().span_id, "016x")

    def is_recording(self) -> bool:
        return self.span.is_recording()

    def record_input(self, obj: object) -> None:
        """Summarise ``obj`` as this stage's input (``ml.input.*``), and score drift if set."""
        record_summary(self.span, semconv.ML_INPUT_PREFIX, obj)
        if self._drift is not None:
            record_drift(self.span, self._drift, obj)

    def record_output(self, obj: object) -> None:
        """Summarise ``obj`` as this stage's output (``ml.output.*``)."""
        record_summary(self.span, semconv.ML_OUTPUT_PREFIX, obj)
        if self._drift is not None:
            record_drift_output(self.span, self._drift, obj)

    def set_attribute(self, key: str, value: Any) -> None:
        record_attributes(self.span, {key: value})

    def set_attributes(self, attributes: Mapping[str, Any]) -> None:
        record_attributes(self.span, attributes)

    def add_event(self, name: str, attributes: Mapping[str, Any] | None = None) -> None:
        if self.span.is_recording():
            self.span.add_event(name, dict(attributes or {}))

    # -- generation (``@mltrace.inference(kind="generate")``): what only the function knows ------
    # Inside a generate stage these go to the running generation (span and metrics, sampled or
    # not); elsewhere they set the same attributes on the span directly.

    def generation_started(self) -> None:
        """The wait for a slot (a semaphore, a batch) is over: the time since the stage began is
        its queue time (``ml.generate.queue_time``). Only the first call counts."""
        watch = active(self.span)
        if watch is not None:
            watch.generation_started()

    def set_queue_time(self, seconds: float) -> None:
        """Queue time measured by the caller (a batcher that knows when the request was admitted)."""
        watch = active(self.span)
        if watch is not None:
            watch.queue_ns = int(seconds * 1e9)
        else:
            record_attributes(self.span, {gsc.ML_GENERATE_QUEUE_TIME: float(seconds)})

    def set_input_tokens(self, n: int) -> None:
        """Tokens in (the prompt's length in tokens)."""
        watch = active(self.span)
        if watch is not None:
            watch.input_tokens = int(n)
        else:
            record_attributes(self.span, {gsc.ML_GENERATE_INPUT_TOKENS: int(n), gsc.GEN_AI_USAGE_INPUT_TOKENS: int(n)})

    def set_output_tokens(self, n: int) -> None:
        """Tokens out, when one yielded item is not one token (items are counted otherwise)."""
        watch = active(self.span)
        if watch is not None:
            watch.output_tokens = int(n)
        else:
            record_attributes(
                self.span, {gsc.ML_GENERATE_OUTPUT_TOKENS: int(n), gsc.GEN_AI_USAGE_OUTPUT_TOKENS: int(n)}
            )

    def set_finish_reason(self, reason: str) -> None:
        """Why generation stopped (``stop``, ``length``, ``content_filter``, ...)."""
        watch = active(self.span)
        if watch is not None:
            watch.finish_reason = str(reason)
        else:
            reason = str(reason)
            record_attributes(
                self.span, {gsc.ML_GENERATE_FINISH_REASON: reason, gsc.GEN_AI_RESPONSE_FINISH_REASONS: (reason,)}
            )

    def set_response_model(self, model: str) -> None:
        """The model that actually answered (``gen_ai.response.model``), when not the one asked for."""
        watch = active(self.span)
        if watch is not None:
            watch.response_model = str(model)
        else:
            record_attributes(self.span, {gsc.GEN_AI_RESPONSE_MODEL: str(model)})

    def record_prompt(self, text: str) -> None:
        """The prompt as text, when the function's input is not (chat messages rendered by a
        template, token ids): its length and fingerprint go on the span; the text itself only
        with payload capture on, redacted."""
        watch = active(self.span)
        if watch is not None:
            watch.prompt = str(text)


class StageScope(Scope[Stage], Lifetime):
    """Context manager (``with`` and ``async with``) that runs one stage span.

    Each ``with`` makes a new span; the object may be reused but not shared across
    concurrent requests while inside.
    """

    __slots__ = ("_attrs", "_drift", "_kind", "_name")

    def __init__(
        self,
        name: str,
        attrs: dict[str, Any],
        *,
        kind: SpanKind = SpanKind.INTERNAL,
        drift: DriftScorer | None = None,
    ) -> None:
        self._name = name
        self._attrs = attrs
        self._kind = kind
        self._drift = drift
        self.started = False  # the Lifetime's fields are this scope's: no object per ``with``

    def _open(self) -> Stage:
        context = get_current()
        parent = context.get(SPAN_KEY)  # type: ignore[arg-type]
        if type(parent) is NonRecordingSpan and QUICK:  # see _lifetime.QUICK
            sc = parent._context
            if type(sc) is SpanContext and sc[5] and not sc[3] & 1:
                # start_child's sampled-out answer (drift or not: the Stage scores it when told):
                # the parent, not started, nothing attached.
                self.span, self.started, self.token = parent, False, None
                return Stage(parent, self._drift)
        if _deferred._enabled:  # start_child's deferred path, the context looked up once (~1 µs)
            parent = trace.get_current_span(context)
            if parent.is_recording():
                span = _deferred.start_stage(self._name, self._attrs, None, context, parent, self._kind)
                if type(span) is DeferredSpan:
                    self.open(span, True, context)
                    return Stage(span, self._drift)
                if span is not None:  # the sampler dropped it: as start_child would have it
                    self.open(span, True)
                    return Stage(span, self._drift)
        span, started = start_child(self._name, self._attrs, self._kind)
        self.open(span, started)
        return Stage(span, self._drift)

    def _close(self, exc: BaseException | None) -> None:
        self.close(exc)

    # Scope's, one call fewer each way (a sampled-out request's stage: ~0.1 µs of its ~1.1);
    # __enter__ is _open itself (no subclass here overrides _open)
    __enter__ = _open

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.started:
            self.close(exc)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.started:
            self.close(exc)


def stage(
    name: str,
    *,
    model: str | None = None,
    version: str | None = None,
    framework: str | None = None,
    store: str | None = None,
    drift: DriftScorer | None = None,
    attributes: Mapping[str, Any] | None = None,
) -> StageScope:
    """A stage span for any stage name: ``with mltrace.stage("postprocess") as s: ...``.

    The span is named after the stage, carries ``ml.stage`` and is a child of the current span
    (the request's server span when called inside a traced request).
    """
    if not isinstance(name, str) or not name:
        raise TypeError("stage name must be a non-empty string")
    if model is None and version is None and framework is None and store is None and not attributes:
        # the common ``stage("name")``: stage_attributes' answer without its keyword call, and no
        # keyword argument to StageScope (together ~0.2 µs of a sampled-out stage's ~1.2)
        attrs: dict[str, Any] = {semconv.ML_STAGE: name}
        return StageScope(name, attrs) if drift is None else StageScope(name, attrs, drift=drift)
    attrs = stage_attributes(
        name, model=model, version=version, framework=framework, store=store, attributes=attributes
    )
    return StageScope(name, attrs, drift=drift)
