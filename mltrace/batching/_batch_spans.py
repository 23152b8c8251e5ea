"""Tracing for batched inference, for any batcher: members, the batch span and the links.

A batch serves many requests, each with its own trace. Attaching the batch to one request's
trace (the first to arrive, or whichever task happens to run it) hides it from every other
request. Here instead:

* each request's trace gets a ``batch_wait`` span (from joining the queue until its batch starts)
  and an ``inference`` span (the batch's run time) carrying ``ml.batch.size``,
  ``ml.batch.index`` and a link to the batch span;
* the batch's one ``inference`` span is the root of a trace of its own, carries
  ``ml.batch.size`` and links to every member request's span; spans made by the batch function
  are its children.

:func:`batch_member` is called on the request side, :func:`record_batch` (or the
:func:`traced_batch` decorator) on the batch side. :class:`MicroBatcher` uses the same two.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanContext

from .. import semconv
from .._errors import MLTraceError
from ..spans import record_error
from ..spans._guarded import Guard, record_attributes, record_summary
from ..spans._lifetime import Lifetime, Scope
from ..spans._stage import stage_attributes
from ..spans._tracer import TRACER

In = TypeVar("In")
R = TypeVar("R")

# The stage of the span covering a request's wait for its batch to start. A stage of its own
# (not "inference") so that per-stage breakdowns show queueing apart from compute.
STAGE_BATCH_WAIT = "batch_wait"
# Position of a request within its batch; on member spans only, never on the batch span.
ML_BATCH_INDEX = "ml.batch.index"
# Why a MicroBatcher batch started: "full", "timeout" (max_wait_ms reached) or "close".
ML_BATCH_TRIGGER = "ml.batch.trigger"

_WAIT_ATTRS = {semconv.ML_STAGE: STAGE_BATCH_WAIT}


class BatchSizeError(MLTraceError, ValueError):
    """A batch function returned a different number of outputs than it was given inputs."""


class BatchMember(Generic[In]):
    """One request's place in a batch: its input, its trace context and its ``batch_wait`` span.

    Made by :func:`batch_member` inside the request. A member that will not be batched after
    all should be :meth:`close`-d so that its ``batch_wait`` span ends.
    """

    __slots__ = ("_span", "_wait", "context", "input", "link")

    def __init__(
        self, value: In, context: otel_context.Context, link: SpanContext | None, wait: Span | None
    ) -> None:
        self.input = value
        self.context = context
        self.link = link
        self._wait = wait
        self._span: Span | None = None

    @property
    def span(self) -> Span:
        """The member's ``inference`` span while its batch runs (a non-recording one otherwise)."""
        return self._span if self._span is not None else trace.INVALID_SPAN

    def close(self, reason: str = "abandoned") -> None:
        """End the ``batch_wait`` span now if it is still open (for a member never batched)."""
        wait, self._wait = self._wait, None
        if wait is not None:
            if wait.is_recording():
                wait.add_event("batch_wait.ended", {"reason": reason})
            wait.end()

    def _start(self, batch: SpanContext, name: str, attrs: dict[str, Any], start_ns: int) -> None:
        wait, self._wait = self._wait, None
        if wait is not None:
            wait.end(end_time=start_ns)
        if self.link is None:  # not inside a (sampled) trace: no trace to show the inference in
            return
        self._span = TRACER.get().start_span(
            name,
            context=self.context,
            attributes=attrs,
            links=[Link(batch)] if batch.is_valid else None,
            start_time=start_ns,
        )

    def _end(self, exc: BaseException | None) -> None:
        span, self._span = self._span, None
        if span is None:
            return
        if exc is not None:
            record_error(span, exc)
        span.end()


def batch_member(value: In) -> BatchMember[In]:
    """Join a batch from inside a request: capture its trace context and start ``batch_wait``.

    Hand the member to your batcher; the batch side passes members to :func:`record_batch` or
    to a :func:`traced_batch` function. Outside any trace, or in a trace that was sampled out,
    no span is made and the batch span gets no link to it (it would point at nothing).
    """
    ctx = otel_context.get_current()
    parent = trace.get_current_span(ctx).get_span_context()
    if not (parent.is_valid and parent.trace_flags.sampled):
        return BatchMember(value, ctx, None, None)
    wait = TRACER.get().start_span(STAGE_BATCH_WAIT, context=ctx, attributes=_WAIT_ATTRS)
    return BatchMember(value, ctx, parent, wait)


class Batch:
    """A running batch: what ``with mltrace.record_batch(members) as batch`` gives you."""

    __slots__ = ("members", "record_output", "span")

    def __init__(self, span: Span, members: Sequence[BatchMember[Any]], record_output: bool) -> None:
        self.span = span
        self.members = members
        self.record_output = record_output

    @property
    def size(self) -> int:
        return len(self.members)

    @property
    def inputs(self) -> list[Any]:
        return [m.input for m in self.members]

    def set_attribute(self, key: str, value: Any) -> None:
        """Set an attribute on the batch span (not on the members' spans)."""
        record_attributes(self.span, {key: value})

    def record_outputs(self, outputs: Sequence[Any]) -> None:
        """Summarise ``outputs[i]`` on member ``i``'s span (``ml.output.*``), when recording."""
        if not self.record_output:
            return
        with Guard(self.span, "batch outputs"):  # a wrong count is noted on the batch span, never raised
            if len(outputs) != len(self.members):
                raise BatchSizeError(f"{len(outputs)} outputs for a batch of {len(self.members)}")
            for member, out in zip(self.members, outputs, strict=True):
                record_summary(member.span, semconv.ML_OUTPUT_PREFIX, out)


class BatchScope(Scope[Batch]):
    """Context manager (``with`` or ``async with``) around one batch run; see :func:`record_batch`."""

    __slots__ = ("_attrs", "_batch", "_life", "_name", "_record_input", "_record_output", "members")

    def __init__(
        self,
        members: Sequence[BatchMember[Any]],
        name: str,
        attrs: dict[str, Any],
        *,
        record_input: bool,
        record_output: bool,
    ) -> None:
        self.members = members
        self._name = name
        self._attrs = attrs
        self._record_input = record_input
        self._record_output = record_output
        self._batch: Batch | None = None
        self._life: Lifetime | None = None

    def _open(self) -> Batch:
        n = len(self.members)
        start_ns = time.time_ns()
        links = [Link(m.link) for m in self.members if m.link is not None]
        # A root of its own: the batch belongs to no one request's trace.
        span = TRACER.get().start_span(
            self._name,
            context=otel_context.Context(),
            attributes={**self._attrs, semconv.ML_BATCH_SIZE: n},
            links=links,
            start_time=start_ns,
        )
        batch_ctx = span.get_span_context()
        for i, member in enumerate(self.members):
            member._start(batch_ctx, self._name, {**self._attrs, semconv.ML_BATCH_SIZE: n, ML_BATCH_INDEX: i}, start_ns)
            if self._record_input:
                record_summary(member.span, semconv.ML_INPUT_PREFIX, member.input)
        self._life = Lifetime(span, True, otel_context.Context())  # current in a context of its own
        self._batch = Batch(span, self.members, self._record_output)
        return self._batch

    def _close(self, exc: BaseException | None) -> None:
        life, self._life, self._batch = self._life, None, None
        if life is None:
            return
        try:
            for member in self.members:
                member._end(exc)
        finally:  # the batch span: the exception with its stack (repeat_stack), ended, detached
            life.close(exc, repeat_stack=True)


def record_batch(
    members: Sequence[BatchMember[Any]],
    *,
    stage: str = semconv.STAGE_INFERENCE,
    model: str | None = None,
    version: str | None = None,
    framework: str | None = None,
    attributes: Mapping[str, Any] | None = None,
    record_input: bool = True,
    record_output: bool = True,
) -> BatchScope:
    """Trace one run of a batch made of ``members`` (from :func:`batch_member`).

    ``with mltrace.record_batch(members, model="m") as batch:`` makes the batch span (current
    inside the block, so spans the model makes are its children) and one span per member in the
    member's own trace; ``batch.record_outputs(outputs)`` summarises each member's output. An
    exception leaving the block is recorded on every span and re-raised unchanged.
    """
    if not isinstance(stage, str) or not stage:
        raise TypeError("stage must be a non-empty string")
    attrs = stage_attributes(stage, model=model, version=version, framework=framework, attributes=attributes)
    return BatchScope(list(members), stage, attrs, record_input=record_input, record_output=record_output)


@overload
def traced_batch(fn: Callable[[list[Any]], R], /) -> Callable[[Sequence[BatchMember[Any]]], R]: ...
@overload
def traced_batch(
    *,
    stage: str = ...,
    model: str | None = ...,
    version: str | None = ...,
    framework: str | None = ...,
    attributes: Mapping[str, Any] | None = ...,
    record_input: bool = ...,
    record_output: bool = ...,
) -> Callable[[Callable[[list[Any]], R]], Callable[[Sequence[BatchMember[Any]]], R]]: ...
def traced_batch(fn: Callable[[list[Any]], Any] | None = None, /, **options: Any) -> Any:
    """Decorate a batch function ``fn(inputs) -> outputs`` so that it takes members instead.

    The wrapped function is called with the :class:`BatchMember` objects your batcher
    collected, runs ``fn`` on their inputs inside :func:`record_batch` and returns ``fn``'s
    outputs unchanged. Works on sync and async functions, bare or with options
    (``@mltrace.traced_batch(model="m")``).
    """

    def decorate(f: Callable[[list[Any]], Any]) -> Callable[[Sequence[BatchMember[Any]]], Any]:
        if not callable(f):
            raise TypeError(f"traced_batch decorates a function, not {type(f).__name__}")
        record_batch((), **options)  # validate the options once, now

        if inspect.iscoroutinefunction(f):

            @functools.wraps(f)
            async def async_wrapper(members: Sequence[BatchMember[Any]]) -> Any:
                with record_batch(members, **options) as batch:
                    outputs = await f(batch.inputs)
                    batch.record_outputs(outputs)
                    return outputs

            return async_wrapper

        @functools.wraps(f)
        def wrapper(members: Sequence[BatchMember[Any]]) -> Any:
            with record_batch(members, **options) as batch:
                outputs = f(batch.inputs)
                batch.record_outputs(outputs)
                return outputs

        return wrapper

    return decorate(fn) if fn is not None else decorate

