"""Stage decorators: ``@preprocess``, ``@feature_lookup``, ``@inference``, ``@postprocess``.

Each works bare (``@mltrace.preprocess``) or with options (``@mltrace.inference(model=...)``), on
sync and async functions, generators and async generators. The span is current while the
function body runs (for generators: while each item is produced), exceptions are recorded on
the span and re-raised unchanged.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator, Mapping
from time import time_ns
from typing import Any, Protocol, TypeVar, overload

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span

from .. import semconv
from ._record import (
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


class _Spec:
    """What one decorated function records; built once at decoration time."""

    __slots__ = ("attrs", "drift", "keys_only", "name", "record_input", "record_output", "skip_self")

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
    ) -> None:
        self.name = name
        self.attrs = {
            **attrs,
            "code.function.name": f"{getattr(func, '__module__', '?')}.{getattr(func, '__qualname__', '?')}",
        }
        self.record_input = record_input
        self.record_output = record_output
        self.drift = drift
        self.keys_only = keys_only
        try:
            params = list(inspect.signature(func).parameters)
        except (TypeError, ValueError):
            params = []
        self.skip_self = bool(params) and params[0] in ("self", "cls")

    def input_of(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.skip_self:
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
        if self.drift is not None:
            record_drift_output(span, self.drift, result)


def _key_count(keys: Any) -> int:
    if isinstance(keys, list | tuple | set | frozenset | dict):
        return len(keys)
    return 0 if keys is None else 1


def _wrap(func: F, spec: _Spec) -> F:
    if inspect.isasyncgenfunction(func):
        return _wrap_async_gen(func, spec)  # type: ignore[return-value]
    if inspect.isgeneratorfunction(func):
        return _wrap_gen(func, spec)  # type: ignore[return-value]
    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
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
                record_error(span, exc)
                raise
            else:
                spec.finish(span, result)
                return result
            finally:
                span.end()
                otel_context.detach(token)

        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
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
            record_error(span, exc)
            raise
        else:
            spec.finish(span, result)
            return result
        finally:
            span.end()
            otel_context.detach(token)

    return wrapper  # type: ignore[return-value]


def _finish_stream(span: Span, spec: _Spec, items: int, last: Any) -> None:
    if span.is_recording():
        record_attributes(span, {semconv.ML_STREAM_ITEMS: items})
        if items:
            spec.finish(span, last)


def _wrap_gen(func: Callable[..., Generator[Any, Any, Any]], spec: _Spec) -> Callable[..., Iterator[Any]]:
    @functools.wraps(func)
    def gen_wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        span, started = spec.start(args, kwargs)
        if not started:
            result = yield from func(*args, **kwargs)
            return result
        ctx = trace.set_span_in_context(span)
        items, last = 0, None
        inner = func(*args, **kwargs)
        try:
            while True:
                token = otel_context.attach(ctx)
                try:
                    item = next(inner)
                except StopIteration:
                    break
                finally:
                    otel_context.detach(token)
                items, last = items + 1, item
                yield item
        except GeneratorExit:
            inner.close()  # the consumer stopped early: not an error
            raise
        except BaseException as exc:
            record_error(span, exc)
            raise
        finally:
            _finish_stream(span, spec, items, last)
            span.end()

    return gen_wrapper


def _wrap_async_gen(
    func: Callable[..., AsyncGenerator[Any, Any]], spec: _Spec
) -> Callable[..., AsyncIterator[Any]]:
    @functools.wraps(func)
    async def agen_wrapper(*args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        span, started = spec.start(args, kwargs)
        if not started:
            async for item in func(*args, **kwargs):
                yield item
            return
        ctx = trace.set_span_in_context(span)
        items, last = 0, None
        inner = func(*args, **kwargs)
        try:
            while True:
                token = otel_context.attach(ctx)
                try:
                    item = await inner.__anext__()
                except StopAsyncIteration:
                    break
                finally:
                    otel_context.detach(token)
                items, last = items + 1, item
                yield item
        except GeneratorExit:
            await inner.aclose()
            raise
        except BaseException as exc:
            record_error(span, exc)
            raise
        finally:
            _finish_stream(span, spec, items, last)
            span.end()

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
    **static: Any,
) -> Any:
    attrs = stage_attributes(stage_name, attributes=attributes, **static)

    def decorate(f: F) -> F:
        if not callable(f):
            raise TypeError(f"@mltrace.{stage_name} decorates a function, not {type(f).__name__}")
        spec = _Spec(
            f,
            name or stage_name,
            attrs,
            record_input=record_input,
            record_output=record_output,
            drift=drift,
            keys_only=keys_only,
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
) -> Any:
    """Trace a function as the ``inference`` stage: model name/version, input/output summaries,
    and, with ``drift=monitor``, the drift scores of every call's input."""
    return _decorator(
        semconv.STAGE_INFERENCE, func, name=name, record_input=record_input,
        record_output=record_output, attributes=attributes, drift=drift,
        model=model, version=version, framework=framework,
    )
