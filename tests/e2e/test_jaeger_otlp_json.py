"""The search path's OTLP JSON decoder and its sliced, prefetched read, over a real Jaeger (issue 14:
the faster read must give the same answer).

- The fast decoder (:func:`mltrace.query._otlp_json.spans_by_trace`) against the reference one
  (:func:`mltrace.query.jaeger.parse_otlp`) on Jaeger's own api_v3 answer for spans carrying every
  attribute type (string, int, double, bool, arrays), events, links, error status and all kinds.
- The window read in many small slices (two downloading ahead) against the window read in one
  request: the same traces, span for span.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
import uuid

import httpx
import pytest
from _cli_e2e import require
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExportResult
from opentelemetry.trace import Link as OtelLink
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status, StatusCode

from mltrace.query import jaeger
from mltrace.query._otlp_json import spans_by_trace
from mltrace.query.jaeger import JaegerSource, parse_otlp

pytestmark = pytest.mark.e2e

QUERY = os.environ.get("MLTRACE_E2E_JAEGER_QUERY_URL", "http://127.0.0.1:16686")
OTLP = os.environ.get("MLTRACE_E2E_OTLP_ENDPOINT", "http://127.0.0.1:4317")
KINDS = (SpanKind.SERVER, SpanKind.CLIENT, SpanKind.INTERNAL, SpanKind.PRODUCER, SpanKind.CONSUMER)


def _trace(i: int, resource: Resource, now: int, base: int) -> list[ReadableSpan]:
    """A server span and four children: every attribute type, an event, a link, an error."""
    tid = (base << 16) + i  # fresh ids each run: Jaeger would merge a rerun's spans into old traces
    root = SpanContext(tid, 0x1000 + i, False, TraceFlags(1))
    t0 = now - (200 - i) * 50_000_000
    spans = [ReadableSpan(
        name="POST /predict", context=root, parent=None, resource=resource, kind=SpanKind.SERVER,
        attributes={"http.route": "/predict", "http.response.status_code": 200 + i % 2},
        status=Status(StatusCode.UNSET), start_time=t0, end_time=t0 + 9_000_000,
    )]
    for k, kind in enumerate(KINDS[1:], 1):
        ctx = SpanContext(tid, 0x100000 * k + i, False, TraceFlags(1))
        start = t0 + k * 1_000_000
        spans.append(ReadableSpan(
            name=f"stage-{k}", context=ctx, parent=root, resource=resource, kind=kind,
            attributes={"ml.stage": "inference" if k == 2 else f"stage-{k}", "ml.input.size": 30 * i + k,
                        "ml.drift.score": i / 7 + k, "ml.drift.alert": bool((i + k) % 2),
                        "ml.input.shape": [i, k], "ml.labels": ["a", f"b{i}"], "ml.weights": [0.5, i / 3],
                        "ml.flags": [True, False], "ml.output.prediction": f"p{i % 3}"},
            events=[], links=[OtelLink(SpanContext((base << 16) + 0x8000 + i, 0x77, False, TraceFlags(1)),
                                       {"link.kind": "batch", "link.n": i})] if k == 3 else [],
            status=Status(StatusCode.ERROR, f"boom {i}") if k == 4 else Status(StatusCode.UNSET),
            start_time=start, end_time=start + 500_000 * k,
        ))
    return spans


@pytest.fixture(scope="module")
def seeded() -> tuple[str, int]:
    require(f"{QUERY}/api/services", "Jaeger's query API")
    service = f"mltrace-e2e-otlpjson-{uuid.uuid4().hex[:8]}"
    resource = Resource.create({"service.name": service, "ml.model.version": "3", "host.name": "h1"})
    now = time.time_ns()
    base = random.getrandbits(100) | 1 << 99
    spans = [s for i in range(200) for s in _trace(i, resource, now, base)]
    # An event needs the SDK's Event type; one span gets two (exception and a first token).
    from opentelemetry.sdk.trace import Event

    first = spans[1]
    spans[1] = ReadableSpan(
        name=first.name, context=first.context, parent=first.parent, resource=resource, kind=first.kind,
        attributes=first.attributes, status=first.status, start_time=first.start_time, end_time=first.end_time,
        events=[Event("exception", {"exception.type": "ValueError", "exception.escaped": False},
                      first.start_time + 1000),
                Event("first_token", {"n": 1}, first.start_time + 2000)],
    )
    exporter = OTLPSpanExporter(endpoint=OTLP, insecure=True, timeout=30)
    assert exporter.export(spans) is SpanExportResult.SUCCESS
    exporter.shutdown()
    source = JaegerSource(QUERY)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # ingestion is asynchronous
        if service in source.services() and len(source.find_traces(service, 900.0, 1000)) >= 200:
            break
        time.sleep(0.5)
    source.close()
    return service, 200


def _body(service: str) -> bytes:
    end = int(time.time() * 1e6)
    response = httpx.get(f"{QUERY}/api/v3/traces", params={
        "query.service_name": service, "query.start_time_min": jaeger._rfc3339(end - 900_000_000),
        "query.start_time_max": jaeger._rfc3339(end), "query.num_traces": 1000}, timeout=30)
    response.raise_for_status()
    return response.content


def test_fast_decoder_builds_what_the_reference_builds(seeded: tuple[str, int]) -> None:
    service, n = seeded
    body = json.loads(_body(service))
    reference, fast = parse_otlp(body), spans_by_trace(body)
    assert len(reference) == n and set(fast) == set(reference)
    kinds, types, events, links, errors = set(), set(), 0, 0, 0
    for tid, spans in reference.items():
        theirs = {s.span_id: s for s in fast[tid]}
        assert len(theirs) == len(spans) == 5
        for span in spans:
            mine = theirs[span.span_id]
            assert mine == span  # every field: ids, parent, name, service, kind, times, attributes, ...
            for key, value in span.attributes.items():  # and the same Python types (1.0 stays a float)
                assert type(mine.attributes[key]) is type(value), key
            kinds.add(mine.kind)
            types |= {type(v).__name__ for v in mine.attributes.values()}
            events += len(mine.events)
            links += len(mine.links)
            errors += mine.error
            assert mine.service == service and mine.resource["ml.model.version"] == "3"
    # The data exercised what it claims to.
    assert kinds == {"SERVER", "CLIENT", "INTERNAL", "PRODUCER", "CONSUMER"}
    assert {"str", "int", "float", "bool", "list"} <= types
    assert events == 2 and links == n and errors == n
    flags = next(s for s in fast[next(iter(fast))] if "ml.flags" in s.attributes).attributes
    assert flags["ml.flags"] == [True, False] and isinstance(flags["ml.weights"][0], float)


def test_sliced_read_finds_what_one_request_finds(seeded: tuple[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    service, n = seeded
    whole = JaegerSource(QUERY)
    one = {t.trace_id: t for t in whole.find_traces(service, 900.0, 1000)}
    assert whole.api.requests == 2  # the service check, then the window in one request
    # Slices of ~12 traces (24 asked), a first page of 20, three downloading ahead: many requests, and some
    # slices come back full and are split.
    monkeypatch.setattr(jaeger, "_PROBE", 20)
    monkeypatch.setattr(jaeger, "_SLICE", 12)
    monkeypatch.setattr(jaeger, "_SLICE_MAX", 12)
    monkeypatch.setattr(jaeger, "_AHEAD", 3)
    sliced = JaegerSource(QUERY)
    seen: list[int] = []
    many = sliced.find_traces(service, 900.0, 1000, progress=seen.append)
    assert sliced.api.requests > 10 and seen == sorted(seen) and seen[-1] == n
    assert len(many) == n and {t.trace_id: t for t in many} == one
    assert [t.start_us for t in many] == sorted((t.start_us for t in many), reverse=True)
    newest = sliced.find_traces(service, 900.0, 50)
    assert [t.trace_id for t in newest] == [t.trace_id for t in sorted(one.values(), key=lambda t: -t.start_us)][:50]
    whole.close()
    sliced.close()


def _cli_slow(service: str, *extra: str) -> dict[str, object]:
    done = subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "mltrace"), "slow", "--source", "jaeger://" +
         QUERY.split("://", 1)[1], "--service", service, "--since", "15m", "--json", *extra],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    report: dict[str, object] = json.loads(done.stdout)
    return report


def test_slow_over_jaeger_covers_the_whole_window(seeded: tuple[str, int]) -> None:
    """`mltrace slow` over Jaeger, as a user runs it: every trace of the window counted and ranked;
    above --scan, a uniform sample across the window analysed and said so (issue 14), not the newest."""
    service, n = seeded
    full = _cli_slow(service)
    assert (full["scanned"], full["analysed"], full["sampled"], full["sample_weight"]) == (n, n, False, 1.0)
    part = _cli_slow(service, "--scan", "50")
    assert (part["scanned"], part["analysed"], part["sampled"], part["sample_weight"]) == (n, 50, True, n / 50)
    # Counts, threshold and the slowest traces from the whole window, not from the sample.
    assert part["slow_count"] == full["slow_count"] and part["median_ms"] == full["median_ms"]
    assert [t["trace_id"] for t in part["traces"]] == [t["trace_id"] for t in full["traces"]]  # type: ignore[attr-defined]


def test_ctrl_c_mid_read_stops_the_sliced_read(seeded: tuple[str, int], monkeypatch: pytest.MonkeyPatch) -> None:
    """Ctrl-C while slices are downloading (here: raised from the progress callback, in the main
    thread, as the signal is) leaves find_traces at once; the downloads still in flight run on
    daemon threads, so nothing waits for them at exit."""
    import threading

    service, _ = seeded
    monkeypatch.setattr(jaeger, "_PROBE", 20)
    monkeypatch.setattr(jaeger, "_SLICE", 12)
    monkeypatch.setattr(jaeger, "_SLICE_MAX", 12)
    monkeypatch.setattr(jaeger, "_AHEAD", 3)
    source = JaegerSource(QUERY)
    calls: list[int] = []

    def progress(n: int) -> None:
        calls.append(n)
        if len(calls) == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        source.find_traces(service, 900.0, 1000, progress=progress)
    assert len(calls) == 3
    fetchers = [t for t in threading.enumerate() if t.name == "mltrace-jaeger-fetch"]
    assert all(t.daemon for t in fetchers)
    source.close()
