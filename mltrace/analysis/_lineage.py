"""``lineage``: from a prediction back to what produced it.

For one trace: the input (summary and fingerprint), the features fetched and from which store,
the model name and version, the drift scores at that moment, the output, and, where payload
capture was on, the stored (already redacted) payloads. For a fingerprint: every prediction made
on that same input.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from .. import semconv
from ..query import Span, Trace, TraceSource
from ._breakdown import stage_breakdown
from ._reports import (
    FingerprintReport,
    LineageReport,
    PredictionRow,
    StageOutput,
    TraceHeader,
)

FINGERPRINT = semconv.ML_INPUT_PREFIX + "fingerprint"
_STORE_KEYS = ("db.system", "db.system.name", "server.address", "server.port", "db.namespace", "db.operation.name")


def _prefixed(span: Span, prefix: str) -> dict[str, Any]:
    return {k[len(prefix) :]: v for k, v in span.attributes.items() if k.startswith(prefix)}


def _first(trace: Trace, key: str, stage: str | None = None) -> Any:
    for span in trace.spans:
        if (stage is None or span.stage == stage) and key in span.attributes:
            return span.attributes[key]
    return None


def _input(trace: Trace) -> dict[str, Any]:
    """The first stage input summary (preprocess, else inference, else the request body)."""
    for stage in (semconv.STAGE_PREPROCESS, semconv.STAGE_INFERENCE, None):
        for span in trace.spans:
            if stage is not None and span.stage != stage:
                continue
            summary = _prefixed(span, semconv.ML_INPUT_PREFIX)
            if stage is None and not summary:
                summary = _prefixed(span, semconv.ML_REQUEST_BODY_PREFIX)
            if summary:
                return {"stage": span.stage or span.name, "span_id": span.span_id, "summary": summary}
    return {}


def _features(trace: Trace) -> list[dict[str, Any]]:
    out = []
    for span in trace.spans:
        if span.stage != semconv.STAGE_FEATURE_LOOKUP:
            continue
        calls = [c for c in trace.children.get(span.span_id, []) if c.kind == "CLIENT"]
        out.append(
            {
                "span_id": span.span_id,
                "name": span.name,
                "store": span.attributes.get(semconv.ML_FEATURE_STORE_NAME),
                "keys": span.attributes.get(semconv.ML_FEATURE_STORE_KEYS),
                "hits": span.attributes.get(semconv.ML_FEATURE_STORE_HITS),
                "misses": span.attributes.get(semconv.ML_FEATURE_STORE_MISSES),
                "duration_ms": round(span.duration_ms, 3),
                "calls": [
                    {"name": c.name, "duration_ms": round(c.duration_ms, 3),
                     **{k: c.attributes[k] for k in _STORE_KEYS if k in c.attributes}}
                    for c in calls
                ],
                "output": _prefixed(span, semconv.ML_OUTPUT_PREFIX),
            }
        )
    return out


def _model(trace: Trace) -> dict[str, Any]:
    resource = trace.root.resource if trace.spans else {}
    keys = {"name": semconv.ML_MODEL_NAME, "version": semconv.ML_MODEL_VERSION, "framework": semconv.ML_MODEL_FRAMEWORK}
    out = {}
    for field, key in keys.items():
        value = _first(trace, key, semconv.STAGE_INFERENCE)
        if value is None:
            value = _first(trace, key)
        if value is None:
            value = resource.get(key)
        if value is not None:
            out[field] = value
    batch = _first(trace, semconv.ML_BATCH_SIZE)
    if batch is not None:
        out["batch_size"] = batch
    return out


def _drift(trace: Trace) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for span in trace.spans:
        for k, v in _prefixed(span, "ml.drift.").items():
            out.setdefault(k, v)
    return out


def _outputs(trace: Trace) -> list[StageOutput]:
    """Each stage's output as its own object, the final one first (postprocess, then inference).

    A postprocess that returns a pydantic result and an inference that returns an array are two
    objects: one dict merging them put the result's fields and the array's statistics on one line.
    """
    out: list[StageOutput] = []
    for stage in (semconv.STAGE_POSTPROCESS, semconv.STAGE_INFERENCE):
        for span in trace.spans:
            if span.stage == stage and (summary := _prefixed(span, semconv.ML_OUTPUT_PREFIX)):
                out.append({"stage": stage, "span_id": span.span_id, "summary": summary})
    return out


def _output(trace: Trace) -> dict[str, Any]:
    """Every output key of postprocess and inference merged (the first wins): kept for ``--json``
    readers of ``output`` and for ``prediction``/``confidence`` wherever a stage set them;
    ``outputs`` holds each object apart."""
    out: dict[str, Any] = {}
    for stage in (semconv.STAGE_POSTPROCESS, semconv.STAGE_INFERENCE):
        for span in trace.spans:
            if span.stage == stage:
                for k, v in _prefixed(span, semconv.ML_OUTPUT_PREFIX).items():
                    out.setdefault(k, v)
    return out


def _file_payloads(ref: str) -> list[dict[str, Any]]:
    folder = Path(unquote(urlsplit(ref).path))
    if not folder.is_dir():
        return []
    return [{"kind": f.stem, "body": f.read_text(encoding="utf-8"), "ref": ref} for f in sorted(folder.glob("*.json"))]


def _payloads(source: TraceSource, trace: Trace) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    reader = getattr(source, "payloads", None)
    if callable(reader):
        rows.extend(reader(trace.trace_id))
    for span in trace.spans:
        ref = span.attributes.get(semconv.ML_PAYLOAD_REF)
        if isinstance(ref, str) and ref.startswith("file:"):
            rows.extend(_file_payloads(ref))
    out = []
    for row in rows:
        body: Any = row.get("body")
        if isinstance(body, str):
            with contextlib.suppress(ValueError):
                body = json.loads(body)
        out.append({"kind": row.get("kind"), "span_id": row.get("span_id"), "body": body})
    return out


def trace_header(trace: Trace) -> TraceHeader:
    """Which trace: its id, root span's name and service, start, duration and error flag."""
    root = trace.root
    return {
        "trace_id": trace.trace_id,
        "name": root.name,
        "service": root.service,
        "start_us": trace.start_us,
        "duration_ms": round(trace.duration_ms, 3),
        "error": trace.error,
    }


def trace_lineage(source: TraceSource, trace: Trace) -> LineageReport:
    """The lineage record of an already-fetched trace."""
    root = trace.root
    inp = _input(trace)
    return {
        **trace_header(trace),
        "status": root.attributes.get("http.response.status_code"),
        "fingerprint": inp.get("summary", {}).get("fingerprint"),
        "input": inp,
        "features": _features(trace),
        "model": _model(trace),
        "drift": _drift(trace),
        "output": _output(trace),
        "outputs": _outputs(trace),
        "stages": stage_breakdown(trace),
        "payloads": _payloads(source, trace),
    }


def lineage(source: TraceSource, trace_id: str) -> LineageReport:
    """What one prediction saw and produced (``mltrace lineage TRACE_ID``)."""
    return trace_lineage(source, source.get_trace(trace_id))


def predictions_for_input(source: TraceSource, fingerprint: str, *, limit: int = 100) -> FingerprintReport:
    """Every prediction made on the input with this fingerprint (``mltrace lineage --fingerprint``)."""
    traces = source.find_by_attribute(FINGERPRINT, fingerprint, limit=limit)
    rows: list[PredictionRow] = []
    for t in traces:
        model = _model(t)
        out = _output(t)
        rows.append(
            {
                "trace_id": t.trace_id,
                "service": t.root.service,
                "start_us": t.start_us,
                "duration_ms": round(t.duration_ms, 3),
                "model_version": model.get("version"),
                "prediction": out.get("prediction"),
                "confidence": out.get("confidence"),
                "drift_score": _drift(t).get("score"),
                "error": t.error,
            }
        )
    return {"source": source.url, "fingerprint": fingerprint, "count": len(rows), "predictions": rows}
