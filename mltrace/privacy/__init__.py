"""Privacy: raw payload capture is off by default; when on, it is redacted, capped and stored by reference.

``configure(capture_payloads=CaptureRules(deny=("user.email",)))`` turns it on for the middleware;
``Authorization``, ``Cookie``, ``Set-Cookie`` and similar headers are never recorded. See
docs/privacy.md.
"""

from __future__ import annotations

from ._attributes import feature_values_recorded, record_feature_values, span_safe
from ._capture import HttpTap, PayloadCapture, body_document, capture_payload
from ._redact import path_matches, redact, redact_query, redact_text
from ._rules import (
    BUILTIN_PATTERNS,
    DEFAULT_DENY_KEYS,
    DEFAULT_PATTERNS,
    REDACTED,
    SENSITIVE_HEADERS,
    SENSITIVE_QUERY_PARAMS,
    TRUNCATED,
    URL_REDACTED,
    CaptureRules,
    header_allowed,
)
from ._sinks import FileSink, LocalStoreSink, PayloadSink, sink_from_env

__all__ = [
    "BUILTIN_PATTERNS",
    "DEFAULT_DENY_KEYS",
    "DEFAULT_PATTERNS",
    "REDACTED",
    "SENSITIVE_HEADERS",
    "SENSITIVE_QUERY_PARAMS",
    "TRUNCATED",
    "URL_REDACTED",
    "CaptureRules",
    "FileSink",
    "HttpTap",
    "LocalStoreSink",
    "PayloadCapture",
    "PayloadSink",
    "body_document",
    "capture_payload",
    "feature_values_recorded",
    "header_allowed",
    "path_matches",
    "record_feature_values",
    "redact",
    "redact_query",
    "redact_text",
    "sink_from_env",
    "span_safe",
]
