"""Jaeger's api_v3 (OTLP JSON) read against its v1 API, over a real Jaeger: the same traces, spans,
parents, kinds, timings and typed attributes either way (issue 14: the faster read must not
change an answer)."""

from __future__ import annotations

import os

import pytest
from _cli_e2e import require, seed, wait_until_complete

from mltrace.analysis import slow_traces
from mltrace.query.jaeger import JaegerSource

pytestmark = pytest.mark.e2e

QUERY = os.environ.get("MLTRACE_E2E_JAEGER_QUERY_URL", "http://127.0.0.1:16686")
OTLP = os.environ.get("MLTRACE_E2E_OTLP_ENDPOINT", "http://127.0.0.1:4317")
URL = "jaeger://" + QUERY.split("://", 1)[1]


def test_api_v3_reads_what_v1_reads() -> None:
    require(f"{QUERY}/api/services", "Jaeger's query API")
    service, sent = seed("jaeger", OTLP, "mltrace-e2e-v3")
    wait_until_complete(URL, service, sent).close()
    v3, v1 = JaegerSource(QUERY), JaegerSource(QUERY)
    v1._v3 = False
    try:
        new = {t.trace_id: t for t in v3.find_traces(service, 900.0, 1000)}
        assert v3._v3 is True, "this Jaeger serves api_v3: it must be the path taken"
        old = {t.trace_id: t for t in v1.find_traces(service, 900.0, 1000)}
        assert set(new) == set(old) >= set(sent["trace_ids"])
        for tid, trace in new.items():
            a = {s.span_id: s for s in trace.spans}
            b = {s.span_id: s for s in old[tid].spans}
            assert set(a) == set(b)
            for sid, span in a.items():
                other = b[sid]
                assert (span.parent_id, span.name, span.service, span.kind, span.start_us, span.duration_us,
                        span.error) == (other.parent_id, other.name, other.service, other.kind, other.start_us,
                                        other.duration_us, other.error)
                for key, value in span.attributes.items():
                    if key in other.attributes:
                        theirs = other.attributes[key]
                        assert value == theirs, key
                        # v1's JSON writes a whole float as an int (1.0 -> 1); OTLP keeps the type
                        assert type(value) is type(theirs) or (isinstance(value, float) and type(theirs) is int), key
        report = slow_traces(v3, service=service, since="15m")
        pairs = [(c["stage"], c["attribute"]) for c in report["causes"]]
        assert ("inference", "ml.input.size") in pairs
    finally:
        v3.close()
        v1.close()
