"""The live monitors, held weakly, for whoever publishes their state (the metrics layer).

A monitor joins when it is made and leaves when it is garbage collected: nothing here keeps one
alive, and nothing grows with traffic. Pure Python; the OpenTelemetry side is
:mod:`mltrace.export._drift_metrics`, which installs a :class:`Listener` only when metrics are on.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ._monitor import DriftMonitor


class Listener(Protocol):
    def monitor_added(self, monitor: DriftMonitor) -> None: ...

    def alert_raised(self, monitor: DriftMonitor) -> None: ...


@dataclass(frozen=True)
class Snapshot:
    """What a monitor's last window recompute found (``window_score`` ``None`` before ``min_samples``)."""

    model: str | None
    reference: str
    window_score: float | None
    alert: bool
    psi: dict[str, float]


_lock = threading.Lock()
_monitors: weakref.WeakSet[DriftMonitor] = weakref.WeakSet()
_listener: Listener | None = None


def add(monitor: DriftMonitor) -> None:
    with _lock:
        _monitors.add(monitor)
        listener = _listener
    if listener is not None:
        listener.monitor_added(monitor)


def alert_raised(monitor: DriftMonitor) -> None:
    """The monitor's window alert just turned on (called outside the monitor's lock)."""
    listener = _listener
    if listener is not None:
        listener.alert_raised(monitor)


def live() -> list[DriftMonitor]:
    """The monitors alive now."""
    with _lock:
        return list(_monitors)


def listen(listener: Listener | None) -> list[DriftMonitor]:
    """Install (or remove) the listener; returns the monitors alive at that moment."""
    global _listener
    with _lock:
        _listener = listener
        return list(_monitors)


def snapshot(monitor: DriftMonitor) -> Snapshot:
    """The cached window state (no recompute: collecting metrics costs the served path nothing)."""
    score, alert, psi = monitor.window_state()
    return Snapshot(monitor.model, monitor.profile.id, score, alert, psi)
