"""Trace sources: URL parsing and defaults, the local store, and each backend's JSON."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _cli_traffic import Sent, seed_local

from mltrace import ConfigurationError
from mltrace.query import (
    SourceUnavailable,
    TraceNotFound,
    TraceSource,
    UnknownService,
    default_source_url,
    open_source,
    parse_duration,
)
from mltrace.query import jaeger as jaeger_json
from mltrace.query import zipkin as zipkin_json
from mltrace.query.jaeger import JaegerSource
from mltrace.query.local import LocalSource
from mltrace.query.zipkin import ZipkinSource

SERVICE = "toy-server"


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TraceSource, Sent]]:
    path = tmp_path_factory.mktemp("query") / "traces.db"
    sent = seed_local(path, SERVICE, n=60)
    source = open_source(f"local://{path}")
    yield source, sent
    source.close()


# -- URLs and defaults ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "kind", "base"),
    [
        ("jaeger://query.internal:16686", JaegerSource, "http://query.internal:16686"),
        ("jaeger://localhost", JaegerSource, "http://localhost:16686"),
        ("jaeger+https://tracing.example.com/jaeger", JaegerSource, "https://tracing.example.com:16686/jaeger"),
        ("zipkin://127.0.0.1:9411", ZipkinSource, "http://127.0.0.1:9411"),
        ("zipkin://zipkin", ZipkinSource, "http://zipkin:9411"),
    ],
)
def test_open_source_parses_http_backends(url: str, kind: type, base: str) -> None:
    """jaeger:// and zipkin:// URLs become the backend's HTTP base URL (default ports filled in)."""
    source = open_source(url)
    assert isinstance(source, kind)
    assert source.api.base_url == base  # type: ignore[attr-defined]
    source.close()


def test_open_source_local_paths(tmp_path: Path) -> None:
    """local://path opens that file read-only; a bare .db path works too."""
    path = tmp_path / "t.db"
    from mltrace.export import LocalStore

    LocalStore(path).close()
    for url in (f"local://{path}", str(path)):
        source = open_source(url)
        assert isinstance(source, LocalSource) and source.path == path
        source.close()


def test_unknown_scheme_is_a_configuration_error() -> None:
    """An unsupported URL names the three that work."""
    with pytest.raises(ConfigurationError, match="jaeger://host:16686, zipkin://host:9411 or local://"):
        open_source("tempo://localhost:3200")


def test_missing_local_store_is_source_unavailable(tmp_path: Path) -> None:
    """A store file that does not exist says so, and suggests how to make one."""
    with pytest.raises(SourceUnavailable, match=r"no local trace store.*mltrace demo"):
        open_source(f"local://{tmp_path / 'missing.db'}")
    assert not (tmp_path / "missing.db").exists()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"MLTRACE_SOURCE": "zipkin://z:9411"}, "zipkin://z:9411"),
        ({"MLTRACE_EXPORTER": "jaeger", "MLTRACE_JAEGER_ENDPOINT": "http://collector:4317"}, "jaeger://collector:16686"),
        ({"MLTRACE_EXPORTER": "zipkin", "OTEL_EXPORTER_ZIPKIN_ENDPOINT": "http://zk:9412/api/v2/spans"},
         "zipkin://zk:9412"),
        ({"MLTRACE_EXPORTER": "local", "MLTRACE_LOCAL_PATH": "/data/t.db"}, "local:///data/t.db"),
        ({"MLTRACE_EXPORTER": "none", "MLTRACE_LOCAL_PATH": "x.db"}, "local://x.db"),
        ({"MLTRACE_EXPORTER": "none"}, "local://mltrace-traces.db"),
    ],
)
def test_default_source_follows_configuration(
    monkeypatch: pytest.MonkeyPatch, env: dict[str, str], expected: str
) -> None:
    """Without --source: $MLTRACE_SOURCE, else the exporter's backend, else the local store."""
    import mltrace._configure

    monkeypatch.setattr(mltrace._configure, "_current", None)
    for key in ("MLTRACE_SOURCE", "MLTRACE_LOCAL_PATH", "MLTRACE_JAEGER_ENDPOINT", "OTEL_EXPORTER_ZIPKIN_ENDPOINT"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert default_source_url() == expected


@pytest.mark.parametrize(("text", "seconds"), [("30s", 30.0), ("15m", 900.0), ("2h", 7200.0), ("7d", 604800.0),
                                               ("250ms", 0.25), ("90", 90.0), (None, None)])
def test_parse_duration(text: str | None, seconds: float | None) -> None:
    """Durations read as a person writes them."""
    assert parse_duration(text) == seconds


def test_parse_duration_rejects_nonsense() -> None:
    """A malformed duration is a clear configuration error."""
    with pytest.raises(ConfigurationError, match="not a duration"):
        parse_duration("fifteen minutes")


# -- the local store --------------------------------------------------------------------------
def test_local_find_traces_returns_complete_traces_newest_first(seeded: tuple[TraceSource, Sent]) -> None:
    """Every sent request is one complete trace: server span, four stages, newest first."""
    source, sent = seeded
    traces = source.find_traces(SERVICE, since=600, limit=1000)
    assert [t.trace_id for t in traces] == list(reversed(sent.trace_ids))
    first = traces[-1]
    assert first.root.kind == "SERVER" and first.root.service == SERVICE
    stages = sorted(s.stage for s in first.spans if s.stage)
    assert stages == ["feature_lookup", "inference", "postprocess", "preprocess"]
    assert first.root.resource["ml.model.name"] == "toy"


def test_local_limit_and_min_duration(seeded: tuple[TraceSource, Sent]) -> None:
    """limit caps the count; min_duration keeps only long enough traces."""
    source, sent = seeded
    assert len(source.find_traces(SERVICE, limit=5)) == 5
    slow = source.find_traces(SERVICE, limit=1000, min_duration=0.012)
    assert slow and all(t.duration_ms >= 12 for t in slow)
    assert set(sent.large) | set(sent.cold) <= {t.trace_id for t in slow}  # each sleeps 15 ms or more


def test_local_get_trace_and_unknown_id(seeded: tuple[TraceSource, Sent]) -> None:
    """get_trace returns one trace (ids are case-insensitive); an unknown id is TraceNotFound."""
    source, sent = seeded
    assert source.get_trace(sent.trace_ids[0].upper()).trace_id == sent.trace_ids[0]
    with pytest.raises(TraceNotFound, match="0123456789abcdef0123456789abcdef is not in the local store"):
        source.get_trace("0123456789abcdef0123456789abcdef")


def test_local_unknown_service_lists_known(seeded: tuple[TraceSource, Sent]) -> None:
    """An unknown service name lists the services the store does have."""
    source, _ = seeded
    assert source.services() == [SERVICE]
    with pytest.raises(UnknownService, match="unknown service 'nope'; known services: toy-server"):
        source.find_traces("nope")


def test_local_find_by_attribute(seeded: tuple[TraceSource, Sent]) -> None:
    """Traces are found by an attribute value (the input fingerprint of a repeated request)."""
    source, sent = seeded
    first = source.get_trace(sent.repeated[0])
    fingerprint = next(s.attributes["ml.input.fingerprint"] for s in first.spans if s.stage == "preprocess")
    found = source.find_by_attribute("ml.input.fingerprint", str(fingerprint))
    assert {t.trace_id for t in found} == set(sent.repeated)


# -- Jaeger's and Zipkin's JSON (recorded from the real servers) ------------------------------
JAEGER_TRACE: dict[str, Any] = {
    "traceID": "7391e868f732e90b1a7059b115fb56c5",
    "spans": [
        {"traceID": "7391e868f732e90b1a7059b115fb56c5", "spanID": "6d7e8fc3d4016748", "operationName": "inference",
         "references": [{"refType": "FOLLOWS_FROM", "traceID": "7391e868f732e90b1a7059b115fb56c5",
                         "spanID": "f08721be8de90a7f"}],
         "startTime": 1795735399259139, "duration": 10183,
         "tags": [{"key": "ml.drift.alert", "type": "bool", "value": True},
                  {"key": "ml.drift.score", "type": "float64", "value": 0.25},
                  {"key": "ml.input.shape", "type": "string", "value": "[2,3]"},
                  {"key": "ml.input.size", "type": "int64", "value": 512},
                  {"key": "ml.stage", "type": "string", "value": "inference"},
                  {"key": "otel.scope.name", "type": "string", "value": "x"},
                  {"key": "span.kind", "type": "string", "value": "internal"}],
         "logs": [], "processID": "p1", "warnings": None},
        {"traceID": "7391e868f732e90b1a7059b115fb56c5", "spanID": "8b510dea7b1d5a16", "operationName": "call",
         "references": [{"refType": "CHILD_OF", "traceID": "7391e868f732e90b1a7059b115fb56c5",
                         "spanID": "f08721be8de90a7f"}],
         "startTime": 1795735399317813, "duration": 27,
         "tags": [{"key": "error", "type": "bool", "value": True},
                  {"key": "otel.status_code", "type": "string", "value": "ERROR"},
                  {"key": "otel.status_description", "type": "string", "value": "boom"},
                  {"key": "span.kind", "type": "string", "value": "client"}],
         "logs": [], "processID": "p1", "warnings": None},
        {"traceID": "7391e868f732e90b1a7059b115fb56c5", "spanID": "f08721be8de90a7f",
         "operationName": "POST /predict", "references": [], "startTime": 1795735399259001, "duration": 59991,
         "tags": [{"key": "http.route", "type": "string", "value": "/predict"},
                  {"key": "span.kind", "type": "string", "value": "server"}],
         "logs": [], "processID": "p1", "warnings": None},
    ],
    "processes": {"p1": {"serviceName": "probe-svc", "tags": [{"key": "ml.model.version", "type": "string",
                                                                "value": "3"}]}},
}


def test_jaeger_json_becomes_the_model() -> None:
    """Typed tags, span kind, error status, parent from references, service from processes."""
    t = jaeger_json.parse_trace(JAEGER_TRACE)
    assert t.root.name == "POST /predict" and t.root.kind == "SERVER" and t.root.service == "probe-svc"
    inference = t.by_id["6d7e8fc3d4016748"]
    assert inference.parent_id == "f08721be8de90a7f"  # a link to the parent arrives as FOLLOWS_FROM only
    assert inference.attributes == {"ml.drift.alert": True, "ml.drift.score": 0.25, "ml.input.shape": [2, 3],
                                    "ml.input.size": 512, "ml.stage": "inference"}
    call = t.by_id["8b510dea7b1d5a16"]
    assert call.kind == "CLIENT" and call.error and call.status_message == "boom"
    assert t.root.resource == {"ml.model.version": "3"}
    assert t.duration_us == 59991


ZIPKIN_TRACE: list[dict[str, Any]] = [
    {"traceId": "0f583e618c4cea16b07e98f909e39ff9", "parentId": "93b25bff6ba66177", "id": "b3106e0bc773de14",
     "name": "inference", "timestamp": 1795735399665887, "duration": 10164,
     "localEndpoint": {"serviceName": "probe-svc"},
     "tags": {"ml.drift.alert": "true", "ml.drift.score": "0.25", "ml.input.fingerprint": "0123",
              "ml.input.shape": '["2","3"]', "ml.input.size": "512", "ml.model.version": "3", "ml.stage": "inference",
              "otel.scope.name": "x", "service.name": "probe-svc", "telemetry.sdk.language": "python"}},
    {"traceId": "0f583e618c4cea16b07e98f909e39ff9", "id": "93b25bff6ba66177", "kind": "SERVER",
     "name": "post /predict", "timestamp": 1795735399665829, "duration": 30173,
     "localEndpoint": {"serviceName": "probe-svc"},
     "tags": {"http.route": "/predict", "ml.model.version": "3", "service.name": "probe-svc"}},
    {"traceId": "0f583e618c4cea16b07e98f909e39ff9", "parentId": "93b25bff6ba66177", "id": "aac51523aafca864",
     "kind": "CLIENT", "name": "call", "timestamp": 1795735399688588, "duration": 23,
     "localEndpoint": {"serviceName": "probe-svc"},
     "tags": {"error": "boom", "ml.model.version": "3", "otel.status_code": "ERROR", "service.name": "probe-svc"}},
]


def test_zipkin_json_becomes_the_model() -> None:
    """String tags regain their types; resource tags copied onto every span go to the resource."""
    t = zipkin_json.parse_trace(ZIPKIN_TRACE)
    inference = t.by_id["b3106e0bc773de14"]
    assert inference.attributes == {"ml.drift.alert": True, "ml.drift.score": 0.25, "ml.input.fingerprint": "0123",
                                    "ml.input.shape": [2, 3], "ml.input.size": 512, "ml.stage": "inference"}
    assert inference.resource["ml.model.version"] == "3"
    assert t.root.kind == "SERVER" and t.root.name == "post /predict"
    call = t.by_id["aac51523aafca864"]
    assert call.kind == "CLIENT" and call.error and call.status_message == "boom"
    assert inference.kind == "INTERNAL"


def _fake_jaeger(starts: list[int], pages: list[int], order: str) -> httpx.MockTransport:
    """A stand-in for Jaeger's /api/traces: up to `limit` traces in [start, end], oldest or random first."""
    rng = random.Random(0)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/services":
            return httpx.Response(200, json={"data": ["svc"]})
        if request.url.path.startswith("/api/v3/"):  # a Jaeger without api_v3: the v1 API is used
            return httpx.Response(404, text="404 page not found")
        lo, hi = int(request.url.params["start"]), int(request.url.params["end"])
        inside = sorted(s for s in starts if lo <= s <= hi)
        if order == "random":
            rng.shuffle(inside)
        chosen = inside[: int(request.url.params["limit"])]
        pages.append(len(chosen))
        data = [{"traceID": f"{s:032x}", "processes": {"p": {"serviceName": "svc"}},
                 "spans": [{"traceID": f"{s:032x}", "spanID": "1", "operationName": "GET", "startTime": s,
                            "duration": 5, "references": [], "tags": [], "processID": "p"}]} for s in chosen]
        return httpx.Response(200, json={"data": data})

    return httpx.MockTransport(handler)


@pytest.mark.parametrize("order", ["oldest first", "random"])
def test_jaeger_paging_finds_the_newest_traces_in_any_order(order: str) -> None:
    """Jaeger answers a full page in no particular order: windows are split until each is complete."""
    now = int(time.time() * 1e6)
    starts = [now - 600_000_000 + i * 40_000 for i in range(1300)] + [now - 599_000_000] * 3  # 3 share a start
    pages: list[int] = []
    source = JaegerSource("http://jaeger.test", page_size=100)
    source.api.client = httpx.Client(base_url="http://jaeger.test", transport=_fake_jaeger(starts, pages, order))
    found = source.find_traces("svc", since=3600, limit=250)
    assert [t.start_us for t in found] == sorted(starts, reverse=True)[:250]
    everything = source.find_traces("svc", since=3600, limit=10_000)
    assert len(everything) == len(set(starts))  # (the three sharing a start are one trace id here)
    assert len(pages) < 200
    assert source._v3 is False  # asked once, then v1


def test_unreachable_backend_is_source_unavailable() -> None:
    """A backend that refuses connections is SourceUnavailable, naming the backend and the URL."""
    for source in (open_source("jaeger://127.0.0.1:1"), open_source("zipkin://127.0.0.1:1")):
        with pytest.raises(SourceUnavailable, match=r"cannot reach (Jaeger|Zipkin) at http://127.0.0.1:1"):
            source.services()
        source.close()


def test_non_api_answer_is_source_unavailable() -> None:
    """Something that answers but is not the API (an HTML page) is reported as such."""
    source = JaegerSource("http://not-jaeger.test")
    source.api.client = httpx.Client(
        base_url="http://not-jaeger.test", transport=httpx.MockTransport(lambda r: httpx.Response(200, text="<html>"))
    )
    with pytest.raises(SourceUnavailable, match="did not answer with JSON; is this really Jaeger"):
        source.services()


def _fake_jaeger_v3(starts: list[int], requests: list[dict[str, str]]) -> httpx.MockTransport:
    """A stand-in for Jaeger's api_v3: OTLP JSON of up to num_traces traces in the window."""
    import base64
    from datetime import datetime

    def us(text: str) -> int:
        head, frac = text.rstrip("Z").split(".")
        return int(datetime.fromisoformat(head + "+00:00").timestamp()) * 1_000_000 + int(frac.ljust(6, "0")[:6])

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/services":
            return httpx.Response(200, json={"data": ["svc"]})
        params = dict(request.url.params)
        requests.append(params)
        lo, hi = us(params["query.start_time_min"]), us(params["query.start_time_max"])
        chosen = sorted(s for s in starts if lo <= s <= hi)[: int(params["query.num_traces"])]
        if not chosen:
            return httpx.Response(404, json={"error": {"httpCode": 404, "message": "No traces found"}})
        spans = []
        for s in chosen:
            tid = base64.b64encode(bytes.fromhex(f"{s:032x}")).decode()  # bytes as base64, as proto3 JSON does
            spans.append({"traceId": tid, "spanId": "AAAAAAAAAAE=", "name": "POST /p", "kind": 2,
                          "startTimeUnixNano": str(s * 1000), "endTimeUnixNano": str(s * 1000 + 5_000_000),
                          "status": {"code": "STATUS_CODE_ERROR", "message": "boom"},
                          "attributes": [{"key": "ml.input.size", "value": {"intValue": "512"}},
                                         {"key": "ml.output.max", "value": {"doubleValue": 1.0}},
                                         {"key": "ml.input.shape", "value": {"arrayValue": {"values": [
                                             {"intValue": "2"}, {"intValue": "3"}]}}}],
                          "events": [{"name": "exception", "timeUnixNano": str(s * 1000 + 1000),
                                      "attributes": [{"key": "exception.type", "value": {"stringValue": "E"}}]}]})
            spans.append({"traceId": tid, "spanId": "AAAAAAAAAAI=", "parentSpanId": "AAAAAAAAAAE=",
                          "name": "inference", "kind": "SPAN_KIND_INTERNAL",
                          "startTimeUnixNano": str(s * 1000 + 1_000_000), "endTimeUnixNano": str(s * 1000 + 3_000_000),
                          "attributes": [{"key": "ml.stage", "value": {"stringValue": "inference"}}]})
        body = {"result": {"resourceSpans": [{"resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "svc"}}]}, "scopeSpans": [{"spans": spans}]}]}}
        return httpx.Response(200, json=body)

    return httpx.MockTransport(handler)


def test_jaeger_api_v3_otlp_json_becomes_the_model() -> None:
    """api_v3's OTLP JSON (base64 or hex ids, enum names or numbers, typed values, events) reads into
    the same model; the window is one request when it fits, split when a page comes back full."""
    now = int(time.time() * 1e6)
    starts = [now - 500_000_000 + i * 100_000 for i in range(300)]
    requests: list[dict[str, str]] = []
    source = JaegerSource("http://jaeger.test", page_size=100)
    source.api.client = httpx.Client(base_url="http://jaeger.test", transport=_fake_jaeger_v3(starts, requests))
    found = source.find_traces("svc", since=3600, limit=300)
    assert source._v3 is True and len(requests) == 1 and requests[0]["query.num_traces"] == "301"
    assert [t.start_us for t in found] == sorted(starts, reverse=True)
    trace = found[0]
    root, inference = trace.spans
    assert trace.trace_id == f"{starts[-1]:032x}" and root.span_id == "0000000000000001"
    assert inference.parent_id == root.span_id and inference.kind == "INTERNAL" and inference.stage == "inference"
    assert root.kind == "SERVER" and root.error and root.status_message == "boom" and root.duration_us == 5000
    assert root.attributes == {"ml.input.size": 512, "ml.output.max": 1.0, "ml.input.shape": [2, 3]}
    assert isinstance(root.attributes["ml.output.max"], float)
    assert root.events[0]["name"] == "exception" and root.events[0]["attributes"] == {"exception.type": "E"}
    requests.clear()
    newest = source.find_traces("svc", since=3600, limit=50)  # a page of 100, 300 in the window: split
    assert [t.start_us for t in newest] == sorted(starts, reverse=True)[:50] and len(requests) > 1
    source.close()
