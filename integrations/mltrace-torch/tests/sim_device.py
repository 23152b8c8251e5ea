"""A simulated in-order device stream for the timing tests: no GPU and no torch needed.

Events and work are queued in order, as on a CUDA stream; nothing completes until the test lets
the device run, so the tests decide exactly when each timing becomes resolvable.
"""

from __future__ import annotations

from typing import Any


class SimEvent:
    """Duck-typed like ``torch.cuda.Event(enable_timing=True)``."""

    def __init__(self, device: SimDevice) -> None:
        self.device = device
        self.time_ms: float | None = None
        self.done = False
        self.records = 0
        self.queries = 0
        self.fail = False

    def record(self, stream: Any = None) -> None:
        self.records += 1
        self.done, self.time_ms = False, None
        self.device.queue.append(self)

    def query(self) -> bool:
        self.queries += 1
        if self.fail:
            raise RuntimeError("simulated device error")
        return self.done

    def elapsed_time(self, end_event: SimEvent) -> float:
        assert self.time_ms is not None and end_event.time_ms is not None
        return end_event.time_ms - self.time_ms

    def synchronize(self) -> None:
        self.device.run(until=self)


class SimDevice:
    """One stream's queue of work (milliseconds) and events, run only when the test says so."""

    type = "sim"
    index = 0

    def __init__(self) -> None:
        self.queue: list[SimEvent | float] = []
        self.clock_ms = 0.0
        self.created = 0

    def event(self, device: Any = None) -> SimEvent:
        self.created += 1
        return SimEvent(self)

    def work(self, ms: float) -> None:
        self.queue.append(ms)

    def run(self, *, until: SimEvent | None = None, items: int | None = None) -> None:
        """Execute queued items in order: all of them, ``items`` of them, or up to ``until``."""
        done = 0
        while self.queue and (items is None or done < items):
            item = self.queue.pop(0)
            done += 1
            if isinstance(item, SimEvent):
                item.time_ms, item.done = self.clock_ms, True
                if item is until:
                    return
            else:
                self.clock_ms += item
