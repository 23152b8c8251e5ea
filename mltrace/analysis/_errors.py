"""Errors of the analysis layer, re-exported from :mod:`mltrace._errors` (the one error tree)."""

from __future__ import annotations

from .._errors import InvalidArgumentError, UnknownStage

__all__ = ["InvalidArgumentError", "UnknownStage"]
