"""``MicroBatcher``: an asyncio micro-batcher whose batches keep every request's trace.

Requests ``await batcher.submit(x)``; up to ``max_batch_size`` inputs that arrive within
``max_wait_ms`` of the oldest one run together as ``fn(inputs)``. Tracing is that of
:func:`record_batch`: a ``batch_wait`` and an ``inference`` span in each request's trace, one
linked ``inference`` span for the batch.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import Any, Generic, TypeVar

from .. import semconv
from .._errors import ConfigurationError
from ._batch_spans import ML_BATCH_TRIGGER, BatchMember, BatchSizeError, batch_member, record_batch

In = TypeVar("In")
Out = TypeVar("Out")

BatchFunction = Callable[[list[In]], Sequence[Out] | Awaitable[Sequence[Out]]]


class _Pending(Generic[In, Out]):
    __slots__ = ("deadline", "future", "member")

    def __init__(self, member: BatchMember[In], future: asyncio.Future[Out], deadline: float) -> None:
        self.member = member
        self.future = future
        self.deadline = deadline


def _is_async(fn: object) -> bool:
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))  # noqa: B004


class MicroBatcher(Generic[In, Out]):
    """Collect concurrent requests into batches for ``fn(list_of_inputs) -> list_of_outputs``.

    ``fn`` may be sync or async; a sync ``fn`` runs in a worker thread (``asyncio.to_thread``)
    unless ``threaded=False``, so a slow model does not stall the event loop. A batch starts
    when ``max_batch_size`` inputs are queued, or ``max_wait_ms`` after its oldest input
    arrived, and at most ``max_concurrent_batches`` run at once (inputs queue meanwhile, so
    batches grow under load). ``max_wait_ms=0`` never waits: a request runs as soon as a batch
    slot is free, together with whatever queued while the slot was busy.

    Use from one event loop at a time; ``await batcher.aclose()`` (or ``async with``) runs
    what is queued and stops.
    """

    def __init__(
        self,
        fn: BatchFunction[In, Out],
        *,
        max_batch_size: int = 32,
        max_wait_ms: float = 5.0,
        max_concurrent_batches: int = 1,
        threaded: bool = True,
        stage: str = semconv.STAGE_INFERENCE,
        model: str | None = None,
        version: str | None = None,
        framework: str | None = None,
        attributes: Mapping[str, Any] | None = None,
        record_input: bool = True,
        record_output: bool = True,
    ) -> None:
        if not callable(fn):
            raise TypeError(f"MicroBatcher needs a callable batch function, not {type(fn).__name__}")
        if isinstance(max_batch_size, bool) or not isinstance(max_batch_size, int) or max_batch_size < 1:
            raise ConfigurationError(f"max_batch_size must be an integer >= 1; got {max_batch_size!r}")
        if isinstance(max_wait_ms, bool) or not isinstance(max_wait_ms, int | float) or not max_wait_ms >= 0:
            raise ConfigurationError(f"max_wait_ms must be a number >= 0; got {max_wait_ms!r}")
        if (
            isinstance(max_concurrent_batches, bool)
            or not isinstance(max_concurrent_batches, int)
            or max_concurrent_batches < 1
        ):
            raise ConfigurationError(
                f"max_concurrent_batches must be an integer >= 1; got {max_concurrent_batches!r}"
            )
        self._fn = fn
        self._async = _is_async(fn)
        self._threaded = threaded
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_concurrent_batches = max_concurrent_batches
        self._options: dict[str, Any] = {
            "stage": stage,
            "model": model,
            "version": version,
            "framework": framework,
            "attributes": attributes,
            "record_input": record_input,
            "record_output": record_output,
        }
        record_batch((), **self._options)  # validate now rather than in the first batch
        self._queue: deque[_Pending[In, Out]] = deque()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._closing = False

    @property
    def queued(self) -> int:
        """Inputs waiting for a batch to start."""
        return len(self._queue)

    @property
    def running(self) -> int:
        """Batches running now."""
        return len(self._tasks)

    async def submit(self, value: In) -> Out:
        """Queue ``value`` for the next batch and return its output once the batch has run.

        The exception ``fn`` raised, if it did, is raised here in every member of the batch.
        Cancelling the caller before its batch starts takes ``value`` out of the queue.
        """
        if self._closing:
            raise RuntimeError("MicroBatcher is closed")
        loop = self._bind()
        item: _Pending[In, Out] = _Pending(batch_member(value), loop.create_future(), loop.time() + self.max_wait_s)
        self._queue.append(item)
        self._schedule()
        try:
            return await item.future
        except asyncio.CancelledError:
            self._withdraw(item)
            raise

    def _bind(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:
            if self._queue or self._tasks:
                raise RuntimeError("MicroBatcher is in use by another event loop")
            self._loop, self._timer = loop, None  # idle: a new loop (a test client's) may take it over
        return loop

    def _withdraw(self, item: _Pending[In, Out]) -> None:
        try:
            self._queue.remove(item)
        except ValueError:
            return  # already in a running batch
        item.member.close("cancelled")
        self._schedule()

    # -- forming batches ---------------------------------------------------------------------
    def _schedule(self, timer_fired: bool = False) -> None:
        loop, queue = self._loop, self._queue
        assert loop is not None
        while queue and len(self._tasks) < self.max_concurrent_batches:
            full = len(queue) >= self.max_batch_size
            due = timer_fired or queue[0].deadline <= loop.time()
            if not (full or due or self._closing):
                break
            timer_fired = False
            batch = [queue.popleft() for _ in range(min(self.max_batch_size, len(queue)))]
            trigger = "full" if len(batch) == self.max_batch_size else "timeout" if due else "close"
            task = loop.create_task(self._run(batch, trigger), context=contextvars.Context())
            self._tasks.add(task)
        self._arm_timer(loop)

    def _arm_timer(self, loop: asyncio.AbstractEventLoop) -> None:
        # One timer, for the oldest queued input; none while every batch slot is busy (a
        # finishing batch schedules the next) or nothing is queued.
        want = bool(self._queue) and len(self._tasks) < self.max_concurrent_batches
        if self._timer is not None and (not want or self._timer_at != self._queue[0].deadline):
            self._timer.cancel()
            self._timer = None
        if want and self._timer is None:
            self._timer_at = self._queue[0].deadline
            self._timer = loop.call_at(self._timer_at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        if self._queue:
            self._schedule(timer_fired=True)

    # -- running a batch ---------------------------------------------------------------------
    async def _run(self, batch: list[_Pending[In, Out]], trigger: str) -> None:
        try:
            outputs = await self._call([p.member for p in batch], trigger)
        except BaseException as exc:
            for p in batch:
                if p.future.done():
                    continue
                if isinstance(exc, asyncio.CancelledError):  # the loop is shutting down
                    p.future.cancel()
                else:
                    p.future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            for p, out in zip(batch, outputs, strict=True):
                if not p.future.done():
                    p.future.set_result(out)
        finally:
            self._tasks.discard(asyncio.current_task())  # type: ignore[arg-type]
            if self._queue:
                self._schedule()

    async def _call(self, members: list[BatchMember[In]], trigger: str) -> list[Out]:
        with record_batch(members, **self._options) as batch:
            batch.set_attribute(ML_BATCH_TRIGGER, trigger)
            inputs = batch.inputs
            if self._threaded and not self._async:
                result: Any = await asyncio.to_thread(self._fn, inputs)
            else:
                result = self._fn(inputs)
            if inspect.isawaitable(result):
                result = await result
            outputs = list(result)
            if len(outputs) != len(members):
                raise BatchSizeError(
                    f"batch function returned {len(outputs)} outputs for {len(members)} inputs"
                )
            batch.record_outputs(outputs)
            return outputs

    # -- closing -----------------------------------------------------------------------------
    async def aclose(self) -> None:
        """Stop taking inputs, run what is queued, and wait for running batches to finish."""
        self._closing = True
        if self._loop is None:
            return
        self._schedule()
        while self._tasks or self._queue:
            if self._tasks:
                await asyncio.gather(*list(self._tasks), return_exceptions=True)
            else:
                self._schedule()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    async def __aenter__(self) -> MicroBatcher[In, Out]:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()
