"""Bad input never breaks the request: the fuzz corpus and hypothesis against middleware, summaries, drift.

For every body, the traced app (middleware, body summaries, stages, drift, payload capture all on)
must answer byte-for-byte as the same app without mltrace, within a generous time bound, with
every span's attributes inside the limits below. ``MLTRACE_FUZZ_EXAMPLES`` (default 150) sets
how many examples hypothesis tries per property. Corpus: tests/fuzz_corpus/ (see _make.py there)
plus a few bodies too large to commit, generated here.
"""

from __future__ import annotations

import functools
import json
import math
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from opentelemetry.sdk.trace import ReadableSpan
from pydantic import BaseModel
from starlette.testclient import TestClient

import mltrace
from mltrace._settings import SETTINGS
from mltrace.drift import DriftMonitor, ProfileMismatchError, ReferenceProfile
from mltrace.export import COUNTERS
from mltrace.privacy import CaptureRules, FileSink, PayloadCapture, capture_payload, redact
from mltrace.summaries import summarize
from mltrace.testing import capture_spans

CORPUS = Path(__file__).parents[1] / "fuzz_corpus"
CONTENT_TYPES = {
    ".json": "application/json",
    ".txt": "text/plain",
    ".form": "application/x-www-form-urlencoded",
    ".bin": "application/octet-stream",
}
ROUTES = ("/echo", "/json", "/model")
ADDED_HEADERS = {"traceresponse", "x-trace-id"}  # what the middleware adds, by design
MAX_ATTRIBUTES = 128  # the SDK's default span attribute count limit
MAX_KEY_LENGTH = 256
MAX_STRING_LENGTH = 4096
HANG_S = 120.0  # "nothing hangs": a case taking this long fails (typical: milliseconds)
# Hypothesis examples per HTTP property (twice that for the in-process ones); raise it for a long run.
EXAMPLES = int(os.environ.get("MLTRACE_FUZZ_EXAMPLES", "150"))


def _generated() -> dict[str, Callable[[], bytes]]:
    """Bodies too large to commit, made when a test first asks for them."""
    rng = np.random.default_rng(11)
    return {
        "gen_8mb_string.json": lambda: json.dumps({"s": "x" * (8 << 20)}).encode(),
        "gen_2mb_random.bin": lambda: rng.bytes(2 << 20),
        "gen_2mb_random_as_json.json": lambda: rng.bytes(2 << 20),
        "gen_300k_floats.json": lambda: json.dumps(rng.normal(size=300_000).tolist()).encode(),
        "gen_1mb_open_brackets.json": lambda: b"[" * (1 << 20),
        "gen_just_under_1mb.json": lambda: json.dumps({"x": [1.5] * 200_000}).encode()[: (1 << 20) - 1],
    }


GENERATED = _generated()
CASE_NAMES = sorted([p.name for p in CORPUS.iterdir() if p.suffix in CONTENT_TYPES] + list(GENERATED))


@functools.cache
def case(name: str) -> tuple[bytes, str]:
    """A corpus body and the content type it is sent with."""
    body = GENERATED[name]() if name in GENERATED else (CORPUS / name).read_bytes()
    return body, CONTENT_TYPES[Path(name).suffix]


class Features(BaseModel):
    x: list[float]
    meta: dict[str, Any] | None = None


def _monitor() -> DriftMonitor:
    rng = np.random.default_rng(3)
    data = {"a": rng.normal(size=500).tolist(), "b": rng.uniform(size=500).tolist(), "c": ["u", "v"] * 250}
    return DriftMonitor(ReferenceProfile.from_data(data, categorical=["c"]), window=50, recompute_every=10)


def build_app(traced: bool) -> FastAPI:
    """The same app with (``traced``) or without mltrace: echo, parse-anything, and a pydantic model."""
    app = FastAPI()
    monitor = _monitor()
    if traced:
        app.add_middleware(mltrace.MLTraceMiddleware, capture_request_body=True, capture_response_body=True)

    def observe(obj: object) -> None:
        if traced:
            with mltrace.stage("preprocess") as s:
                s.record_input(obj)
            with mltrace.stage("inference", drift=monitor) as s:
                s.record_input(obj)
                s.record_output(obj)
                capture_payload(obj, kind="input")

    @app.post("/echo")
    async def echo(request: Request) -> Response:
        return Response(await request.body(), media_type=request.headers.get("content-type"))

    @app.post("/json")
    async def parse(request: Request) -> Response:
        try:
            obj = await request.json()
        except Exception as exc:
            return PlainTextResponse(f"not JSON: {type(exc).__name__}", status_code=400)
        observe(obj)
        size = len(obj) if isinstance(obj, list | dict | str) else None
        return JSONResponse({"type": type(obj).__name__, "size": size})

    @app.post("/model")
    def model(features: Features) -> dict[str, float]:
        observe(features.x)
        return {"y": float(sum(v for v in features.x if math.isfinite(v)))}

    return app


@pytest.fixture(scope="module")
def clients(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, TestClient]]:
    """(plain, traced) clients; payload capture on for the traced app, into a temporary FileSink."""
    capture = PayloadCapture(CaptureRules(), FileSink(tmp_path_factory.mktemp("payloads")))
    saved = SETTINGS.payload_capture
    SETTINGS.payload_capture = capture
    plain = TestClient(build_app(False), raise_server_exceptions=False)
    yield plain, TestClient(build_app(True), raise_server_exceptions=False)
    capture.close()
    SETTINGS.payload_capture = saved


def within(seconds: float, fn: Callable[[], Any]) -> Any:
    """``fn()``, failing the test if it has not returned after ``seconds`` (a hang, not a slow case)."""
    box: list[Any] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            box.append(fn())
        except BaseException as exc:  # re-raised in the test's thread
            errors.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"hung for more than {seconds} s"
    if errors:
        raise errors[0]
    return box[0]


def check_limits(spans: list[ReadableSpan]) -> None:
    """Every attribute (span and event) is a bounded primitive under a bounded key."""
    for span in spans:
        attrs = dict(span.attributes or {})
        assert len(attrs) <= MAX_ATTRIBUTES, (span.name, len(attrs))
        groups = [attrs] + [dict(e.attributes or {}) for e in span.events]
        for group in groups:
            for key, value in group.items():
                assert len(key) <= MAX_KEY_LENGTH, (span.name, key[:80], len(key))
                values = value if isinstance(value, tuple | list) else (value,)
                assert len(values) <= 1024, (span.name, key, len(values))
                for v in values:
                    assert isinstance(v, str | bool | int | float), (span.name, key, type(v))
                    if isinstance(v, str):
                        assert len(v) <= MAX_STRING_LENGTH, (span.name, key, len(v))


Clients = tuple[TestClient, TestClient]


def same_response(clients: Clients, route: str, body: bytes, content_type: str) -> list[ReadableSpan]:
    """Post ``body`` to both apps; assert identical status, headers (bar the added ones) and bytes."""
    plain, traced = clients
    headers = {"content-type": content_type}
    want = within(HANG_S, lambda: plain.post(route, content=body, headers=headers))
    with capture_spans() as spans:
        got = within(HANG_S, lambda: traced.post(route, content=body, headers=headers))
        finished = list(spans)
    assert got.status_code == want.status_code
    assert got.content == want.content
    assert {k: v for k, v in got.headers.items() if k not in ADDED_HEADERS} == dict(want.headers.items())
    if got.status_code != 500:  # a 500 comes from Starlette's error middleware, outside ours
        assert set(got.headers) >= ADDED_HEADERS
    check_limits(finished)
    return finished


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("name", CASE_NAMES)
def test_corpus_body_is_answered_identically(clients: Clients, name: str, route: str) -> None:
    """Each corpus body gets the same bytes back with and without mltrace; spans stay within limits."""
    body, content_type = case(name)
    spans = same_response(clients, route, body, content_type)
    assert any(s.kind.name == "SERVER" for s in spans)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=50),
    lambda children: st.lists(children, max_size=8) | st.dictionaries(st.text(max_size=12), children, max_size=8),
    max_leaves=40,
)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
CTYPES = sorted(CONTENT_TYPES.values())


@FUZZ
@given(value=json_values, route=st.sampled_from(ROUTES))
def test_any_json_is_answered_identically(clients: Clients, value: object, route: str) -> None:
    """Arbitrary JSON (NaN/inf, big ints, mixed types, nesting) gets the app's own answer."""
    same_response(clients, route, json.dumps(value).encode(), "application/json")


@FUZZ
@given(body=st.binary(max_size=4096), route=st.sampled_from(ROUTES), ctype=st.sampled_from(CTYPES))
def test_any_bytes_are_answered_identically(clients: Clients, body: bytes, route: str, ctype: str) -> None:
    """Arbitrary bytes under any content type get the app's own answer."""
    same_response(clients, route, body, ctype)


objects = (
    json_values
    | hnp.arrays(
        dtype=st.sampled_from(
            [np.float64, np.float32, np.float16, np.int64, np.int8, np.uint64, np.bool_, np.complex128]
        ),
        shape=hnp.array_shapes(min_dims=0, max_dims=4, max_side=6),
        elements=None,
    )
    | hnp.arrays(dtype=np.dtype("O"), shape=hnp.array_shapes(max_dims=2, max_side=4), elements=json_values)
    | hnp.arrays(dtype=hnp.unicode_string_dtypes(), shape=hnp.array_shapes(max_dims=2, max_side=4))
    | st.binary(max_size=200)
    | st.lists(st.one_of(st.binary(max_size=5), st.complex_numbers(), st.sets(st.integers(), max_size=3)), max_size=5)
)


def check_summary(out: object) -> None:
    assert isinstance(out, dict) and len(out) <= MAX_ATTRIBUTES
    for key, value in out.items():
        assert isinstance(key, str) and len(key) <= MAX_KEY_LENGTH
        values = value if isinstance(value, tuple | list) else (value,)
        for v in values:
            assert isinstance(v, str | bool | int | float), (key, type(v))
            assert not isinstance(v, str) or len(v) <= MAX_STRING_LENGTH


@settings(max_examples=2 * EXAMPLES, deadline=None)
@given(obj=objects)
def test_summarize_never_raises_and_stays_bounded(obj: object) -> None:
    """``summarize`` turns anything (object arrays, complex, bytes, NaN) into a bounded attribute dict."""
    check_summary(within(HANG_S, lambda: summarize(obj)))


@pytest.mark.parametrize("name", CASE_NAMES)
def test_summarize_corpus_documents(name: str) -> None:
    """Every corpus body that parses as JSON summarises within the limits."""
    body, _ = case(name)
    try:
        obj = json.loads(body)
    except (ValueError, RecursionError):
        obj = body
    check_summary(within(HANG_S, lambda: summarize(obj)))


MONITOR = _monitor()


@settings(max_examples=2 * EXAMPLES, deadline=None)
@given(obj=objects | st.dictionaries(st.sampled_from(["a", "b", "c", "d"]), json_values, max_size=4))
@example(obj=[{}, None])
def test_drift_scorer_raises_only_its_documented_error(obj: object) -> None:
    """The drift scorer either scores or raises ProfileMismatchError (which stages record, never raise)."""
    try:
        result = within(HANG_S, lambda: MONITOR.score(obj))
    except ProfileMismatchError:
        return
    check_summary(MONITOR.span_attributes(result))


@settings(max_examples=2 * EXAMPLES, deadline=None)
@given(obj=objects)
def test_stage_with_drift_never_raises(obj: object) -> None:
    """Inside a stage, summaries and drift on any input are recorded, never raised."""
    before = COUNTERS.snapshot()["instrumentation_errors"]
    with capture_spans() as spans:
        with mltrace.stage("inference", drift=MONITOR) as s:
            s.record_input(obj)
            s.record_output(obj)
        check_limits(list(spans))
    assert COUNTERS.snapshot()["instrumentation_errors"] >= before


@settings(max_examples=2 * EXAMPLES, deadline=None)
@given(obj=objects)
def test_redact_always_yields_strict_bounded_json(obj: object) -> None:
    """Redaction of anything is strict JSON (no NaN) no larger than its caps allow."""
    rules = CaptureRules(max_nodes=500, max_string=64)
    text = json.dumps(redact(obj, rules), allow_nan=False)
    assert len(text) < 500 * (64 + 40)


def test_body_summaries_do_not_evict_http_attributes(clients: Clients) -> None:
    """With both body summaries on, the server span keeps its HTTP semantic-convention attributes."""
    body, content_type = case("matrix.json")
    spans = same_response(clients, "/echo", body, content_type)
    server = next(s for s in spans if s.kind.name == "SERVER")
    assert server.dropped_attributes == 0
