"""Device time from pooled timing events, resolved lazily: never a synchronisation on the hot path.

Nothing here imports torch. An *event* is anything with ``record(stream)``, ``query()``,
``elapsed_time(end)`` and ``synchronize()`` (``torch.cuda.Event(enable_timing=True)`` in
production, a plain object in tests), so the pool and the resolver are tested on machines
without a GPU or torch.

- :class:`EventPool` keeps finished event pairs for reuse: creating and recording a pair costs
  ~17 µs on the host (H200, torch 2.11), recording a reused pair much less.
- :class:`Resolver` holds the pairs still in flight, one FIFO queue per stream. A stream runs in
  order, so one ``query()`` (~0.3 µs) on the oldest pair tells whether any later pair can be
  done. It resolves what has completed on the next traced call and from a daemon thread that
  polls only while something is pending; ``flush()`` waits for everything (shutdown, tests).
"""

from __future__ import annotations

import contextlib
import enum
import logging
import os
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any, Protocol

_log = logging.getLogger("mltrace_torch")


class TimingEvent(Protocol):
    def record(self, stream: Any = ...) -> None: ...
    def query(self) -> bool: ...
    def elapsed_time(self, end_event: Any) -> float: ...
    def synchronize(self) -> None: ...


Done = Callable[[float | None], None]
"""Called once per timing with the device milliseconds, or ``None`` when they could not be had."""


class EventPool:
    """Reusable (start, end) event pairs for one device.

    Grows on demand up to ``limit`` pairs in flight; past that :meth:`acquire` returns ``None``
    and the call goes untimed (counted in :attr:`exhausted`) rather than allocating without bound.
    """

    def __init__(self, factory: Callable[[], TimingEvent], *, limit: int = 1024) -> None:
        if limit < 1:
            raise ValueError(f"limit must be at least 1; got {limit}")
        self._factory = factory
        self._free: list[tuple[TimingEvent, TimingEvent]] = []
        self._lock = threading.Lock()
        self.limit = limit
        self.created = 0
        self.in_flight = 0
        self.exhausted = 0

    def acquire(self) -> tuple[TimingEvent, TimingEvent] | None:
        with self._lock:
            if self._free:
                self.in_flight += 1
                return self._free.pop()
            if self.in_flight >= self.limit:
                self.exhausted += 1
                return None
            self.in_flight += 1
            self.created += 1
        try:
            return self._factory(), self._factory()
        except BaseException:
            with self._lock:
                self.in_flight -= 1
                self.created -= 1
            raise

    def release(self, pair: tuple[TimingEvent, TimingEvent]) -> None:
        """Return a pair whose end event has completed (both may be recorded again)."""
        with self._lock:
            self.in_flight -= 1
            self._free.append(pair)

    def discard(self, pair: tuple[TimingEvent, TimingEvent]) -> None:
        """Forget a pair that may still be in flight (never reused: a re-record would race)."""
        with self._lock:
            self.in_flight -= 1


class _Pending:
    __slots__ = ("deadline", "done", "pair", "pool")

    def __init__(self, pool: EventPool, pair: tuple[TimingEvent, TimingEvent], done: Done, deadline: float) -> None:
        self.pool = pool
        self.pair = pair
        self.done = done
        self.deadline = deadline


class Resolver:
    """Turns recorded event pairs into device milliseconds once the device has reached them.

    ``poll()`` never blocks: it skips when another thread is polling and stops at the first pair
    still in flight on each stream. A pair older than ``timeout_s`` is given up on (``done(None)``).
    """

    def __init__(self, *, interval_s: float = 0.002, timeout_s: float = 60.0, background: bool = True) -> None:
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self.background = background
        self._queues: dict[Hashable, deque[_Pending]] = {}
        self._lock = threading.Lock()  # guards _queues and the polling itself
        self._wake = threading.Condition(threading.Lock())
        self._pending = 0
        self._thread: threading.Thread | None = None
        self.resolved = 0
        self.timed_out = 0
        self.failed = 0
        self.callback_errors = 0
        ref = weakref.ref(self)  # the fork hook must not keep a resolver alive

        def after_fork() -> None:
            resolver = ref()
            if resolver is not None:
                resolver._after_fork()

        with contextlib.suppress(AttributeError):  # no fork on this platform
            os.register_at_fork(after_in_child=after_fork)

    @property
    def pending(self) -> int:
        return self._pending

    def submit(self, stream: Hashable, pool: EventPool, pair: tuple[TimingEvent, TimingEvent], done: Done) -> None:
        """Queue a recorded pair; ``done`` runs later, on whichever thread resolves it."""
        item = _Pending(pool, pair, done, time.monotonic() + self.timeout_s)
        with self._lock:
            self._queues.setdefault(stream, deque()).append(item)
            self._pending += 1
        if self.background:
            self._ensure_thread()
            with self._wake:
                self._wake.notify()

    def poll(self) -> int:
        """Resolve every pair whose end event has completed; returns how many. Never waits."""
        if not self._pending or not self._lock.acquire(blocking=False):
            return 0
        finished: list[tuple[_Pending, float | None]] = []
        try:
            now = time.monotonic()
            for queue in self._queues.values():
                while queue:
                    item = queue[0]
                    state, ms = _try_resolve(item, now)
                    if state is _State.WAIT:
                        break
                    queue.popleft()
                    self._pending -= 1
                    if state is _State.TIMEOUT:
                        self.timed_out += 1
                    elif state is _State.ERROR:
                        self.failed += 1
                    finished.append((item, ms))
        finally:
            self._lock.release()
        for item, ms in finished:  # callbacks outside the lock: they end spans
            self._finish(item, ms)
        return len(finished)

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until every pending pair is resolved (``synchronize()`` on each); True when none is left.

        For shutdown and tests, never for the request path.
        """
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while self._pending:
            with self._lock:
                heads = [q[-1].pair[1] for q in self._queues.values() if q]
            for end in heads:  # the newest pair per stream: once it is done, all before it are
                with contextlib.suppress(Exception):
                    end.synchronize()
            self.poll()
            if deadline is not None and time.monotonic() > deadline:
                break
            if self._pending:
                time.sleep(self.interval_s)
        return not self._pending

    def _finish(self, item: _Pending, ms: float | None) -> None:
        if ms is None:
            item.pool.discard(item.pair)
        else:
            item.pool.release(item.pair)
            self.resolved += 1
        try:
            item.done(ms)
        except Exception:  # a callback failure is ours to swallow, never the request's
            self.callback_errors += 1
            _log.debug("mltrace_torch: timing callback failed", exc_info=True)

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        with self._wake:
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="mltrace-torch-resolver", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._pending:
                    self._wake.wait()
            time.sleep(self.interval_s)
            try:
                self.poll()
            except Exception:  # pragma: no cover - poll guards each item; keep the thread alive
                _log.debug("mltrace_torch: resolver poll failed", exc_info=True)

    def _after_fork(self) -> None:
        self._lock = threading.Lock()
        self._wake = threading.Condition(threading.Lock())
        self._thread = None
        self._queues = {}
        self._pending = 0


class _State(enum.Enum):
    DONE = "done"
    WAIT = "wait"
    TIMEOUT = "timeout"
    ERROR = "error"


def _try_resolve(item: _Pending, now: float) -> tuple[_State, float | None]:
    """The pair's device milliseconds once its end event has completed."""
    start, end = item.pair
    try:
        if end.query():
            return _State.DONE, float(start.elapsed_time(end))
    except Exception:
        _log.debug("mltrace_torch: event query failed", exc_info=True)
        return _State.ERROR, None
    return (_State.TIMEOUT, None) if now > item.deadline else (_State.WAIT, None)
