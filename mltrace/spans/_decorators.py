"""Stage decorators: ``@preprocess``, ``@feature_lookup``, ``@inference``, ``@postprocess``.

Each works bare (``@mltrace.preprocess``) or with options (``@mltrace.inference(model=...)``), on
sync and async functions, generators and async generators, and on callable objects (an instance
whose ``__call__`` is ``async def`` is wrapped as async). The span is current while the function
body runs (for generators: while each item is produced); exceptions are recorded on the span and
re-raised unchanged.

Python's protocols are kept, sampled or not: a decorated generator passes ``send()`` values and
``throw()`` to the function and returns its return value (``StopIteration.value``, the result of
``yield from``); an async generator does the same for ``asend()``/``athrow()``/``aclose()``.

What is the input? The first positional argument, unless the function was reached through an
instance or a class (a method, a classmethod): then Python put the receiver first and the input is
the next one, whatever the first parameter is called. This is decided by binding, not by the
parameter's name: see :meth:`_Spec.receiver`.

Recursion: a wrapper costs one Python frame per call. So that a decorated recursive function keeps
the depth it had undecorated, a call nested inside another call of the same decorated function
raises the interpreter's recursion limit by one for its duration (see :func:`_nested`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import inspect
import sys
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator, Mapping
from time import time_ns
from typing import Any, Protocol, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span

from .. import semconv
from .._settings import SETTINGS
from ..genai import embedding_attributes
from ..genai._watch import GenerateSpec, Watch
from . import _deferred
from ._deferred import DeferredSpan
from ._guarded import (
    note_failure,
    record_attributes,
    record_drift,
    record_drift_output,
    record_error,
    record_summary,
    summary_attributes,
)
from ._stage import stage_attributes
from ._tracer import TRACER, start_child

F = TypeVar("F", bound=Callable[..., Any])

# Receivers looked up per spec are cached per class; bounded so classes made on the fly cannot grow it.
_RECEIVER_CACHE_MAX = 256


class _Spec:
    """What one decorated function records; built once at decoration time."""

    __slots__ = (
        "_by_class", "_by_instance", "attrs", "depth", "drift", "embed", "generate", "keys_only", "name",
        "record_input", "record_output", "wrapper",
    )

    def __init__(
        self,
        func: Callable[..., Any],
        name: str,
        attrs: dict[str, Any],
        *,
        record_input: bool,
        record_output: bool,
        drift: Any = None,
        keys_only: bool = False,
        generate: GenerateSpec | None = None,
        embed: bool = False,
    ) -> None:
        self.name = name
        self.attrs = {**attrs, "code.function.name": _function_name(func)}
        self.record_input = record_input
        self.record_output = record_output
        self.drift = drift
        self.keys_only = keys_only
        self.generate = generate  # kind="generate": what a generation records, else None
        self.embed = embed  # kind="embed": the output is a batch of vectors
        self.wrapper: object = None  # the decorated function, set by _wrap
        self.depth = 0  # sync calls of this wrapper running now (any thread): > 0 means maybe nested
        self._by_instance: dict[type, bool] = {}
        self._by_class: dict[type, bool] = {}

    def receiver(self, first: Any) -> bool:
        """Did Python put ``first`` there by binding (``obj.method(x)``, ``Cls.classmeth(x)``)?

        True when the wrapper sits in the class dictionary of ``first``'s type (a method: Python
        bound it to the instance) or, for a class, as a ``classmethod`` in its own MRO. A
        ``staticmethod`` and a plain function are never bound, so their first argument is the
        input whatever its name. Looked up once per class and cached. The one case this gets
        wrong: calling the plain function directly with an instance of a class that also holds
        it as a method (``f(obj)`` where ``type(obj).handler is f``).
        """
        if isinstance(first, type):
            cache, key, want_classmethod = self._by_class, first, True
        else:
            cache, key, want_classmethod = self._by_instance, type(first), False
        known = cache.get(key)
        if known is None:
            known = _holds(key, self.wrapper, want_classmethod)
            if len(cache) < _RECEIVER_CACHE_MAX:
                cache[key] = known
        return known

    def input_of(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if args and self.receiver(args[0]):
            args = args[1:]
        if args:
            return args[0]
        if len(kwargs) == 1:
            return next(iter(kwargs.values()))
        return kwargs or None

    def start(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Span, bool]:
        parent = trace.get_current_span()
        if parent.is_recording():
            return self._start_recorded(args, kwargs)
        span, started = start_child(self.name, self.attrs, parent=parent)
        recording = started and span.is_recording()
        if not recording and self.drift is None:
            return span, started
        x = self.input_of(args, kwargs)
        if recording:
            try:
                record_attributes(span, self._input_attributes(x))
            except Exception as exc:  # summarize never raises; a broken setting might
                note_failure(span, "summary ml.input", exc)
        if self.drift is not None:
            # Drift windows see every request, sampled or not.
            record_drift(span, self.drift, x)
        return span, started

    def _start_recorded(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Span, bool]:
        """Under a recording parent (so, with parent-based sampling, a recording stage): the
        input's attributes go in with the span's start attributes, one SDK attribute pass
        instead of two. The start time is taken first, so the stage still includes them."""
        start_time = time_ns()
        x = self.input_of(args, kwargs)
        attrs = self.attrs
        if _deferred._enabled and self.record_input and not self.keys_only and SETTINGS.summaries:
            span = TRACER.start_span(self.name, attributes=attrs, start_time=start_time)
            if type(span) is not DeferredSpan or not span.defer_summary(semconv.ML_INPUT_PREFIX, x):
                record_summary(span, semconv.ML_INPUT_PREFIX, x)  # summarised now, as below
            if self.drift is not None:
                record_drift(span, self.drift, x)
            return span, True
        failed: Exception | None = None
        try:
            extra = self._input_attributes(x)
        except Exception as exc:  # summarize never raises; a broken setting might
            extra, failed = {}, exc
        if extra:
            attrs = {**attrs, **extra}
        span = TRACER.start_span(self.name, attributes=attrs, start_time=start_time)
        if failed is not None:
            note_failure(span, "summary ml.input", failed)
        if self.drift is not None:
            record_drift(span, self.drift, x)
        return span, True

    def _input_attributes(self, x: Any) -> dict[str, Any]:
        """What the stage records of its input: a feature lookup's key count, else the summary."""
        if self.keys_only:
            return {semconv.ML_FEATURE_STORE_KEYS: _key_count(x)}
        if self.record_input:
            return summary_attributes(semconv.ML_INPUT_PREFIX, x)
        return {}

    def finish(self, span: Span, result: Any) -> None:
        if self.record_output:
            record_summary(span, semconv.ML_OUTPUT_PREFIX, result)
        if self.embed and span.is_recording():
            try:
                record_attributes(span, embedding_attributes(result))
            except Exception as exc:  # never into the request
                note_failure(span, "embedding summary", exc)
        if self.drift is not None:
            record_drift_output(span, self.drift, result)


def _function_name(func: Callable[..., Any]) -> str:
    qualname = getattr(func, "__qualname__", None)
    owner: Any = func
    if qualname is None:  # a callable object: name its class
        owner = type(func)
        qualname = owner.__qualname__
    return f"{getattr(owner, '__module__', '?')}.{qualname}"


def _holds(cls: type, wrapper: object, want_classmethod: bool) -> bool:
    """Whether a class in ``cls``'s MRO holds ``wrapper`` (as a classmethod if asked), directly or
    under other decorators that set ``__wrapped__``."""
    for klass in getattr(cls, "__mro__", ()):
        for value in vars(klass).values():
            if want_classmethod:
                if isinstance(value, classmethod) and _unwraps_to(value.__func__, wrapper):
                    return True
            elif not isinstance(value, staticmethod | classmethod) and _unwraps_to(value, wrapper):
                return True
    return False


def _unwraps_to(value: Any, wrapper: object) -> bool:
    for _ in range(8):  # decorators over decorators, bounded
        if value is wrapper:
            return True
        try:
            value = getattr(value, "__wrapped__", None)
        except Exception:  # an attribute with a hostile __getattr__
            return False
        if value is None:
            return False
    return False


def _key_count(keys: Any) -> int:
    if isinstance(keys, list | tuple | set | frozenset | dict):
        return len(keys)
    return 0 if keys is None else 1


_limit_lock = threading.Lock()


def _nested(delta: int) -> None:
    """Move the recursion limit by ``delta`` (+1 entering a nested call, -1 leaving it).

    Python counts the wrapper's frame against the limit, so undecorated recursion 997 deep fell
    to 491 decorated. Raising the limit by one per nested wrapper frame gives the user's function
    its own depth back. Only calls made while another call of the same wrapper runs pay this
    (~1 µs); the lock keeps concurrent adjustments exact, so the limit always returns to where
    it was.
    """
    # Lowering at the very edge of the stack can raise: then leave it one higher, never raise.
    with _limit_lock, contextlib.suppress(RecursionError):
        sys.setrecursionlimit(sys.getrecursionlimit() + delta)


def _call_kind(func: Callable[..., Any]) -> str:
    """``asyncgen``, ``gen``, ``async`` or ``sync``: from the function, or a callable object's
    ``__call__`` (an instance with ``async def __call__`` is async)."""
    # A class is called to construct it, so only an instance's __call__ says how it runs.
    call = None if isinstance(func, type) else inspect.getattr_static(type(func), "__call__", None)
    for candidate in (func, call):
        if candidate is None:
            continue
        if inspect.isasyncgenfunction(candidate):
            return "asyncgen"
        if inspect.isgeneratorfunction(candidate):
            return "gen"
        if inspect.iscoroutinefunction(candidate):
            return "async"
    return "sync"


def _wrap(func: F, spec: _Spec) -> F:
    kind = _call_kind(func)
    if kind == "asyncgen":
        wrapped: Callable[..., Any] = _wrap_async_gen(func, spec)
    elif kind == "gen":
        wrapped = _wrap_gen(func, spec)
    elif kind == "async":
        wrapped = _wrap_async(func, spec)
    else:
        wrapped = _wrap_sync(func, spec)
    spec.wrapper = wrapped
    return wrapped  # type: ignore[return-value]


def _wraps(func: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``functools.wraps``, without copying a callable object's ``__dict__`` onto the function."""
    if inspect.isfunction(func) or inspect.ismethod(func):
        return functools.wraps(func)
    return functools.wraps(func, updated=())


def _wrap_sync(func: Callable[..., Any], spec: _Spec) -> Callable[..., Any]:
    # One frame per call (this one): everything else runs in calls that have returned before
    # ``func`` is entered, so they do not stack up under recursion. Nesting is a plain counter
    # (~40 ns; a context variable costs ~150): calls from other threads at the same moment count
    # as nested too, which raises the limit by at most the number of threads, for their duration.
    @_wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nested = spec.depth > 0
        if nested:
            _nested(1)
        spec.depth += 1
        try:
            span, started = spec.start(args, kwargs)
            if not started:
                result = func(*args, **kwargs)
                if spec.drift is not None:
                    record_drift_output(span, spec.drift, result)
                return result
            token = otel_context.attach(trace.set_span_in_context(span))
            try:
                result = func(*args, **kwargs)
            except BaseException as exc:
                record_error(span, exc, repeat_stack=False)
                raise
            else:
                spec.finish(span, result)
                return result
            finally:
                span.end()
                otel_context.detach(token)
        finally:
            spec.depth -= 1
            if nested:
                _nested(-1)

    return wrapper


def _wrap_async(func: Callable[..., Any], spec: _Spec) -> Callable[..., Any]:
    # Nesting is counted per task (a context variable), not per process: a busy event loop runs
    # many calls of one stage at once, and counting those as nested would raise the recursion
    # limit by the number of requests in flight.
    depth: contextvars.ContextVar[int] = contextvars.ContextVar(f"mltrace.depth.{id(spec)}", default=0)

    @_wraps(func)
    async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
        level = depth.get()
        nested = level > 0
        if nested:
            _nested(1)
        reset = depth.set(level + 1)
        try:
            span, started = spec.start(args, kwargs)
            if not started:
                result = await func(*args, **kwargs)
                if spec.drift is not None:
                    record_drift_output(span, spec.drift, result)
                return result
            token = otel_context.attach(trace.set_span_in_context(span))
            try:
                result = await func(*args, **kwargs)
            except BaseException as exc:
                record_error(span, exc, repeat_stack=False)
                raise
            else:
                spec.finish(span, result)
                return result
            finally:
                span.end()
                otel_context.detach(token)
        finally:
            depth.reset(reset)
            if nested:
                _nested(-1)

    return async_wrapper


def _closed_early(exc: BaseException) -> bool:
    """The consumer stopped the stream (``close()``/``aclose()``, a cancelled task, a client that
    went away): not an error of the stage."""
    return isinstance(exc, GeneratorExit | asyncio.CancelledError)


def _finish_stream(span: Span, spec: _Spec, items: int, last: Any, closed_early: bool) -> None:
    if span.is_recording():
        record_attributes(span, {semconv.ML_STREAM_ITEMS: items})
        if closed_early:
            record_attributes(span, {semconv.ML_STREAM_CLOSED_EARLY: True})
        if items and spec.generate is None:
            spec.finish(span, last)
        elif items and spec.drift is not None:  # a generation's output is summarised as text
            record_drift_output(span, spec.drift, last)
    elif items and spec.drift is not None:
        record_drift_output(span, spec.drift, last)


def _wrap_gen(func: Callable[..., Generator[Any, Any, Any]], spec: _Spec) -> Callable[..., Iterator[Any]]:
    @_wraps(func)
    def gen_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        span, started = spec.start(args, kwargs)
        if not started and spec.generate is None and spec.drift is None:
            return (yield from func(*args, **kwargs))  # nothing to record: Python's own forwarding
        ctx = trace.set_span_in_context(span) if started else None
        watch = spec.generate.begin(span, started, spec.input_of(args, kwargs)) if spec.generate is not None else None
        if watch is not None:
            ctx = watch.in_context(ctx)  # sampled or not: current_stage() reaches the generation
        items, last, closed = 0, None, False
        inner = func(*args, **kwargs)
        sent: Any = None
        thrown: BaseException | None = None
        try:
            while True:
                token = otel_context.attach(ctx) if ctx is not None else None
                try:
                    if thrown is None:
                        item = inner.send(sent)
                    else:
                        exc, thrown = thrown, None
                        item = inner.throw(exc)
                except StopIteration as stop:
                    result = stop.value
                    break
                finally:
                    if token is not None:
                        otel_context.detach(token)
                items, last = items + 1, item
                if watch is not None:
                    watch.item(item)
                try:
                    sent = yield item
                except GeneratorExit:
                    raise
                except BaseException as exc:  # consumer's throw(): into the function
                    sent, thrown = None, exc
        except BaseException as exc:
            if _closed_early(exc):
                closed = True
                if isinstance(exc, GeneratorExit):  # the consumer stopped early: not an error
                    # the function's finally blocks run under its span; in a copied context, see below
                    contextvars.copy_context().run(_close_under, inner, ctx)
            elif started:
                record_error(span, exc, repeat_stack=False)
            if watch is not None:
                watch.failed(exc, closed)
            raise
        finally:
            # A generator the consumer dropped (Starlette leaves a disconnected client's iterator to
            # the GC) is closed by its finalizer, which the cyclic GC may run in the middle of a
            # ContextVar.set on whatever thread allocates: re-entering ContextVar.set on that same
            # Context (our attach/detach, the SimpleSpanProcessor's suppression flag in span.end())
            # frees the HAMT the outer set is still walking -- CPython gh-148891 (< 3.12), a SIGSEGV
            # in 8 of 10 runs of tests/serving/repro_sync_stream_crash.py. A copy of the context is
            # a different Context object, so nothing here ever replaces the interrupted one's vars.
            contextvars.copy_context().run(_end_stream, span, spec, items, last, closed, watch, started)
        return result

    return gen_wrapper


def _close_under(inner: Generator[Any, Any, Any], ctx: otel_context.Context | None) -> None:
    token = otel_context.attach(ctx) if ctx is not None else None
    try:
        inner.close()
    finally:
        if token is not None:
            otel_context.detach(token)


def _end_stream(
    span: Span, spec: _Spec, items: int, last: Any, closed: bool, watch: Watch | None, started: bool
) -> None:
    _finish_stream(span, spec, items, last, closed)
    if watch is not None:
        watch.end()
    if started:
        span.end()


def _wrap_async_gen(
    func: Callable[..., AsyncGenerator[Any, Any]], spec: _Spec
) -> Callable[..., AsyncIterator[Any]]:
    # An async generator cannot ``return`` a value, so there is none to pass on; everything else
    # (asend, athrow, aclose) is forwarded, sampled or not.
    @_wraps(func)
    async def agen_wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        span, started = spec.start(args, kwargs)
        ctx = trace.set_span_in_context(span) if started else None
        watch = spec.generate.begin(span, started, spec.input_of(args, kwargs)) if spec.generate is not None else None
        if watch is not None:
            ctx = watch.in_context(ctx)  # sampled or not: current_stage() reaches the generation
        items, last, closed = 0, None, False
        inner = func(*args, **kwargs)
        sent: Any = None
        thrown: BaseException | None = None
        try:
            while True:
                token = otel_context.attach(ctx) if ctx is not None else None
                try:
                    if thrown is None:
                        item = await inner.asend(sent)
                    else:
                        exc, thrown = thrown, None
                        item = await inner.athrow(exc)
                except StopAsyncIteration:
                    break
                finally:
                    if token is not None:
                        otel_context.detach(token)
                items, last = items + 1, item
                if watch is not None:
                    watch.item(item)
                try:
                    sent = yield item
                except GeneratorExit:
                    raise
                except BaseException as exc:  # consumer's athrow(): into the function
                    sent, thrown = None, exc
        except BaseException as exc:
            if _closed_early(exc):
                closed = True
                if isinstance(exc, GeneratorExit):
                    token = otel_context.attach(ctx) if ctx is not None else None
                    try:
                        await inner.aclose()  # the function's finally blocks run under its span
                    finally:
                        if token is not None:
                            otel_context.detach(token)
            elif started:
                record_error(span, exc, repeat_stack=False)
            if watch is not None:
                watch.failed(exc, closed)
            raise
        finally:
            # as for generators: never re-enter ContextVar.set on the Context this runs in
            contextvars.copy_context().run(_end_stream, span, spec, items, last, closed, watch, started)

    return agen_wrapper


def _decorator(
    stage_name: str,
    func: F | None,
    *,
    name: str | None,
    record_input: bool,
    record_output: bool,
    attributes: Mapping[str, Any] | None,
    drift: Any = None,
    keys_only: bool = False,
    generate: GenerateSpec | None = None,
    embed: bool = False,
    **static: Any,
) -> Any:
    attrs = stage_attributes(stage_name, attributes=attributes, **static)

    def decorate(f: F) -> F:
        if not callable(f):
            raise TypeError(f"@mltrace.{stage_name} decorates a function, not {type(f).__name__}")
        if generate is not None and _call_kind(f) not in ("gen", "asyncgen"):
            raise TypeError(
                f'@mltrace.{stage_name}(kind="generate") decorates a generator or async generator that '
                f"yields tokens; {getattr(f, '__qualname__', type(f).__name__)} is neither"
            )
        spec = _Spec(
            f,
            name or stage_name,
            attrs,
            record_input=record_input,
            record_output=record_output,
            drift=drift,
            keys_only=keys_only,
            generate=generate,
            embed=embed,
        )
        return _wrap(f, spec)

    return decorate(func) if func is not None else decorate


class _DataStageDecorator(Protocol):
    """``@stage`` or ``@stage(name=..., record_input=..., record_output=..., attributes=...)``."""

    @overload
    def __call__(self, func: F, /) -> F: ...
    @overload
    def __call__(
        self,
        *,
        name: str | None = None,
        record_input: bool = True,
        record_output: bool = True,
        attributes: Mapping[str, Any] | None = None,
    ) -> Callable[[F], F]: ...


def _data_stage(stage_name: str, doc: str) -> _DataStageDecorator:
    """A decorator for a stage that transforms data (summaries of its input and output)."""

    def decorator(
        func: F | None = None,
        /,
        *,
        name: str | None = None,
        record_input: bool = True,
        record_output: bool = True,
        attributes: Mapping[str, Any] | None = None,
    ) -> Any:
        return _decorator(
            stage_name, func, name=name, record_input=record_input,
            record_output=record_output, attributes=attributes,
        )

    decorator.__name__ = decorator.__qualname__ = stage_name
    decorator.__doc__ = doc
    return decorator  # type: ignore[return-value]


preprocess = _data_stage(
    semconv.STAGE_PREPROCESS, "Trace a function as the ``preprocess`` stage (input and output summaries)."
)
postprocess = _data_stage(semconv.STAGE_POSTPROCESS, "Trace a function as the ``postprocess`` stage.")


@overload
def feature_lookup(func: F) -> F: ...
@overload
def feature_lookup(
    *,
    store: str | None = None,
    name: str | None = None,
    record_output: bool = True,
    attributes: Mapping[str, Any] | None = None,
) -> Callable[[F], F]: ...
def feature_lookup(
    func: F | None = None,
    *,
    store: str | None = None,
    name: str | None = None,
    record_output: bool = True,
    attributes: Mapping[str, Any] | None = None,
) -> Any:
    """Trace a function as the ``feature_lookup`` stage.

    Records the store name and the number of keys asked for, never the key values; the
    features returned are summarised. Set hits/misses from inside with
    ``mltrace.current_stage().set_attributes(...)`` or use :func:`mltrace.record_lookup`.
    """
    return _decorator(
        semconv.STAGE_FEATURE_LOOKUP, func, name=name, record_input=False,
        record_output=record_output, attributes=attributes, keys_only=True, store=store,
    )


@overload
def inference(func: F) -> F: ...
@overload
def inference(
    *,
    model: str | None = None,
    version: str | None = None,
    framework: str | None = None,
    drift: Any = None,
    name: str | None = None,
    record_input: bool = True,
    record_output: bool = True,
    attributes: Mapping[str, Any] | None = None,
    kind: str | None = None,
) -> Callable[[F], F]: ...
def inference(
    func: F | None = None,
    *,
    model: str | None = None,
    version: str | None = None,
    framework: str | None = None,
    drift: Any = None,
    name: str | None = None,
    record_input: bool = True,
    record_output: bool = True,
    attributes: Mapping[str, Any] | None = None,
    kind: str | None = None,
) -> Any:
    """Trace a function as the ``inference`` stage: model name/version, input/output summaries,
    and, with ``drift=monitor``, the drift scores of every call's input.

    ``kind="generate"`` on a generator or async generator of tokens records generation figures
    (time to first token, time per output token, tokens, finish reason, queue time, client
    disconnects) on the span, with the OpenTelemetry GenAI attributes, and as metrics: see
    :mod:`mltrace.genai` and docs/generative.md. ``kind="embed"`` on a function returning a batch
    of vectors adds their count, dimension and norm spread (``ml.embedding.*``).
    """
    generate = None
    if kind is not None and kind not in _KINDS:
        raise ValueError(f"@mltrace.inference kind must be one of {sorted(_KINDS)}; got {kind!r}")
    if kind == "generate":
        generate = GenerateSpec(model=model, attributes=attributes)
        attributes = {**generate.span_attrs, **{k: v for k, v in (attributes or {}).items() if k not in _PROVIDER}}
    elif kind == "embed":
        attributes = {"gen_ai.operation.name": "embeddings", **({"gen_ai.request.model": str(model)} if model else {}),
                      **(attributes or {})}
    return _decorator(
        semconv.STAGE_INFERENCE, func, name=name, record_input=record_input,
        record_output=record_output, attributes=attributes, drift=drift, generate=generate,
        embed=kind == "embed", model=model, version=version, framework=framework,
    )


_KINDS = frozenset({"predict", "generate", "embed"})
_PROVIDER = frozenset({"gen_ai.system", "gen_ai.provider.name"})  # GenerateSpec picks the name
