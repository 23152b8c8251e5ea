"""``mltrace demo``: serve the demo model in-process, send traffic, then investigate what was recorded."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from .. import semconv
from .._configure import configure
from .._errors import ConfigurationError
from ..analysis import analyze_slow, lineage, predictions_for_input, trace_tree
from ..analysis._reports import SlowCause
from ..query import SourceUnavailable, Trace, TraceSource, open_source
from ._app import create_demo_app
from ._model import MODEL_NAME, drift_monitor, load_model
from ._traffic import plan, send

SERVICE = "mltrace-demo"
DEFAULT_DB = "mltrace-demo.db"
PLANTED = (
    {"what": "large batches take inference's slow path", "stage": semconv.STAGE_INFERENCE,
     "attributes": ("ml.input.n_rows", "ml.input.size", "ml.input.shape", "ml.batch.size")},
    {"what": "cold customers miss the feature cache", "stage": semconv.STAGE_FEATURE_LOOKUP,
     "attributes": ("ml.feature_store.misses", "ml.feature_store.hits")},
)

Progress = Callable[[str, int, int], None]


def _exporter_for(url: str, endpoint: str | None) -> dict[str, Any]:
    """``configure()`` arguments that send spans where ``url`` reads them from (``endpoint``
    overrides where they are sent: Jaeger's OTLP gRPC port, or Zipkin's span endpoint)."""
    scheme = url.split("://", 1)[0].lower()
    parts = urlsplit(url.replace(scheme, "http", 1))
    host = parts.hostname or "localhost"
    if scheme.startswith("jaeger"):
        return {"exporter": "jaeger", "endpoint": endpoint or f"http://{host}:4317"}
    if scheme.startswith("zipkin"):
        return {"exporter": "zipkin", "endpoint": endpoint or f"http://{host}:{parts.port or 9411}/api/v2/spans"}
    if scheme == "local" or "://" not in url:
        return {"exporter": "local", "local_path": url.split("://", 1)[-1] or DEFAULT_DB}
    raise ConfigurationError(f"the demo cannot send traces to {url!r}; use local://, jaeger:// or zipkin://")


def _wait_for(source: TraceSource, service: str, since: float, want: int, timeout_s: float) -> list[Trace]:
    """Poll until ``want`` traces are readable (remote backends ingest asynchronously)."""
    deadline = time.monotonic() + timeout_s
    traces: list[Trace] = []
    while True:
        try:
            traces = source.find_traces(service, since, limit=max(want, 1) * 2)
        except LookupError:
            traces = []  # the service appears once its first spans are stored
        if len(traces) >= want or time.monotonic() > deadline:
            return traces
        time.sleep(0.5)


def _planted(causes: list[SlowCause]) -> list[dict[str, Any]]:
    out = []
    for p in PLANTED:
        match = next(
            (c for c in causes if c["stage"] == p["stage"]
             and ({c["attribute"], *(a["attribute"] for a in c.get("also", []))} & set(p["attributes"]))),
            None,
        )
        out.append({"what": p["what"], "stage": p["stage"], "found": match is not None,
                    "rank": match["rank"] if match else None})
    return out


def _most_drifted(traces: list[Trace], prefer: set[str]) -> Trace | None:
    """The trace with the highest drift score, among ``prefer`` where any of them has one."""
    scored = [(s, t) for t in traces if isinstance(s := t.attribute(semconv.ML_DRIFT_SCORE), int | float)]
    preferred = [(s, t) for s, t in scored if t.trace_id in prefer]
    pool = preferred or scored
    return max(pool, key=lambda st: st[0])[1] if pool else None


def run_demo(
    source: str | None = None,
    *,
    requests: int = 300,
    seed: int = 0,
    progress: Progress | None = None,
    wait_s: float = 60.0,
    endpoint: str | None = None,
) -> dict[str, Any]:
    """Serve the demo model in-process, send ``requests`` requests, and investigate the traces.

    ``source`` is where traces go and are read back (default ``local://mltrace-demo.db``; also
    ``jaeger://host:16686`` or ``zipkin://host:9411``). Returns the findings as plain data:
    ``slow``, ``show`` (the slowest trace), ``lineage`` (the most drifted prediction),
    ``same_input`` (predictions on a repeated input) and ``planted`` (did ``slow`` find the causes
    planted in the demo app). ``endpoint`` is where spans are sent when that is not the source's
    host on the default port (Jaeger's OTLP gRPC 4317, Zipkin's ``/api/v2/spans``).
    """
    url = source or f"local://{DEFAULT_DB}"
    # Eight per-feature summaries keep a 30-feature batch's input and output within the span attribute limit.
    export = _exporter_for(url, endpoint)
    handle = configure(service_name=SERVICE, model_name=MODEL_NAME, max_features=8, **export)
    service = str(handle.provider.resource.attributes.get("service.name", SERVICE))
    report = progress or (lambda phase, done, total: None)
    report("training the model", 0, 1)
    model = load_model()
    monitor = drift_monitor(model)
    app = create_demo_app(model, monitor)
    planned = plan(model, requests, seed)
    started = time.time()
    sent = send(app, planned, lambda done: report("sending requests", done, requests))
    if not handle.force_flush(10.0):
        raise SourceUnavailable(f"could not export the demo's spans to {url} within 10 s")
    elapsed = time.time() - started
    report("reading traces back", 0, 1)
    reader = open_source(url)
    try:
        since = time.time() - started + 5.0
        ours = set(sent.trace_ids)
        # only this run's traces: an earlier demo run into the same store is not counted again
        traces = [t for t in _wait_for(reader, service, since, len(ours), wait_s) if t.trace_id in ours]
        if len(traces) < len(sent.trace_ids):
            where = export.get("endpoint") or export.get("local_path")
            raise SourceUnavailable(
                f"only {len(traces)} of the demo's {len(sent.trace_ids)} traces could be read back from {reader.url} "
                f"within {wait_s:.0f} s; they were sent to {where} (pass --endpoint if the backend receives elsewhere)"
            )
        slow = analyze_slow(traces, limit=10)
        drifted = _most_drifted(traces, set(sent.drifted) - set(sent.large))
        pick = drifted.trace_id if drifted is not None else (slow["traces"][0]["trace_id"] if traces else None)
        findings: dict[str, Any] = {
            "source": reader.url,
            "service": service,
            "model": {"name": MODEL_NAME, "framework": model.framework},
            "drift_monitor": monitor is not None,
            "requests": {"sent": len(sent.trace_ids), "failed": sent.failed, "large": len(sent.large),
                         "cold": len(sent.cold), "drifted": len(sent.drifted), "repeated": len(sent.repeated)},
            "elapsed_s": round(elapsed, 2),
            "traces_read": len(traces),
            "slow": {"source": reader.url, "service": service, "since": f"{since:.0f}s", **slow},
            "planted": _planted(slow["causes"]),
            "show": {"source": reader.url, **trace_tree(reader.get_trace(slow["traces"][0]["trace_id"]))}
            if traces else None,
            "lineage": lineage(reader, pick) if pick else None,
            "same_input": None,
        }
        fingerprint = findings["lineage"]["fingerprint"] if findings["lineage"] else None
        if sent.repeated:
            first = lineage(reader, sent.repeated[0])
            fingerprint = first["fingerprint"] or fingerprint
        if fingerprint:
            same = predictions_for_input(reader, str(fingerprint))
            mine = [p for p in same["predictions"] if p["trace_id"] in ours]
            # what it counts: this run's predictions on that input; earlier runs' apart
            findings["same_input"] = {
                **same, "predictions": mine, "count": len(mine), "earlier": same["count"] - len(mine),
            }
        return findings
    finally:
        reader.close()
