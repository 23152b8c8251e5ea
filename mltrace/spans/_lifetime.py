"""One span's lifetime, written once: start, current while the work runs, error or output, end.

Every place mltrace runs a span around someone else's code goes through here:

* :class:`Lifetime` -- the core: the span is made current (attached) when it started, and
  :meth:`Lifetime.close` records an exception (status ERROR, event, ``error.type``), ends the
  span and detaches. A sampled-out span (``started`` false) costs nothing at either end.
* :class:`Scope` -- ``with`` / ``async with`` for a lifetime (``mltrace.stage``'s
  :class:`~mltrace.spans.StageScope`, ``mltrace.record_batch``'s ``BatchScope``): subclasses say
  how the span starts (``_open``) and what ending adds (``_close``).
* :class:`Calls` / :class:`AsyncCalls` -- each call of a decorated sync / async function:
  ``enter``, then ``returned`` or ``failed`` (no object per call: see :class:`Calls`).
* :class:`Stream` -- one run of a decorated generator or async generator: current only while the
  function makes an item (``with stream:`` around each step), items counted, a consumer that
  stops early told apart from an error, ended in a copied context (see :meth:`Stream.end`).

The wrappers in ``_decorators.py`` then differ only in how they call (``await`` or not) and
iterate (``send``/``throw`` or ``asend``/``athrow``). The user's own function is never called
from inside this module's frames (the helpers run before and after it, not around it), so a
decorated recursive function keeps one frame per level, and its exceptions leave unchanged: they
are recorded, then re-raised by the wrapper (or pass through ``__exit__``, which returns None).
"""

from __future__ import annotations

import asyncio
import contextvars
import sys
import threading
from collections.abc import Generator
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, TraceFlags

from .. import semconv
from ._deferred import _TUPLE_CONTEXT, SPAN_KEY, DeferredSpan
from ._guarded import record_attributes, record_drift_output, record_error

if TYPE_CHECKING:
    from ..genai._watch import Watch
    from ._decorators import _Spec


get_current = otel_context.get_current  # a module global: one attribute lookup less per stage call


def _dropped_reading_holds() -> bool:
    """Whether the sampled-out test the stage wrappers inline holds: a ``NonRecordingSpan`` keeps
    its ``SpanContext`` in ``_context`` (what ``get_span_context`` returns), a SpanContext is the
    tuple ``_deferred`` checked (``[3]`` the trace flags, ``[5]`` is_valid), and the current span
    is read under ``SPAN_KEY``. Else the wrappers take the general path only."""
    try:
        dropped = SpanContext(5, 6, is_remote=False, trace_flags=TraceFlags(0))
        kept = SpanContext(5, 6, is_remote=False, trace_flags=TraceFlags(1))
        span = NonRecordingSpan(dropped)
        return (
            _TUPLE_CONTEXT and SPAN_KEY is not None and span._context is dropped is span.get_span_context()
            and dropped[5] is dropped.is_valid is True and not dropped[3] & 1 and kept[3] & 1 == 1
            and not trace.INVALID_SPAN_CONTEXT[5]
        )
    except Exception:  # pragma: no cover - an API that changed its insides
        return False


# The sampled-out request's stage, the path every stage call of a dropped request takes: the
# current span (read from the context under SPAN_KEY) is a NonRecordingSpan whose context is valid
# and not sampled, and the stage has no drift scorer. Then nothing is started, attached or
# recorded (``_Spec.start_under``'s first branch, ``start_child``'s sampled-out answer), so the
# wrappers call the function straight away (keeping only the nesting count) instead of through
# Calls.enter's lookups and returned(): inlined as
#
#     parent = context.get(SPAN_KEY)
#     if type(parent) is NonRecordingSpan and QUICK:
#         sc = parent._context
#         if type(sc) is SpanContext and sc[5] and not sc[3] & 1: ...
#
# (~0.55 µs of lookups -> ~0.13 µs). Any other parent (a recording one, none, a sampled remote
# parent with no SDK span, another provider's span type) goes the general way.
#
# Nesting (see nested()): a nested call raises the limit with nested(1) before it counts itself,
# and gives it back in its ``finally`` with nested's body written inline. This path is shallow (no
# span start below the wrapper for a recursion to run out of stack in), so at the edge of the
# stack a call of nested(-1) could not lower the limit there and left it one higher; inline it
# needs no frame (tests/spans/test_sampled_out_fast.py: every shape of recursion tried there leaves
# the limit where it was).
QUICK = _dropped_reading_holds()


class Lifetime:
    """A span from the moment it is current until it has ended."""

    __slots__ = ("span", "started", "token")

    def __init__(self, span: Span, started: bool, context: Context | None = None) -> None:
        self.open(span, started, context)

    def open(self, span: Span, started: bool, context: Context | None = None) -> None:
        """``started``: the span is ours to end (false for a sampled-out stage's shared span);
        then it is attached, in ``context`` (default: the current one) until :meth:`close`.
        A scope that is its own lifetime (no object per ``with``) calls this from ``_open``."""
        self.span = span
        self.started = started
        self.token: object | None = otel_context.attach(trace.set_span_in_context(span, context)) if started else None

    def close(self, exc: BaseException | None, *, repeat_stack: bool = False) -> None:
        """Record ``exc`` (if any) on the span, end it and detach; a no-op when not started.

        ``repeat_stack`` as in :func:`record_error` (stages: False, the innermost has the trace).
        The span ends and the context is restored even if recording fails."""
        if not self.started:
            return
        token, self.token, self.started = self.token, None, False  # closed once, whatever happens
        try:
            if exc is not None:
                record_error(self.span, exc, repeat_stack=repeat_stack)
        finally:
            if token is not None:
                _end(self.span, token)
            else:
                self.span.end()


T = TypeVar("T")


class Scope(Generic[T]):
    """``with`` and ``async with`` over one lifetime at a time; the object may be reused, but not
    shared by concurrent requests while inside. ``_open`` returns what ``as`` binds (a ``T``)."""

    __slots__ = ()

    def _open(self) -> T:
        raise NotImplementedError

    def _close(self, exc: BaseException | None) -> None:
        raise NotImplementedError

    def __enter__(self) -> T:
        return self._open()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._close(exc)

    async def __aenter__(self) -> T:
        return self._open()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._close(exc)


# -- calls of decorated functions ---------------------------------------------------------------

limit_lock = threading.Lock()


def nested(delta: int) -> bool:
    """Move the recursion limit by ``delta`` (+1 entering a nested call, -1 leaving it).

    Python counts the wrapper's frame against the limit, so undecorated recursion 997 deep fell
    to 491 decorated. Raising the limit by one per nested wrapper frame gives the user's function
    its own depth back. Only calls made while another call of the same wrapper runs pay this
    (~1 µs); the lock keeps concurrent adjustments exact, so the limit always returns to where
    it was. True when the limit moved (false: at the very edge of the stack it could not).
    """
    # Lowering at the very edge of the stack can raise: then leave it one higher, never raise.
    # try/except, not contextlib.suppress: suppress() is a Python frame of its own, and a
    # rollback at the very edge of the stack must not need one (the limit stayed one higher).
    with limit_lock:
        try:
            sys.setrecursionlimit(sys.getrecursionlimit() + delta)
        except RecursionError:
            return False
        return True


class Calls:
    """The lifetime of each call of one decorated sync function (one object per function, made at
    decoration time). The wrapper (``_decorators._wrap_sync``) calls :meth:`enter`, then the
    function, then :meth:`returned` with its result or :meth:`failed` with its exception (which
    it re-raises itself). Either ends the span and gives the nesting back: two calls of ours per
    call, as before this module (a ``finally`` calling a third cost ~30 ns more).

    No object per call: a ``with`` over a per-call object cost ~0.2 µs more per stage call
    (allocation and the with protocol), ~0.8 µs per request for four stages, where issue 13 counts
    single µs. ``token`` is not None exactly when the span started (it is ours to end).

    Nesting is a plain counter on the spec (~40 ns; a context variable costs ~150): calls from
    other threads at the same moment count as nested too, which raises the limit by at most the
    number of threads, for their duration.
    """

    __slots__ = ("spec",)

    def __init__(self, spec: _Spec) -> None:
        self.spec = spec

    def enter(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], context: Context, parent: Any
    ) -> tuple[Span, object | None, Any]:
        """Start the span (attached when started); ``undo`` is what :meth:`returned`/:meth:`failed` need to give the
        nesting back. ``context``: the current one, ``parent`` what it holds under ``SPAN_KEY`` (the
        wrapper looked both up for its sampled-out test)."""
        spec = self.spec
        depth = spec.depth
        spec.depth = depth + 1
        if depth:
            nested(1)  # before the start: a recursion that runs out of stack does so in the start
        try:  # spec.start, inlined: one frame fewer at the bottom of a recursion, and ~50 ns
            if type(parent) is not DeferredSpan:  # a deferred request's span is used as it is
                parent = trace.get_current_span(context)
            if parent.is_recording():
                span, attach = spec.start_recorded(args, kwargs, context, parent)
                return span, otel_context.attach(attach), depth
            span, started = spec.start_under(parent, args, kwargs)
            return span, otel_context.attach(trace.set_span_in_context(span)) if started else None, depth
        except BaseException:  # returned()/failed() will not run: give the depth back (a RecursionError lands here)
            spec.depth -= 1  # inline, not self._unnest: at the edge of the stack a frame is one too many
            if depth:
                nested(-1)
            raise

    def returned(self, span: Span, token: object | None, undo: Any, result: Any) -> Any:
        """The function returned ``result``: its output summary (drift, sampled or not), the span
        ended; ``result`` passed on."""
        try:
            if token is not None or self.spec.drift is not None:
                self._finish(span, token, result)
        finally:
            self.spec.depth -= 1  # self._unnest, inlined: a sampled-out call makes one call of ours here
            if undo:
                nested(-1)
        return result

    def _finish(self, span: Span, token: object | None, result: Any) -> None:
        if token is None:  # sampled out: drift still sees the output
            record_drift_output(span, self.spec.drift, result)
            return
        try:
            self.spec.finish(span, result)
        finally:  # _end, inlined (every recorded stage call)
            try:
                span.end()
            finally:
                otel_context.detach(token)  # type: ignore[arg-type]

    def failed(self, span: Span, token: object | None, undo: Any, exc: BaseException) -> None:
        """The function raised ``exc`` (the caller re-raises it unchanged): recorded, span ended."""
        try:
            if token is not None:
                try:
                    record_error(span, exc, repeat_stack=False)
                finally:
                    _end(span, token)
        finally:
            self._unnest(undo)

    def _unnest(self, undo: Any) -> None:
        self.spec.depth -= 1
        if undo:
            nested(-1)


def _end(span: Span, token: object) -> None:
    """End the span, then restore the context even if ending raised (a processor's failure)."""
    try:
        span.end()
    finally:
        otel_context.detach(token)  # type: ignore[arg-type]


class AsyncCalls(Calls):
    """:class:`Calls` for a decorated ``async`` function.

    Nesting is counted per task (a context variable), not per process: a busy event loop runs
    many calls of one stage at once, and counting those as nested would raise the recursion
    limit by the number of requests in flight.
    """

    __slots__ = ("depth",)

    def __init__(self, spec: _Spec) -> None:
        super().__init__(spec)
        self.depth: contextvars.ContextVar[int] = contextvars.ContextVar(f"mltrace.depth.{id(spec)}", default=0)

    def enter(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], context: Context, parent: Any
    ) -> tuple[Span, object | None, Any]:
        spec, depth = self.spec, self.depth
        level = depth.get()
        reset = depth.set(level + 1)
        if level:
            nested(1)
        try:  # as in Calls.enter, inlined for the depth
            if type(parent) is not DeferredSpan:
                parent = trace.get_current_span(context)
            if parent.is_recording():
                span, attach = spec.start_recorded(args, kwargs, context, parent)
                token: object | None = otel_context.attach(attach)
            else:
                span, started = spec.start_under(parent, args, kwargs)
                token = otel_context.attach(trace.set_span_in_context(span)) if started else None
        except BaseException:
            depth.reset(reset)
            if level:
                nested(-1)
            raise
        return span, token, (reset, level)

    def returned(self, span: Span, token: object | None, undo: Any, result: Any) -> Any:
        try:
            if token is not None or self.spec.drift is not None:
                self._finish(span, token, result)
        finally:
            self._unnest(undo)
        return result

    def _unnest(self, undo: Any) -> None:
        reset, level = undo
        self.depth.reset(reset)
        if level:
            nested(-1)


# -- generators ------------------------------------------------------------------------------------


def closed_early(exc: BaseException) -> bool:
    """The consumer stopped the stream (``close()``/``aclose()``, a cancelled task, a client that
    went away): not an error of the stage."""
    return isinstance(exc, GeneratorExit | asyncio.CancelledError)


class Stream(Lifetime):
    """One run of a decorated generator or async generator.

    ``with stream:`` around each step of the function makes the span (and a generation's watch)
    current for that step only: between items the consumer's code runs in its own context.
    """

    __slots__ = ("closed", "ctx", "error", "items", "last", "spec", "step_token", "watch")

    def __init__(self, spec: _Spec, span: Span, started: bool, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """``span, started``: from ``spec.start(args, kwargs)``."""
        self.span, self.started, self.token = span, started, None  # attached per step, not here
        self.spec = spec
        self.items, self.closed = 0, False
        self.last: Any = None
        self.error: BaseException | None = None
        ctx = trace.set_span_in_context(span) if started else None
        watch = spec.generate.begin(span, started, spec.input_of(args, kwargs)) if spec.generate is not None else None
        if watch is not None:
            ctx = watch.in_context(ctx)  # sampled or not: current_stage() reaches the generation
        self.ctx: Context | None = ctx
        self.watch: Watch | None = watch

    def __enter__(self) -> Stream:
        self.step_token = otel_context.attach(self.ctx) if self.ctx is not None else None
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.step_token is not None:
            otel_context.detach(self.step_token)

    def item(self, item: Any) -> None:
        self.items += 1
        self.last = item
        if self.watch is not None:
            self.watch.item(item)

    def stopped(self, exc: BaseException) -> bool:
        """The run stopped with ``exc``: an error of the stage, or a consumer that stopped early.
        True when the function must be closed now (``close()``/``aclose()`` reached the wrapper)."""
        if closed_early(exc):
            self.closed = True
        else:
            self.error = exc
        if self.watch is not None:
            self.watch.failed(exc, self.closed)
        return isinstance(exc, GeneratorExit)

    def close_inner(self, inner: Generator[Any, Any, Any]) -> None:
        """Close the function under its span (its ``finally`` blocks run there), in a copied
        context (see :meth:`end`)."""
        contextvars.copy_context().run(self._close_inner, inner)

    def _close_inner(self, inner: Generator[Any, Any, Any]) -> None:
        with self:
            inner.close()

    def end(self) -> None:
        """Stream attributes, the output summary of the last item, the watch's figures, the
        error if any; then the span ends.

        In a copied context: a generator the consumer dropped (Starlette leaves a disconnected
        client's iterator to the GC) is closed by its finalizer, which the cyclic GC may run in
        the middle of a ``ContextVar.set`` on whatever thread allocates. Re-entering
        ``ContextVar.set`` on that same Context (our attach/detach, the SimpleSpanProcessor's
        suppression flag in ``span.end()``) frees the HAMT the outer set is still walking --
        CPython gh-148891 (< 3.12), a SIGSEGV in 8 of 10 runs of
        tests/serving/repro_sync_stream_crash.py. A copy of the context is a different Context
        object, so nothing here ever replaces the interrupted one's vars.
        """
        contextvars.copy_context().run(self._end)

    def _end(self) -> None:
        span, spec, items = self.span, self.spec, self.items
        if span.is_recording():
            record_attributes(span, {semconv.ML_STREAM_ITEMS: items})
            if self.closed:
                record_attributes(span, {semconv.ML_STREAM_CLOSED_EARLY: True})
            if items and spec.generate is None:
                spec.finish(span, self.last)
            elif items and spec.drift is not None:  # a generation's output is summarised as text
                record_drift_output(span, spec.drift, self.last)
        elif items and spec.drift is not None:
            record_drift_output(span, spec.drift, self.last)
        if self.watch is not None:
            self.watch.end()
        self.close(self.error)
