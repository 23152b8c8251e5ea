"""Keep the request's trace when model code hops onto a thread.

OpenTelemetry keeps the current span in a ``contextvars`` variable. ``asyncio.create_task``,
``asyncio.to_thread`` and Starlette's ``run_in_threadpool`` copy the caller's context into the new
task or thread, so spans made there stay in the request's trace. ``loop.run_in_executor`` and
``Executor.submit`` do not: a stage span started in the worker thread becomes the root of a new,
orphaned trace. The helpers here run the callable inside a copy of the caller's context
(``contextvars.copy_context().run``), which is what ``asyncio.to_thread`` does.

Thread executors only: a context cannot cross a process boundary (see docs/deployment.md).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
T = TypeVar("T")


def _in_copied_context(fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Callable[[], T]:
    """``fn(*args, **kwargs)`` bound to a copy of the context current now."""
    ctx = contextvars.copy_context()
    return functools.partial(ctx.run, fn, *args, **kwargs)


async def run_in_executor(
    executor: Executor | None, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
) -> T:
    """``await loop.run_in_executor(executor, fn, *args)``, keeping the caller's trace context.

    ``executor=None`` uses the loop's default executor. Keyword arguments are passed through
    (``loop.run_in_executor`` itself takes none).
    """
    _check_executor(executor)
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(executor, _in_copied_context(fn, *args, **kwargs))


def _check_executor(executor: object) -> None:
    if isinstance(executor, ProcessPoolExecutor):
        raise TypeError(
            "a ProcessPoolExecutor cannot carry the trace context (contextvars do not cross "
            "processes); propagate it explicitly with opentelemetry.propagate.inject/extract"
        )
    if executor is not None and not isinstance(executor, Executor):
        raise TypeError(f"expected a concurrent.futures.Executor, got {type(executor).__name__}")


class ContextExecutor(Executor):
    """An executor wrapper whose ``submit`` (and so ``map``) runs each call in the submitter's
    context; one copy per call, so calls never share a context. Made by :func:`wrap_executor`;
    shutting it down shuts the wrapped executor down."""

    def __init__(self, executor: Executor) -> None:
        self.executor = executor

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        return self.executor.submit(_in_copied_context(fn, *args, **kwargs))

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.executor.shutdown(wait=wait, cancel_futures=cancel_futures)

    def __repr__(self) -> str:
        return f"ContextExecutor({self.executor!r})"


def wrap_executor(executor: Executor) -> ContextExecutor:
    """A view of ``executor`` whose ``submit``/``map`` keep the caller's trace context.

    ``pool = mltrace.wrap_executor(ThreadPoolExecutor(4))``; ``pool.submit(model.predict, x)``
    then records the worker's spans in the request's trace. Wrapping twice is harmless.
    """
    if isinstance(executor, ContextExecutor):
        return executor
    if not isinstance(executor, Executor):
        raise TypeError(f"expected a concurrent.futures.Executor, got {type(executor).__name__}")
    _check_executor(executor)
    return ContextExecutor(executor)


class ContextThreadPoolExecutor(ThreadPoolExecutor):
    """A ``ThreadPoolExecutor`` whose ``submit`` runs each call in the submitter's context.

    Being a real ``ThreadPoolExecutor``, it can be the event loop's default executor, which
    fixes ``loop.run_in_executor(None, ...)`` calls made by code you do not control:
    ``asyncio.get_running_loop().set_default_executor(mltrace.ContextThreadPoolExecutor())``.
    """

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        return super().submit(_in_copied_context(fn, *args, **kwargs))
