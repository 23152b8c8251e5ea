"""Which attributes of a trace are worth comparing across traces, flattened to one dict per trace.

Attribute values of every span are merged; where several spans carry a key (``ml.input.size`` on
preprocess and inference) the model's view wins: inference, then preprocess, postprocess,
feature lookup, a user's own stages, and last the spans outside any stage. Identifiers, timings
and instrumentation bookkeeping are left out, and a few resource keys (model version, host) are
added where the spans lack them.
"""

from __future__ import annotations

import json
from typing import Any

from .. import semconv
from ..query import Span, Trace

_SKIP_KEYS = frozenset(
    {
        semconv.ML_STAGE,
        "ml.input.fingerprint",
        "ml.output.fingerprint",
        semconv.ML_PAYLOAD_REF,
        semconv.ML_FEEDBACK_TRACE_ID,
        semconv.ML_FEEDBACK_SPAN_ID,
        semconv.ML_TRACE_ERROR,
        "client.address",
        "client.port",
        "server.port",
        "user_agent.original",
        "url.full",
        "url.query",
        "http.url",
        "http.target",
        "span.kind",
        "error",
    }
)
_SKIP_PREFIXES = ("code.", "thread.", "otel.", "telemetry.", "network.peer.", "exception.", "net.sock.")
_RESOURCE_KEYS = (
    semconv.ML_MODEL_NAME,
    semconv.ML_MODEL_VERSION,
    "service.version",
    "host.name",
    "k8s.pod.name",
    "cloud.region",
    "deployment.environment",
    "deployment.environment.name",
)


def comparable(key: str) -> bool:
    return key not in _SKIP_KEYS and not key.startswith(_SKIP_PREFIXES)


_COMPARABLE: dict[str, bool] = {}  # memo of comparable(): attribute vocabularies are small


def _is_comparable(key: str) -> bool:
    ok = _COMPARABLE.get(key)
    if ok is None:
        ok = comparable(key)
        if len(_COMPARABLE) < 100_000:
            _COMPARABLE[key] = ok
    return ok


def _flat(value: Any) -> Any:
    if isinstance(value, list | tuple | dict):
        return json.dumps(value, separators=(",", ":"))
    return value


_PRIORITY = {
    semconv.STAGE_INFERENCE: 0,
    semconv.STAGE_PREPROCESS: 1,
    semconv.STAGE_POSTPROCESS: 2,
    semconv.STAGE_FEATURE_LOOKUP: 3,
}


def _priority(span: Span) -> int:
    stage = span.attributes.get(semconv.ML_STAGE)
    return 5 if stage is None else _PRIORITY.get(stage, 4)


def trace_attributes(trace: Trace) -> dict[str, Any]:
    """One flat dict of the trace's comparable attributes (lists become their JSON text)."""
    out: dict[str, Any] = {}
    for span in sorted(trace.spans, key=_priority):
        for key, value in span.attributes.items():
            if key not in out and value is not None and _is_comparable(key):
                out[key] = _flat(value) if isinstance(value, list | tuple | dict) else value
    if trace.spans:
        resource = trace.root.resource
        for key in _RESOURCE_KEYS:
            if key not in out and key in resource:
                out[key] = _flat(resource[key])
    return out


def attribute_value(trace: Trace, key: str) -> Any:
    """``key`` on the trace's spans, else on its resource (lists as JSON text); ``None`` if absent."""
    value = trace.attribute(key)
    if value is None and trace.spans:
        value = trace.root.resource.get(key)
    return _flat(value) if value is not None else None
