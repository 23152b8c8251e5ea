"""Errors the drift package raises, re-exported from :mod:`mltrace._errors` (the one error tree)."""

from __future__ import annotations

from .._errors import InputDataError, InvalidArgumentError, ProfileFormatError, ProfileMismatchError

__all__ = ["InputDataError", "InvalidArgumentError", "ProfileFormatError", "ProfileMismatchError"]
