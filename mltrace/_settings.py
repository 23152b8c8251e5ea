"""Runtime options read on the hot path (stages, middleware), set by :func:`mltrace.configure`.

Kept apart from ``_configure`` so that spans can read options without importing the SDK setup.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    return raw.strip().lower() in ("1", "true", "yes", "on")


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        return int(raw)
    except ValueError:
        from ._errors import ConfigurationError

        raise ConfigurationError(f"{name} must be an integer; got {raw!r}") from None


@dataclass
class Settings:
    """What spans record. Every field has an ``MLTRACE_*`` variable (see docs/configuration.md)."""

    summaries: bool = field(default_factory=lambda: env_bool("MLTRACE_SUMMARIES", True))
    # 8 features x 4 statistics + the core keys keeps an input and an output summary, drift and the
    # stage's own keys under OpenTelemetry's default 128 attributes per span (the SDK drops the
    # OLDEST attributes past it, which would be ml.stage itself).
    max_features: int = field(default_factory=lambda: env_int("MLTRACE_MAX_FEATURES", 8))
    summary_max_attributes: int = field(default_factory=lambda: env_int("MLTRACE_SUMMARY_MAX_ATTRIBUTES", 52))
    sample_size: int = field(default_factory=lambda: env_int("MLTRACE_SAMPLE_SIZE", 100_000))
    capture_request_body: bool = field(
        default_factory=lambda: env_bool("MLTRACE_CAPTURE_REQUEST_BODY", False)
    )
    capture_response_body: bool = field(
        default_factory=lambda: env_bool("MLTRACE_CAPTURE_RESPONSE_BODY", False)
    )
    max_body_bytes: int = field(default_factory=lambda: env_int("MLTRACE_MAX_BODY_BYTES", 1 << 20))
    trace_id_header: str = field(
        default_factory=lambda: os.environ.get("MLTRACE_TRACE_ID_HEADER", "X-Trace-Id")
    )
    fastapi_operation_spans: bool = field(
        default_factory=lambda: env_bool("MLTRACE_FASTAPI_OPERATION_SPANS", False)
    )
    # A request header that keeps its trace through head and tail sampling; "" (off) unless set.
    force_trace_header: str = field(default_factory=lambda: os.environ.get("MLTRACE_FORCE_TRACE_HEADER", "").strip())
    # When set, the force header's value must equal it (keeps strangers from forcing traces).
    force_trace_token: str = field(default_factory=lambda: os.environ.get("MLTRACE_FORCE_TRACE_TOKEN", ""))
    # A mltrace.privacy.PayloadCapture once configure(capture_payloads=...) turns raw capture on.
    payload_capture: Any = None


SETTINGS = Settings()
