"""``DriftScorer``: what a stage's ``drift=`` argument needs, so signatures say more than ``Any``.

:class:`~mltrace.drift.DriftMonitor` is the one mltrace ships (mypy checks that it conforms); any
object with these methods works, e.g. a wrapper that scores only some requests. A stage calls
``score(x)`` on its input and puts ``span_attributes(result)`` on its span; when the object also
has ``observe_output(y)`` (:class:`OutputDriftScorer`), the stage's output goes there too.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from .._types import AttrValue

if TYPE_CHECKING:
    from ._monitor import DriftMonitor


@runtime_checkable
class DriftScorer(Protocol):
    """Scores a stage's input for drift and names the span attributes for the result."""

    def score(self, x: object) -> Mapping[str, Any]:
        """How unusual ``x`` is (a result mapping; :meth:`DriftMonitor.score` documents its keys)."""
        ...

    def span_attributes(self, result: Mapping[str, Any]) -> Mapping[str, AttrValue]:
        """The ``ml.drift.*`` attributes for a :meth:`score` result (a handful, never per feature)."""
        ...


@runtime_checkable
class OutputDriftScorer(DriftScorer, Protocol):
    """A :class:`DriftScorer` that also watches the stage's outputs."""

    def observe_output(self, y: object) -> Mapping[str, Any] | None:
        """Score outputs against the reference's output distribution (``None``: none profiled)."""
        ...


if TYPE_CHECKING:  # mypy proves DriftMonitor is both, without a runtime cost

    def _conforms(monitor: DriftMonitor) -> tuple[DriftScorer, OutputDriftScorer]:
        return monitor, monitor
