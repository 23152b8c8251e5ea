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
raises the interpreter's recursion limit by one for its duration (see :func:`._lifetime.nested`).

The span's lifetime (start, current, error or output, end) is :mod:`._lifetime`'s; the wrappers
here differ only in how they call the function and iterate what it yields.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator, Mapping
from sys import getrecursionlimit, setrecursionlimit
from time import time_ns
from typing import Any, Protocol, TypeVar, overload

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext

from .. import semconv
from .._errors import InvalidArgumentError
from .._settings import SETTINGS
from ..drift import DriftScorer  # at run time: get_type_hints(mltrace.inference) resolves
from ..genai import embedding_attributes
from ..genai._watch import GenerateSpec
from . import _deferred
from ._deferred import SPAN_KEY, DeferredSpan
from ._guarded import Guard, record_attributes, record_drift, record_drift_output, record_summary, summary_attributes
from ._lifetime import QUICK, AsyncCalls, Calls, Stream, get_current, limit_lock, nested
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
        drift: DriftScorer | None = None,
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
        """The stage's span for a call with these arguments, and whether it is ours to end."""
        context = get_current()
        parent = context.get(SPAN_KEY)  # type: ignore[arg-type]
        if type(parent) is NonRecordingSpan and self.drift is None and QUICK:  # see _lifetime.QUICK
            sc = parent._context
            if type(sc) is SpanContext and sc[5] and not sc[3] & 1:
                return parent, False
        parent = trace.get_current_span(context)
        if parent.is_recording():
            return self.start_recorded(args, kwargs, context, parent)[0], True
        return self.start_under(parent, args, kwargs)

    def start_under(self, parent: Span, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Span, bool]:
        """Under a parent that does not record (sampled out, or none): a span only if the sampler
        says so; drift sees the input either way."""
        context = parent.get_span_context()
        if context.is_valid and not context.trace_flags.sampled:  # start_child's own first test, one call fewer
            if self.drift is None:
                return parent, False  # the sampled-out request's path: every stage call takes it
            span, started = parent, False
        else:
            span, started = start_child(self.name, self.attrs, parent=parent)
        recording = started and span.is_recording()
        if not recording and self.drift is None:
            return span, started
        x = self.input_of(args, kwargs)
        if recording:
            with Guard(span, "summary ml.input"):  # summarize never raises; a broken setting might
                record_attributes(span, self._input_attributes(x))
        if self.drift is not None:
            # Drift windows see every request, sampled or not.
            record_drift(span, self.drift, x)
        return span, started

    def start_recorded(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], context: Context, parent: Span
    ) -> tuple[Span, Context]:
        """Under a recording parent (so, with parent-based sampling, a recording stage), given the
        current ``context`` and its span ``parent`` (looked up once by the caller): the span, and
        the context to attach while the function runs.

        In a deferred request the span is a light one made directly (not through
        ``TRACER.start_span``, whose lookups the caller did already) and the input summarised
        after the response when it is cheap to copy. Otherwise the input's attributes go in with the span's start
        attributes, one SDK attribute pass instead of two. The start time is taken first either
        way, so the stage still includes them."""
        start_time = time_ns()
        x = self.input_of(args, kwargs)
        attrs = self.attrs
        later = _deferred._enabled and self.record_input and not self.keys_only and SETTINGS.summaries
        guard = None
        if not later:
            extra: dict[str, Any] = {}
            guard = Guard(None, "summary ml.input")  # no span yet: noted on it once made
            with guard:  # summarize never raises; a broken setting might
                extra = self._input_attributes(x)
            if extra:
                attrs = {**attrs, **extra}
        span = _deferred.start_stage(self.name, attrs, start_time, context, parent) if _deferred._enabled else None
        if span is None:  # no deferred request here: the SDK's span, as before
            span = TRACER.get().start_span(self.name, attributes=attrs, start_time=start_time)
        # ``context`` is still the current one when only our own code ran since it was looked up
        # (no summary of a user object now, no drift scorer): then the span's context is built on
        # it, not on a third lookup.
        fresh = type(span) is DeferredSpan and self.drift is None
        if later and (type(span) is not DeferredSpan or not span.defer_summary(semconv.ML_INPUT_PREFIX, x)):
            fresh = False
            record_summary(span, semconv.ML_INPUT_PREFIX, x)  # summarised now, guarded
        if guard is not None and guard.error is not None:
            guard.note(span)
        if self.drift is not None:
            record_drift(span, self.drift, x)
        if fresh and SPAN_KEY is not None:  # set_span_in_context's dict, without its two calls
            return span, Context({**context, SPAN_KEY: span})
        return span, trace.set_span_in_context(span, context if fresh else None)

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
            with Guard(span, "embedding summary"):
                record_attributes(span, embedding_attributes(result))
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
    # One frame per call (this one): the lifetime's steps run before and after ``func``, not
    # around it, so they do not stack up under recursion.
    calls = Calls(spec)
    quick = QUICK and spec.drift is None  # a sampled-out request's call may skip the lifetime

    @_wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        context = get_current()
        parent = context.get(SPAN_KEY)  # type: ignore[arg-type]
        if type(parent) is NonRecordingSpan and quick:  # see _lifetime.QUICK
            sc = parent._context
            if type(sc) is SpanContext and sc[5] and not sc[3] & 1:
                # Nothing to start, attach or record: only the nesting, as enter/returned count it.
                depth = spec.depth
                raised = depth and nested(1)  # false: the limit is unchanged (the edge of the stack)
                spec.depth = depth + 1
                try:
                    return func(*args, **kwargs)
                finally:
                    spec.depth -= 1
                    if raised:  # nested(-1), inline: see _lifetime.QUICK
                        with limit_lock:
                            try:  # noqa: SIM105 (no contextlib frame at the edge of the stack)
                                setrecursionlimit(getrecursionlimit() - 1)
                            except RecursionError:
                                pass
        span, token, undo = calls.enter(args, kwargs, context, parent)
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            calls.failed(span, token, undo, exc)
            raise
        return calls.returned(span, token, undo, result)

    return wrapper


def _wrap_async(func: Callable[..., Any], spec: _Spec) -> Callable[..., Any]:
    calls = AsyncCalls(spec)
    quick = QUICK and spec.drift is None  # as in _wrap_sync
    depth = calls.depth

    @_wraps(func)
    async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
        context = get_current()
        parent = context.get(SPAN_KEY)  # type: ignore[arg-type]
        if type(parent) is NonRecordingSpan and quick:  # see _lifetime.QUICK
            sc = parent._context
            if type(sc) is SpanContext and sc[5] and not sc[3] & 1:
                level = depth.get()  # nesting per task, as AsyncCalls.enter/_unnest count it
                raised = level and nested(1)
                reset = depth.set(level + 1)
                try:
                    return await func(*args, **kwargs)
                finally:
                    depth.reset(reset)
                    if raised:  # nested(-1), inline: see _lifetime.QUICK
                        with limit_lock:
                            try:  # noqa: SIM105 (no contextlib frame at the edge of the stack)
                                setrecursionlimit(getrecursionlimit() - 1)
                            except RecursionError:
                                pass
        span, token, undo = calls.enter(args, kwargs, context, parent)
        try:
            result = await func(*args, **kwargs)
        except BaseException as exc:
            calls.failed(span, token, undo, exc)
            raise
        return calls.returned(span, token, undo, result)

    return async_wrapper


def _wrap_gen(func: Callable[..., Generator[Any, Any, Any]], spec: _Spec) -> Callable[..., Iterator[Any]]:
    @_wraps(func)
    def gen_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        # The function's generator first (its body does not run yet). Dropped in a reference cycle,
        # this wrapper and it are garbage together and the GC finalizes them in list order; a full
        # collection lists generation 0 before generation 1, so when a collection promoted this
        # wrapper between its creation and the function's generator's (the span's start allocates
        # hundreds of objects), the function's own finalizer ran first and its finally wrote to the
        # Context the GC interrupted (tests/spans/test_stream_finalize.py failed after
        # tests/spans/test_stages.py). Made here, nothing of ours is allocated between the two; a
        # caller that allocates between making this generator and iterating it still can.
        inner = func(*args, **kwargs)
        span, started = spec.start(args, kwargs)
        if not started and spec.generate is None and spec.drift is None:
            return (yield from inner)  # nothing to record: Python's own forwarding
        stream = Stream(spec, span, started, args, kwargs)
        try:
            step, value = inner.send, None
            while True:
                with stream:
                    try:
                        item = step(value)
                    except StopIteration as stop:
                        return stop.value
                stream.item(item)
                try:
                    step, value = inner.send, (yield item)
                except GeneratorExit:
                    raise
                except BaseException as exc:  # consumer's throw(): into the function
                    step, value = inner.throw, exc
        except BaseException as exc:
            if stream.stopped(exc):
                stream.close_inner(inner)
            raise
        finally:
            stream.end()

    return gen_wrapper


def _wrap_async_gen(
    func: Callable[..., AsyncGenerator[Any, Any]], spec: _Spec
) -> Callable[..., AsyncIterator[Any]]:
    # An async generator cannot ``return`` a value, so there is none to pass on; everything else
    # (asend, athrow, aclose) is forwarded, sampled or not.
    @_wraps(func)
    async def agen_wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        stream = Stream(spec, *spec.start(args, kwargs), args, kwargs)
        try:
            inner = func(*args, **kwargs)
            step, value = inner.asend, None
            while True:
                with stream:
                    try:
                        item = await step(value)
                    except StopAsyncIteration:
                        return
                stream.item(item)
                try:
                    step, value = inner.asend, (yield item)
                except GeneratorExit:
                    raise
                except BaseException as exc:  # consumer's athrow(): into the function
                    step, value = inner.athrow, exc
        except BaseException as exc:
            if stream.stopped(exc):
                with stream:  # the function's finally blocks run under its span
                    await inner.aclose()
            raise
        finally:
            stream.end()

    return agen_wrapper


def _decorator(
    stage_name: str,
    func: F | None,
    *,
    name: str | None,
    record_input: bool,
    record_output: bool,
    attributes: Mapping[str, Any] | None,
    drift: DriftScorer | None = None,
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
    drift: DriftScorer | None = None,
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
    drift: DriftScorer | None = None,
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
        raise InvalidArgumentError(f"@mltrace.inference kind must be one of {sorted(_KINDS)}; got {kind!r}")
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
