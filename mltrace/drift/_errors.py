"""Errors the drift package raises to its caller (never into a served request)."""

from __future__ import annotations

from .._errors import MLTraceError


class ProfileMismatchError(MLTraceError, ValueError):
    """Incoming data does not match the reference profile (names the features or shapes)."""


class ProfileFormatError(MLTraceError, ValueError):
    """A saved reference profile cannot be read (wrong format, version, or edited content)."""
