"""Timing and token accounting of one generation: ``@mltrace.inference(kind="generate")``.

The decorator wraps a generator (sync or async) whose yielded items are output tokens (or
chunks: one item counts as one token unless the function says otherwise). :class:`GenerateSpec`
is built once per decorated function; :class:`Watch` follows one call:

- **TTFT** runs from the request's start to the moment the first item left the function. The
  request's start is, in order: a ``mltrace.request_start_ns`` context value (for a middleware
  that provides it, sampled or not), the start of the enclosing SERVER span, the start of the
  enclosing span, or the stage's own start; ``ml.generate.time_to_first_token.from`` says which.
- **time per output token** is the mean gap between items after the first, ``(last - first) /
  (n - 1)`` (the GenAI conventions' definition); the longest gap is recorded beside it.
- **queue time** is what the function reports: ``mltrace.current_stage().generation_started()``
  once it got its slot (a semaphore, a batch), or ``set_queue_time(seconds)``.
- **tokens in** come from the input when it is token ids (a sequence of ints), else from
  ``set_input_tokens``; **tokens out** count items unless ``set_output_tokens`` says otherwise.
- **finish reason**: ``set_finish_reason(...)``; else ``stop`` (ran to its end), ``error`` (raised)
  or ``cancelled`` (closed or cancelled before its end: in a served request, the client went
  away, which also sets ``ml.generate.client_disconnected``).

Prompt and completion text never go on spans: their length and a fingerprint do. The text is
kept only when payload capture is on (``configure(capture_payloads=...)``), redacted by its rules
and stored by reference like any captured payload (``kind="generation"``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from time import time_ns
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import Span, SpanKind

from .._settings import SETTINGS
from ..summaries._fingerprint import short
from . import _metrics
from . import _semconv as sc

_WATCH_KEY = otel_context.create_key("mltrace.generation")
REQUEST_START_KEY = "mltrace.request_start_ns"  # context value: the request's arrival, time_ns()
_MAX_CAPTURED_CHARS = 1 << 20  # completion text kept for capture, at most (then cut by the rules)


class GenerateSpec:
    """The static part of a generate stage: its GenAI attributes, built once per decorator."""

    __slots__ = ("metric_attrs", "span_attrs")

    def __init__(self, *, model: str | None, attributes: Mapping[str, Any] | None = None) -> None:
        latest = sc.latest_experimental()
        attrs: dict[str, Any] = {
            sc.ML_GENERATE_KIND: "generate",
            sc.GEN_AI_OPERATION_NAME: "text_completion",
            sc.provider_key(latest): sc.PROVIDER_OTHER,
        }
        if model is not None:
            attrs[sc.GEN_AI_REQUEST_MODEL] = str(model)
        user = dict(attributes or {})
        # A provider given under either name is moved to the name this mode emits.
        for key in (sc.GEN_AI_SYSTEM, sc.GEN_AI_PROVIDER_NAME):
            if key in user:
                attrs[sc.provider_key(latest)] = user.pop(key)
        attrs.update({k: v for k, v in user.items() if k.startswith("gen_ai.")})
        self.span_attrs = attrs
        self.metric_attrs = {
            k: v for k, v in attrs.items()
            if k in (sc.GEN_AI_OPERATION_NAME, sc.GEN_AI_REQUEST_MODEL, sc.GEN_AI_SYSTEM, sc.GEN_AI_PROVIDER_NAME)
        }

    def begin(self, span: Span, started: bool, x: Any) -> Watch | None:
        """A watch for one call; ``None`` (the generation runs unwatched) if making it failed."""
        try:
            return Watch(self, span, started and span.is_recording(), x)
        except Exception as exc:  # never into the request
            _failed(span, "generation start", exc)
            return None


def _request_start(now: int) -> tuple[int, str]:
    given = otel_context.get_value(REQUEST_START_KEY)
    if isinstance(given, int) and 0 < given <= now:
        return given, "request"
    parent = trace.get_current_span()
    start = getattr(parent, "start_time", None)
    if parent.is_recording() and isinstance(start, int) and 0 < start <= now:
        return start, "request" if getattr(parent, "kind", None) is SpanKind.SERVER else "parent"
    return now, "stage"


def _prompt_of(x: Any) -> tuple[str | None, int | None]:
    """``(prompt text, input tokens)`` as far as the input shows them: a string is the prompt;
    a sequence of ints is token ids; chat messages (dicts with ``content``) are joined."""
    if isinstance(x, str):
        return x, None
    if isinstance(x, list | tuple) and x:
        if all(type(v) is int for v in x[:64]) and all(type(v) is int for v in x):
            return None, len(x)
        if all(isinstance(m, Mapping) and isinstance(m.get("content"), str) for m in x):
            return "\n".join(m["content"] for m in x), None
    dtype = getattr(x, "dtype", None)
    if dtype is not None and getattr(dtype, "kind", "") in ("i", "u") and getattr(x, "ndim", 0) == 1:
        return None, int(x.shape[0])
    return None, None


def _text_summary(text: str) -> tuple[int, str]:
    return len(text), short(hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest())


class Watch:
    """One generation in flight: fed by the decorator's loop, told things through the Stage API."""

    __slots__ = (
        "_completion", "_hasher", "_text_len", "disconnected", "error_type", "finish_reason",
        "input_tokens", "max_gap", "n", "output_tokens", "prompt", "queue_ns", "recording",
        "response_model", "span", "spec", "t_first", "t_prev", "t_ref", "t_stage", "ttft_from",
    )

    def __init__(self, spec: GenerateSpec, span: Span, recording: bool, x: Any) -> None:
        now = time_ns()
        self.spec, self.span, self.recording = spec, span, recording
        self.t_stage = now
        self.t_ref, self.ttft_from = _request_start(now)
        self.t_first = self.t_prev = 0
        self.n = self.max_gap = 0
        self.queue_ns: int | None = None
        self.prompt, self.input_tokens = _prompt_of(x)
        self.output_tokens: int | None = None
        self.finish_reason: str | None = None
        self.response_model: str | None = None
        self.disconnected = False
        self.error_type: str | None = None
        self._hasher: Any = None
        self._text_len = 0
        self._completion: list[str] | None = [] if recording and _capturing() else None

    def in_context(self, ctx: Context | None) -> Context:
        """``ctx`` (or the current context) with this watch reachable by ``current_stage()``."""
        return otel_context.set_value(_WATCH_KEY, self, ctx if ctx is not None else otel_context.get_current())

    # -- fed by the decorator --------------------------------------------------------------------
    def item(self, item: Any) -> None:
        now = time_ns()
        if self.n:
            gap = now - self.t_prev
            if gap > self.max_gap:
                self.max_gap = gap
        else:
            self.t_first = now
        self.t_prev = now
        self.n += 1
        if self.recording and isinstance(item, str):
            if self._hasher is None:
                self._hasher = hashlib.sha256()
            self._hasher.update(item.encode("utf-8", "surrogatepass"))
            self._text_len += len(item)
            if self._completion is not None and self._text_len <= _MAX_CAPTURED_CHARS:
                self._completion.append(item)

    def failed(self, exc: BaseException, closed_early: bool) -> None:
        if closed_early:
            self.disconnected = True
        else:
            cls = type(exc)
            name = cls.__qualname__
            self.error_type = name if cls.__module__ == "builtins" else f"{cls.__module__}.{name}"

    def end(self) -> None:
        """Put the figures on the span (when it records) and into the metrics (always); never raises."""
        try:
            self._end()
        except Exception as exc:
            _failed(self.span, "generation end", exc)

    def _end(self) -> None:
        now = time_ns()
        out = self.output_tokens if self.output_tokens is not None else self.n
        finish = self.finish_reason or (
            sc.FINISH_CANCELLED if self.disconnected else sc.FINISH_ERROR if self.error_type else sc.FINISH_STOP
        )
        ttft = (self.t_first - self.t_ref) / 1e9 if self.n else None
        tpot = (self.t_prev - self.t_first) / (self.n - 1) / 1e9 if self.n > 1 else None
        max_gap = self.max_gap / 1e9 if self.n > 1 else None
        queue = self.queue_ns / 1e9 if self.queue_ns is not None else None
        if self.recording:
            self._record_span(ttft, tpot, max_gap, queue, out, finish)
        ok = self.error_type is None and not self.disconnected
        attrs = dict(self.spec.metric_attrs)
        response_model = self.response_model or attrs.get(sc.GEN_AI_REQUEST_MODEL)
        if response_model:
            attrs[sc.GEN_AI_RESPONSE_MODEL] = response_model
        if self.error_type is not None:
            attrs["error.type"] = self.error_type
        # Where TTFT and duration were measured from: a sampled-out request has no server span
        # start to read, so its figures start at the stage; the series stay apart.
        attrs[sc.ML_GENERATE_TTFT_FROM] = self.ttft_from
        _metrics.record(
            attrs, ttft=ttft if ok else None, tpot=tpot if ok else None, max_gap=max_gap if ok else None,
            duration=(now - self.t_ref) / 1e9, queue=queue, input_tokens=self.input_tokens,
            output_tokens=out, disconnected=self.disconnected,
        )

    def _record_span(
        self, ttft: float | None, tpot: float | None, max_gap: float | None, queue: float | None, out: int, finish: str
    ) -> None:
        from ..spans._guarded import note_failure, record_attributes

        attrs: dict[str, Any] = {
            sc.ML_GENERATE_OUTPUT_TOKENS: out,
            sc.GEN_AI_USAGE_OUTPUT_TOKENS: out,
            sc.ML_GENERATE_FINISH_REASON: finish,
            sc.GEN_AI_RESPONSE_FINISH_REASONS: (finish,),
            sc.ML_GENERATE_TTFT_FROM: self.ttft_from,
        }
        model = self.response_model or self.spec.span_attrs.get(sc.GEN_AI_REQUEST_MODEL)
        if model is not None:
            attrs[sc.GEN_AI_RESPONSE_MODEL] = model
        if ttft is not None:
            attrs[sc.ML_GENERATE_TTFT] = ttft
        if tpot is not None:
            attrs[sc.ML_GENERATE_TPOT] = tpot
        if max_gap is not None:
            attrs[sc.ML_GENERATE_TPOT_MAX] = max_gap
        if queue is not None:
            attrs[sc.ML_GENERATE_QUEUE_TIME] = queue
        if self.input_tokens is not None:
            attrs[sc.ML_GENERATE_INPUT_TOKENS] = self.input_tokens
            attrs[sc.GEN_AI_USAGE_INPUT_TOKENS] = self.input_tokens
        if self.disconnected:
            attrs[sc.ML_GENERATE_CLIENT_DISCONNECTED] = True
        if self.prompt is not None:
            attrs[sc.ML_GENERATE_PROMPT_LENGTH], attrs[sc.ML_GENERATE_PROMPT_FINGERPRINT] = _text_summary(self.prompt)
        if self._hasher is not None:
            attrs[sc.ML_GENERATE_COMPLETION_LENGTH] = self._text_len
            attrs[sc.ML_GENERATE_COMPLETION_FINGERPRINT] = short(self._hasher.digest())
        record_attributes(self.span, attrs)
        if self._completion is not None:
            try:
                _capture(self.span, self.prompt, "".join(self._completion))
            except Exception as exc:
                note_failure(self.span, "capture generation", exc)

    # -- told by the function (mltrace.current_stage()) ------------------------------------------
    def generation_started(self) -> None:
        if self.queue_ns is None:
            self.queue_ns = time_ns() - self.t_stage


def _failed(span: Span, where: str, exc: BaseException) -> None:
    from ..spans._guarded import note_failure

    note_failure(span, where, exc)


def _capturing() -> bool:
    from ..privacy import PayloadCapture

    return isinstance(SETTINGS.payload_capture, PayloadCapture)


def _capture(span: Span, prompt: str | None, completion: str) -> None:
    from ..privacy import PayloadCapture

    capture = SETTINGS.payload_capture
    if isinstance(capture, PayloadCapture):
        capture.capture({"prompt": prompt, "completion": completion}, kind="generation", span=span)


def active(span: Span) -> Watch | None:
    """The generation running under ``span`` in this context, if any."""
    watch = otel_context.get_value(_WATCH_KEY)
    if isinstance(watch, Watch) and watch.span is span:
        return watch
    return None
