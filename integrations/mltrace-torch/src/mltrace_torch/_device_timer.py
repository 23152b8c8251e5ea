"""Which calls get device timing, and the per-device event pools behind them.

``DeviceTimer`` binds the torch-free :mod:`._timing` core to CUDA: events come from
``torch.cuda.Event(enable_timing=True)`` and are recorded on ``torch.cuda.current_stream``.
Both are injectable, so the whole path (pool, deferred span end) also runs in tests on a CPU.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Callable, Hashable
from typing import Any

from ._timing import Done, EventPool, Resolver, TimingEvent

EventFactory = Callable[[Any], TimingEvent]
StreamOf = Callable[[Any], Any]


class Timing:
    """One call's recorded start event; :meth:`DeviceTimer.finish` records its end."""

    __slots__ = ("pair", "pool", "stream", "stream_key")

    def __init__(
        self, pool: EventPool, pair: tuple[TimingEvent, TimingEvent], stream: Any, stream_key: Hashable
    ) -> None:
        self.pool = pool
        self.pair = pair
        self.stream = stream
        self.stream_key = stream_key


def _cuda_event(device: Any) -> TimingEvent:
    import torch

    event: TimingEvent = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]
    return event


def _cuda_stream(device: Any) -> Any:
    import torch

    return torch.cuda.current_stream(device)


def _stream_key(stream: Any) -> Hashable:
    handle = getattr(stream, "cuda_stream", None)
    if handle is not None:
        return (getattr(stream, "device_index", None), handle)
    return stream if isinstance(stream, Hashable) else id(stream)


class DeviceTimer:
    """Times calls on the devices of ``device_types`` with pooled events, resolved lazily."""

    def __init__(
        self,
        *,
        event_factory: EventFactory | None = None,
        stream_of: StreamOf | None = None,
        device_types: tuple[str, ...] = ("cuda",),
        resolver: Resolver | None = None,
        pool_limit: int = 1024,
    ) -> None:
        self._event_factory = event_factory or _cuda_event
        self._stream_of = stream_of or _cuda_stream
        self.device_types = frozenset(device_types)
        self.resolver = resolver or Resolver()
        self.pool_limit = pool_limit
        self._pools: dict[Hashable, EventPool] = {}
        self._lock = threading.Lock()

    def applies(self, device: Any) -> bool:
        return getattr(device, "type", None) in self.device_types and not _capturing(device)

    def pool(self, device: Any) -> EventPool:
        key = (getattr(device, "type", None), getattr(device, "index", None))
        pool = self._pools.get(key)
        if pool is None:
            with self._lock:
                pool = self._pools.get(key)
                if pool is None:
                    pool = self._pools[key] = EventPool(lambda: self._event_factory(device), limit=self.pool_limit)
        return pool

    def start(self, device: Any) -> Timing | None:
        """Record a start event on the device's current stream; ``None`` when the pool is spent."""
        self.resolver.poll()  # earlier calls' timings, resolved here for free when they are done
        pool = self.pool(device)
        pair = pool.acquire()
        if pair is None:
            return None
        try:
            stream = self._stream_of(device)
            pair[0].record(stream)
        except BaseException:
            pool.discard(pair)
            raise
        return Timing(pool, pair, stream, _stream_key(stream))

    def stop(self, timing: Timing) -> None:
        """Record the end event right after the work (host side: an enqueue, no wait)."""
        timing.pair[1].record(timing.stream)

    def submit(self, timing: Timing, done: Done) -> None:
        """Hand the recorded pair to the resolver; ``done(ms)`` runs once the device got there."""
        self.resolver.submit(timing.stream_key, timing.pool, timing.pair, done)

    def abandon(self, timing: Timing) -> None:
        """Give up a pair whose call failed between start and stop."""
        timing.pool.discard(timing.pair)

    def flush(self, timeout_s: float | None = None) -> bool:
        return self.resolver.flush(timeout_s)


def _capturing(device: Any) -> bool:
    """True inside CUDA graph capture, where timing events must not be recorded."""
    if getattr(device, "type", None) != "cuda":
        return False
    import torch

    return bool(torch.cuda.is_current_stream_capturing())


_default: DeviceTimer | None = None
_default_lock = threading.Lock()


def default_timer() -> DeviceTimer:
    """The process's timer (one resolver thread, one event pool per device)."""
    global _default
    if _default is None:
        with _default_lock:
            if _default is None:
                _default = DeviceTimer()
                atexit.register(_default.flush, 5.0)  # end the spans still waiting, before export stops
    return _default


def flush(timeout_s: float | None = None) -> bool:
    """Wait for every pending device timing and end its span; True when none is left."""
    return _default.flush(timeout_s) if _default is not None else True
