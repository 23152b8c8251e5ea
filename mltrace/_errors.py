"""The one base class for errors mltrace raises to its caller (never into a served request)."""

from __future__ import annotations


class MLTraceError(Exception):
    """Base class of every error mltrace raises on purpose."""


class ConfigurationError(MLTraceError, ValueError):
    """A setting passed to :func:`mltrace.configure` (or read from the environment) is invalid."""
