"""``diff``: a slow trace beside a typical one, stage by stage and attribute by attribute.

Stages are self times (as ``slow`` and ``show`` count them) and time on the critical path;
attributes are each trace's comparable attributes flattened as ``slow`` compares them, those that
differ first. Without a second trace, the typical one is chosen: among recent traces of the same
service and entry span name (route), the one with the median duration.
"""

from __future__ import annotations

from typing import Literal

from ..query import Trace, TraceNotFound, TraceSource, parse_duration
from ._attributes import trace_attributes
from ._breakdown import stage_breakdown, stage_order
from ._critical_path import critical_path, path_by_stage
from ._lineage import trace_header
from ._reports import DiffAttribute, DiffReport, DiffStage, TraceDiff

TYPICAL_SCAN = 2_000  # recent traces among which the typical one is chosen


def diff_traces(a: Trace, b: Trace) -> TraceDiff:
    """``a`` beside ``b`` as plain data (``mltrace diff --json``)."""
    sa, sb = stage_breakdown(a), stage_breakdown(b)
    pa, pb = path_by_stage(critical_path(a)), path_by_stage(critical_path(b))
    stages: list[DiffStage] = []
    for name in stage_order(set(sa) | set(sb)):
        x, y = sa.get(name, 0.0), sb.get(name, 0.0)
        stages.append({
            "stage": name,
            "a_ms": round(x, 3),
            "b_ms": round(y, 3),
            "delta_ms": round(x - y, 3),
            "ratio": round(x / y, 2) if y > 0 else None,
            "a_critical_ms": pa.get(name, 0.0),
            "b_critical_ms": pb.get(name, 0.0),
        })
    aa, ab = trace_attributes(a), trace_attributes(b)
    attributes: list[DiffAttribute] = [
        {"attribute": k, "a": aa.get(k), "b": ab.get(k), "differs": aa.get(k) != ab.get(k)}
        for k in sorted(set(aa) | set(ab))
    ]
    attributes.sort(key=lambda r: (not r["differs"], r["attribute"]))
    grew = max(stages, key=lambda r: r["delta_ms"]) if stages else None
    return {
        "a": trace_header(a),
        "b": trace_header(b),
        "delta_ms": round(a.duration_ms - b.duration_ms, 3),
        "largest_stage_delta": grew["stage"] if grew and grew["delta_ms"] > 0 else None,
        "stages": stages,
        "attributes": attributes,
    }


def typical_trace(source: TraceSource, like: Trace, since: str | float | None = "1h") -> Trace | None:
    """The median-duration trace among recent ones of ``like``'s service and entry span name."""
    root = like.root
    recent = source.find_traces(root.service, parse_duration(since), TYPICAL_SCAN)
    same = sorted(
        (t for t in recent if t.trace_id != like.trace_id and t.spans and t.root.name == root.name),
        key=lambda t: t.duration_us,
    )
    return same[len(same) // 2] if same else None


def diff(
    source: TraceSource, trace_a: str, trace_b: str | None = None, *, since: str | float | None = "1h"
) -> DiffReport:
    """``trace_a`` beside ``trace_b``, or beside a typical trace of its route when ``trace_b`` is None."""
    a = source.get_trace(trace_a)
    chosen: Literal["given", "typical"]
    if trace_b is not None:
        b = source.get_trace(trace_b)
        chosen = "given"
    else:
        found = typical_trace(source, a, since)
        if found is None:
            raise TraceNotFound(
                f"no other trace of {a.root.service} {a.root.name!r} in the last {since} to compare with; "
                "name one: mltrace diff TRACE_A TRACE_B"
            )
        b = source.get_trace(found.trace_id)  # in full (events included)
        chosen = "typical"
    return {"source": source.url, "b_chosen": chosen, **diff_traces(a, b)}
