"""Errors of the analysis layer (each an :class:`mltrace.MLTraceError`)."""

from __future__ import annotations

from .._errors import MLTraceError


class UnknownStage(MLTraceError, LookupError):
    """``--stage`` names a stage none of the traces has."""

    def __init__(self, stage: str, known: list[str]) -> None:
        self.stage = stage
        self.known = known
        super().__init__(f"no {stage!r} stage in these traces (stages seen: {', '.join(known) or 'none'})")
