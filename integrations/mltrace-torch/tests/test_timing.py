"""The event pool and lazy resolver, driven by a simulated device (no torch, no GPU)."""

from __future__ import annotations

import threading

import pytest
from mltrace_torch import DeviceTimer, EventPool, Resolver
from sim_device import SimDevice, SimEvent


def _record(device: SimDevice, pool: EventPool, work_ms: float) -> tuple[SimEvent, SimEvent]:
    pair = pool.acquire()
    assert pair is not None
    pair[0].record()
    device.work(work_ms)
    pair[1].record()
    return pair  # type: ignore[return-value]


def test_pool_reuses_released_pairs() -> None:
    """Ten sequential timings create one pair of events, recorded ten times each."""
    device = SimDevice()
    pool = EventPool(device.event)
    for _ in range(10):
        pair = _record(device, pool, 1.0)
        device.run()
        pool.release(pair)
    assert device.created == 2 and pool.created == 1 and pool.in_flight == 0
    assert pair[0].records == 10


def test_pool_limit_leaves_calls_untimed() -> None:
    """Past the limit of pairs in flight acquire() returns None and counts it; a release makes room."""
    device = SimDevice()
    pool = EventPool(device.event, limit=2)
    first, second = pool.acquire(), pool.acquire()
    assert first is not None and second is not None
    assert pool.acquire() is None and pool.exhausted == 1
    pool.release(first)
    assert pool.acquire() is first


def test_pool_rejects_a_limit_below_one() -> None:
    """A pool that could never time anything is a configuration error."""
    with pytest.raises(ValueError, match="limit"):
        EventPool(SimDevice().event, limit=0)


def test_resolver_reports_device_time_only_once_the_device_got_there() -> None:
    """poll() resolves nothing while the end event is in flight, then reports the device milliseconds."""
    device, results = SimDevice(), []
    pool, resolver = EventPool(device.event), Resolver(background=False)
    resolver.submit("s", pool, _record(device, pool, 3.5), results.append)
    assert resolver.poll() == 0 and results == [] and resolver.pending == 1
    device.run()
    assert resolver.poll() == 1 and results == [3.5]
    assert pool.in_flight == 0 and resolver.resolved == 1


def test_resolver_stops_at_the_first_pair_in_flight_per_stream() -> None:
    """On one stream, completion is in order: one query() on the oldest pending pair is enough."""
    device, other, results = SimDevice(), SimDevice(), []
    pool, resolver = EventPool(device.event), Resolver(background=False)
    pairs = [_record(device, pool, ms) for ms in (1.0, 2.0, 4.0)]
    for pair in pairs:
        resolver.submit("a", pool, pair, results.append)
    other_pool = EventPool(other.event)
    resolver.submit("b", other_pool, _record(other, other_pool, 8.0), results.append)
    other.run()
    device.run(items=6)  # the first two timings (start, work, end each)
    assert resolver.poll() == 3 and sorted(results) == [1.0, 2.0, 8.0]
    assert pairs[2][1].queries == 1  # the third pair was asked once and not touched again


def test_flush_waits_for_everything() -> None:
    """flush() synchronises on the newest pair of each stream and resolves all of them."""
    device, results = SimDevice(), []
    pool, resolver = EventPool(device.event), Resolver(background=False)
    for ms in (1.0, 2.0):
        resolver.submit("s", pool, _record(device, pool, ms), results.append)
    assert resolver.flush(timeout_s=5) and results == [1.0, 2.0]


def test_background_thread_resolves_without_another_call() -> None:
    """The daemon thread resolves a finished timing though no further call comes."""
    device, resolved = SimDevice(), threading.Event()
    pool, resolver = EventPool(device.event), Resolver(interval_s=0.001)
    resolver.submit("s", pool, _record(device, pool, 2.0), lambda ms: resolved.set())
    device.run()
    assert resolved.wait(timeout=5)


def test_timeout_gives_up_and_never_reuses_the_pair() -> None:
    """A pair that never completes is reported as None after the timeout and not put back in the pool."""
    device, results = SimDevice(), []
    pool, resolver = EventPool(device.event), Resolver(background=False, timeout_s=0.0)
    resolver.submit("s", pool, _record(device, pool, 1.0), results.append)
    assert resolver.poll() == 1 and results == [None] and resolver.timed_out == 1
    assert pool.in_flight == 0 and pool.acquire() is not None and pool.created == 2


def test_query_errors_and_callback_errors_are_contained() -> None:
    """A failing query() reports None; a failing callback is counted, never raised."""
    device = SimDevice()
    pool, resolver = EventPool(device.event), Resolver(background=False)
    broken = _record(device, pool, 1.0)
    broken[1].fail = True
    results: list[float | None] = []
    resolver.submit("a", pool, broken, results.append)

    def explode(ms: float | None) -> None:
        raise RuntimeError("callback bug")

    resolver.submit("b", pool, _record(device, pool, 1.0), explode)
    device.run()
    assert resolver.poll() == 2 and results == [None]
    assert resolver.failed == 1 and resolver.callback_errors == 1


def test_device_timer_records_on_the_stream_and_resolves_on_the_next_start() -> None:
    """DeviceTimer: start/stop record the pair on the device's stream; the next start() resolves it."""
    device, results = SimDevice(), []
    timer = DeviceTimer(event_factory=device.event, stream_of=lambda d: "stream-0", device_types=("sim",),
                        resolver=Resolver(background=False))
    assert timer.applies(device) and not timer.applies(object())
    timing = timer.start(device)
    assert timing is not None
    device.work(5.0)
    timer.stop(timing)
    timer.submit(timing, results.append)
    device.run()
    second = timer.start(device)
    assert results == [5.0] and second is not None and second.pair is timing.pair
    timer.abandon(second)
    assert timer.pool(device).in_flight == 0
