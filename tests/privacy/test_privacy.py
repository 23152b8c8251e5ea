"""Privacy: capture is off by default; when on, payloads are redacted, capped and stored by reference."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.testclient import TestClient

import mltrace
from mltrace import semconv
from mltrace._configure import _payload_capture
from mltrace._errors import ConfigurationError
from mltrace._settings import SETTINGS
from mltrace.export import COUNTERS
from mltrace.privacy import (
    REDACTED,
    TRUNCATED,
    CaptureRules,
    FileSink,
    LocalStoreSink,
    PayloadCapture,
    body_document,
    capture_payload,
    header_allowed,
    path_matches,
    redact,
    redact_text,
)
from mltrace.testing import CapturedSpans

TESTS = Path(__file__).parents[1]  # _loopback.py
HERE = Path(__file__).parent  # test_privacy itself, imported by the subprocess

# Values that must never leave the process once capture is on.
SECRETS = {
    "email": "bob.smith@example.com",
    "card": "4111 1111 1111 1111",
    "card_digits": "5500005555555559",
    "password": "hunter2-correct-horse",
    "jwt": "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    "bearer": "tok_live_9f8e7d6c5b4a3",
    "cookie": "sessionid=s3ss10n-c00k1e-val",
    "api_key": "sk-proj-abcdefghijklmnopqrstuvwx",
    "aws": "AKIAIOSFODNN7EXAMPLE",
    "ssn": "078-05-1120",
    "denied": "Robert Smith Senior",
    "query_token": "qt-0123456789abcdef",
    "force_token": "f0rce-t0ken-value",
    "set_cookie": "refresh=s3t-c00k1e-secret",
}


def leaked(text: str) -> list[str]:
    """Which secrets appear in ``text`` (card digits also without their spaces)."""
    found = [k for k, v in SECRETS.items() if v in text]
    if SECRETS["card"].replace(" ", "") in text:
        found.append("card(no spaces)")
    return found


# -- rules and redact() -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "path", "hit"),
    [
        ("user.email", "user.email", True),
        ("user.email", "User.Email", True),
        ("user.email", "user.emails", False),
        ("features.*.ssn", "features.a.ssn", True),
        ("features.*.ssn", "features.0.ssn", True),
        ("features.*.ssn", "features.a.b.ssn", False),
        ("**.ssn", "ssn", True),
        ("**.ssn", "a.b.c.ssn", True),
        ("a.**", "a", True),
        ("a.**.z", "a.b.c.z", True),
    ],
)
def test_field_path_matching(pattern: str, path: str, hit: bool) -> None:
    """``*`` is one segment (a key or a list index), ``**`` any number; keys match case-insensitively."""
    assert path_matches(pattern, path) is hit


def test_deny_paths_and_default_deny_keys() -> None:
    """Denied paths and sensitive key names (at any depth) become ``[REDACTED]``; the rest stays."""
    body = {
        "user": {"email": "x", "name": "Bob", "age": 41},
        "features": [{"ssn": "1", "f": 2.5}, {"ssn": "2", "f": 3.5}],
        "deep": {"a": {"b": {"password": "p", "ok": True}}},
    }
    out = redact(body, CaptureRules(deny=("user.email", "features.*.ssn")))
    assert out == {
        "user": {"email": REDACTED, "name": "Bob", "age": 41},
        "features": [{"ssn": REDACTED, "f": 2.5}, {"ssn": REDACTED, "f": 3.5}],
        "deep": {"a": {"b": {"password": REDACTED, "ok": True}}},
    }


def test_allow_list_keeps_only_allowed_paths() -> None:
    """With ``allow``, everything outside the allowed paths is redacted; deny still wins inside them."""
    body = {"user": {"name": "Bob", "email": "b"}, "x": [1, 2], "meta": {"id": 7, "token": "t"}}
    out = redact(body, CaptureRules(allow=("x", "meta"), deny=("meta.id",)))
    assert out == {"user": REDACTED, "x": [1, 2], "meta": {"id": REDACTED, "token": REDACTED}}
    out = redact(body, CaptureRules(allow=("user.name",)))
    assert out == {"user": {"name": "Bob", "email": REDACTED}, "x": REDACTED, "meta": REDACTED}


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("mail bob.smith@example.com now", "mail  now"),
        ("card 4111 1111 1111 1111 end", "card  end"),
        ("card 4111-1111-1111-1111", "card "),
        ("Authorization: Bearer abcdefghijklmnop", "Authorization: "),
        ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "jwt "),
        ("key sk-proj-abcdefghijklmnopqrstuvwx", "key "),
        ("aws AKIAIOSFODNN7EXAMPLE", "aws "),
        ("gh ghp_abcdefghijklmnopqrstuvwxyz0123", "gh "),
        ("ssn 078-05-1120", "ssn "),
        ("url?password=hunter2&x=1", "url?password=&x=1"),
    ],
)
def test_builtin_patterns_redact(text: str, kept: str) -> None:
    """Emails, card numbers, bearer tokens, JWTs, API keys, secret assignments and SSNs are redacted."""
    assert redact_text(text, CaptureRules()).replace(REDACTED, "") == kept


def test_patterns_leave_ordinary_text_alone() -> None:
    """Numbers that fail the Luhn check, short ids and plain words survive."""
    text = "order 1234567890123 of 2024-01-02, qty 3, ref abc-123, call 555-1234"
    assert redact_text(text, CaptureRules()) == text


def test_custom_patterns_and_keys_are_redacted() -> None:
    """User regexes apply to values and to dict keys; integers that are card numbers go too."""
    rules = CaptureRules(redact_patterns=("email", r"ACME-\d{6}"))
    out = redact({"bob@example.com": "id ACME-123456", "n": 4111111111111111, "m": 42}, rules)
    assert out == {REDACTED: f"id {REDACTED}", "n": REDACTED, "m": 42}


def test_caps_depth_nodes_strings_and_non_finite_floats() -> None:
    """Strings are cut after redaction, deep or large structures are cut, NaN/inf become strings."""
    rules = CaptureRules(max_string=10, max_depth=3, max_nodes=50)
    deep: Any = "leaf"
    for _ in range(10):
        deep = {"d": deep}
    out = redact({"s": "x" * 100, "deep": deep, "big": list(range(1000)), "f": [float("nan"), float("inf")]}, rules)
    assert out["s"] == "x" * 10 + TRUNCATED
    assert json.dumps(out["deep"]).count(TRUNCATED) == 1
    assert len(out["big"]) < 60
    json.dumps(out, allow_nan=False)  # strict JSON
    secret = "a" * 5 + SECRETS["email"]
    assert SECRETS["email"][:5] not in redact_text(secret, rules)  # redacted before the cut


def test_redact_never_raises_on_odd_objects() -> None:
    """Objects without a JSON shape become their (redacted) repr; a broken one becomes a marker."""

    class Broken:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    class Holder:
        def __repr__(self) -> str:
            return f"Holder({SECRETS['email']})"

    out = redact({"a": Broken(), "b": Holder(), "c": b"\xff\xfe", "d": {1, 2}, "e": (1, 2)})
    assert out["a"] == "<Broken>" and SECRETS["email"] not in out["b"]
    assert out["c"] == "<2 bytes, not UTF-8>" and sorted(out["d"]) == [1, 2] and out["e"] == [1, 2]


def test_rules_validate() -> None:
    """Bad rules fail at configuration time with ConfigurationError."""
    with pytest.raises(ConfigurationError):
        CaptureRules(max_bytes=0)
    with pytest.raises(ConfigurationError):
        CaptureRules(redact_patterns=("([unclosed",))
    with pytest.raises(ConfigurationError):
        CaptureRules(deny=("",))
    assert CaptureRules(deny="a.b").deny == ("a.b",)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "name", ["Authorization", "Cookie", "Set-Cookie", "Proxy-Authorization", "X-Api-Key", "X-Session-Id",
             "X-My-Auth-Token", "X-Amz-Security-Token"],
)
def test_sensitive_headers_are_never_allowed(name: str) -> None:
    """Credential-bearing headers are dropped whatever the rules say."""
    assert not header_allowed(name)


def test_body_documents() -> None:
    """JSON and form bodies are parsed and redacted; other text is redacted; binary is a marker."""
    rules = CaptureRules()
    assert body_document(b'{"email": "a@b.co", "x": NaN}', "application/json", rules) == {"email": REDACTED, "x": "NaN"}
    form = body_document(b"password=p&q=1&q=2", "application/x-www-form-urlencoded", rules)
    assert form == {"password": REDACTED, "q": ["1", "2"]}
    assert body_document(b"hi a@b.co", "text/plain", rules) == {"text": f"hi {REDACTED}"}
    assert body_document(b"\xff\x00\xfe", "application/octet-stream", rules) == {"omitted": "not UTF-8", "bytes": 3}
    assert body_document(b"[" * 100_000, "application/json", rules) == {"text": TRUNCATED.join(["[" * 1024, ""])}


# -- capture through the middleware -------------------------------------------------------------


def _echo_app() -> Starlette:
    async def predict(request: Request) -> Response:
        body = await request.body()
        with mltrace.stage("inference") as s:
            s.set_attribute("ml.output.prediction", 1.0)
            capture_payload({"features": json.loads(body or b"{}"), "model": "m"}, kind="input")
        response = JSONResponse({"echo": json.loads(body or b"{}"), "who": SECRETS["email"]})
        response.set_cookie("refresh", SECRETS["set_cookie"].split("=", 1)[1])
        return response

    app = Starlette(routes=[Route("/predict", predict, methods=["POST"])])
    app.add_middleware(mltrace.MLTraceMiddleware)
    return app


def _secret_request(client: TestClient) -> Any:
    body = {
        "user": {"email": SECRETS["email"], "name": SECRETS["denied"], "password": SECRETS["password"]},
        "payment": {"card": SECRETS["card"], "raw": SECRETS["card_digits"]},
        "notes": f"jwt {SECRETS['jwt']} key {SECRETS['api_key']} aws {SECRETS['aws']} ssn {SECRETS['ssn']}",
        "x": [1.5, 2.5],
    }
    return client.post(
        f"/predict?token={SECRETS['query_token']}&model=m",
        json=body,
        headers={
            "Authorization": f"Bearer {SECRETS['bearer']}",
            "Cookie": SECRETS["cookie"],
            "X-Api-Key": SECRETS["api_key"],
            "x-force": SECRETS["force_token"],
        },
    )


@pytest.fixture
def capture(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PayloadCapture]:
    """Capture on, into a local store in tmp_path, denying ``user.name`` at any depth."""
    cap = PayloadCapture(CaptureRules(deny=("**.user.name",)), LocalStoreSink(tmp_path / "p.db"))
    monkeypatch.setattr(SETTINGS, "payload_capture", cap)
    monkeypatch.setattr(SETTINGS, "force_trace_header", "x-force")
    monkeypatch.setattr(SETTINGS, "force_trace_token", SECRETS["force_token"])
    yield cap
    cap.close()


def test_capture_is_off_by_default(spans: CapturedSpans) -> None:
    """Without configure(capture_payloads=...), no payload is captured and no reference is set."""
    assert SETTINGS.payload_capture is None
    before = COUNTERS.snapshot()["payloads_captured"]
    r = _secret_request(TestClient(_echo_app()))
    assert r.status_code == 200
    assert all(semconv.ML_PAYLOAD_REF not in (s.attributes or {}) for s in spans)
    assert COUNTERS.snapshot()["payloads_captured"] == before


def test_http_payload_is_redacted_and_stored_by_reference(spans: CapturedSpans, capture: PayloadCapture) -> None:
    """The exchange is stored redacted in the local store; the server span carries only its reference."""
    r = _secret_request(TestClient(_echo_app()))
    assert r.status_code == 200 and capture.flush()
    server = spans.server()
    tid, sid = format(server.context.trace_id, "032x"), format(server.context.span_id, "016x")
    assert (server.attributes or {})[semconv.ML_PAYLOAD_REF] == f"local:{tid}/{sid}"
    inference = spans.stage("inference")
    inference_sid = format(inference.context.span_id, "016x")
    assert (inference.attributes or {})[semconv.ML_PAYLOAD_REF] == f"local:{tid}/{inference_sid}"
    assert isinstance(capture.sink, LocalStoreSink)
    rows = {row["kind"]: json.loads(str(row["body"])) for row in capture.sink.read(tid)}
    assert set(rows) == {"http", "input"}
    http = rows["http"]
    assert http["request"]["method"] == "POST" and http["response"]["status"] == 200
    assert http["request"]["body"]["x"] == [1.5, 2.5]
    assert http["request"]["body"]["user"] == {"email": REDACTED, "name": REDACTED, "password": REDACTED}
    assert http["request"]["query"] == {"token": REDACTED, "model": "m"}
    assert {"authorization", "cookie", "x-api-key", "x-force"}.isdisjoint(http["request"]["headers"])
    assert "set-cookie" not in http["response"]["headers"]
    assert http["request"]["headers"]["content-type"] == "application/json"
    assert rows["input"]["features"]["payment"] == {"card": REDACTED, "raw": REDACTED}
    assert leaked(json.dumps(rows)) == []


def test_fastapi_server_span_gets_the_reference(spans: CapturedSpans, capture: PayloadCapture) -> None:
    """Where FastAPI made the server span (the middleware only enriches it), the reference lands on it."""
    from fastapi import FastAPI

    app = FastAPI()
    app.add_middleware(mltrace.MLTraceMiddleware)

    @app.post("/score")
    def score(body: dict[str, Any]) -> dict[str, str]:
        return {"who": str(body.get("email"))}

    r = TestClient(app).post("/score", json={"email": SECRETS["email"], "x": 1})
    assert r.status_code == 200 and capture.flush()
    server = spans.server()
    tid, sid = format(server.context.trace_id, "032x"), format(server.context.span_id, "016x")
    assert (server.attributes or {})[semconv.ML_PAYLOAD_REF] == f"local:{tid}/{sid}"
    assert isinstance(capture.sink, LocalStoreSink)
    (row,) = capture.sink.read(tid)
    http = json.loads(str(row["body"]))
    assert http["request"]["body"] == {"email": REDACTED, "x": 1}
    assert http["response"]["body"] == {"who": REDACTED}


def test_file_sink_writes_one_file_per_document(
    tmp_path: Path, spans: CapturedSpans, monkeypatch: pytest.MonkeyPatch
) -> None:
    """FileSink stores ``<dir>/<trace>/<span>/<kind>.json``; the reference is that folder's URI."""
    cap = PayloadCapture(CaptureRules(deny=("**.user.name",)), FileSink(tmp_path / "payloads"))
    monkeypatch.setattr(SETTINGS, "payload_capture", cap)
    monkeypatch.setattr(SETTINGS, "force_trace_header", "x-force")
    _secret_request(TestClient(_echo_app()))
    assert cap.flush()
    ref = str((spans.server().attributes or {})[semconv.ML_PAYLOAD_REF])
    folder = Path(urlparse(ref).path)
    assert ref.startswith("file://") and (folder / "http.json").is_file()
    assert json.loads((folder / "http.json").read_text())["response"]["status"] == 200
    every = "".join(p.read_text() for p in (tmp_path / "payloads").rglob("*.json"))
    assert leaked(every) == []
    cap.close()


def test_oversized_bodies_are_not_stored(
    spans: CapturedSpans, capture: PayloadCapture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A body over ``max_bytes`` is replaced by a marker with its size; the response is unchanged."""
    monkeypatch.setattr(capture, "rules", CaptureRules(max_bytes=100))
    payload = {"blob": "z" * 500}
    raw = json.dumps(payload).encode()
    r = TestClient(_echo_app()).post("/predict", content=raw, headers={"content-type": "application/json"})
    assert r.json()["echo"] == payload and capture.flush()
    tid = format(spans.server().context.trace_id, "032x")
    assert isinstance(capture.sink, LocalStoreSink)
    http = next(json.loads(str(r["body"])) for r in capture.sink.read(tid) if r["kind"] == "http")
    assert http["request"]["body"] == {"omitted": "larger than max_bytes", "bytes": len(raw)}


def test_full_queue_drops_and_counts_without_touching_the_request(spans: CapturedSpans, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """When the writer cannot keep up the payload is dropped and counted; the request is unaffected."""

    class StuckSink(FileSink):
        def write(self, trace_id: str, span_id: str, kind: str, document: str) -> None:
            raise OSError("disk full")

    cap = PayloadCapture(CaptureRules(), StuckSink(tmp_path), queue_size=1)
    monkeypatch.setattr(SETTINGS, "payload_capture", cap)
    before = COUNTERS.snapshot()["payloads_dropped"]
    client = TestClient(_echo_app())
    assert all(client.post("/predict", json={"x": i}).status_code == 200 for i in range(5))
    cap.flush()
    assert COUNTERS.snapshot()["payloads_dropped"] - before == 10  # two documents per request
    cap.close()


def test_configure_parameter_and_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``capture_payloads`` accepts rules, a capture or a bool; ``MLTRACE_CAPTURE_PAYLOADS`` turns it on."""
    assert _payload_capture(None, None) is False  # leave as is
    assert _payload_capture(False, None) is None  # turn off
    cap = _payload_capture(CaptureRules(deny=("a",)), tmp_path / "x.db")
    assert isinstance(cap, PayloadCapture) and isinstance(cap.sink, LocalStoreSink)
    assert cap.sink.path == tmp_path / "x.db" and cap.rules.deny == ("a",)
    monkeypatch.setenv("MLTRACE_CAPTURE_PAYLOADS", "true")
    monkeypatch.setenv("MLTRACE_PAYLOAD_SINK", f"file:{tmp_path}/p")
    monkeypatch.setenv("MLTRACE_PAYLOAD_DENY", "user.email, features.*.ssn")
    cap = _payload_capture(None, None)
    assert isinstance(cap, PayloadCapture) and isinstance(cap.sink, FileSink)
    assert cap.rules.deny == ("user.email", "features.*.ssn")
    with pytest.raises(ConfigurationError):
        _payload_capture("yes", None)  # type: ignore[arg-type]


# -- end to end: nothing redacted reaches any exporter ------------------------------------------

EVERY_EXPORTER = """
import io, json, sys
sys.path[:0] = [{tests!r}, {here!r}]
import mltrace
from _loopback import HttpBackend
from opentelemetry import trace
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.exporter.zipkin.json import ZipkinExporter
from starlette.testclient import TestClient
import test_privacy as tp

otlp, zipkin = HttpBackend(), HttpBackend()
h = mltrace.configure(service_name="privacy", exporter="local", local_path="t.db", batch=False,
                      capture_payloads=mltrace.privacy.CaptureRules(deny=("**.user.name",)),
                      force_trace_header="x-force")
mltrace._settings.SETTINGS.force_trace_token = tp.SECRETS["force_token"]
mltrace._settings.SETTINGS.capture_request_body = True   # body summaries on the server span too
mltrace._settings.SETTINGS.capture_response_body = True
console, memory = io.StringIO(), InMemorySpanExporter()
provider = trace.get_tracer_provider()
for exporter in (ConsoleSpanExporter(out=console), memory,
                 OTLPSpanExporter(endpoint=otlp.url + "/v1/traces"),
                 ZipkinExporter(endpoint=zipkin.url + "/api/v2/spans")):
    provider.add_span_processor(SimpleSpanProcessor(exporter))
client = TestClient(tp._echo_app())
assert tp._secret_request(client).status_code == 200
assert h.shutdown(10)
memory_text = "".join(s.to_json() for s in memory.get_finished_spans())
db = b"".join(open(p, "rb").read() for p in ("t.db", "t.db-wal") if __import__("os").path.exists(p))
out = {{
    "spans": len(memory.get_finished_spans()),
    "refs": [s.attributes["ml.payload.ref"] for s in memory.get_finished_spans() if "ml.payload.ref" in s.attributes],
    "console": tp.leaked(console.getvalue()), "console_len": len(console.getvalue()),
    "memory": tp.leaked(memory_text),
    "otlp": tp.leaked(otlp.received().decode("latin-1")), "otlp_len": len(otlp.received()),
    "zipkin": tp.leaked(zipkin.received().decode("latin-1")), "zipkin_len": len(zipkin.received()),
    "local_store_file": tp.leaked(db.decode("latin-1")), "db_len": len(db),
    "stored_payload_has_fields": b"1.5" in db and b"[REDACTED]" in db,
}}
print(json.dumps(out))
"""


def test_no_redacted_value_reaches_any_exporter(tmp_path: Path) -> None:
    """Console, in-memory, OTLP/HTTP, Zipkin and the local store file (spans + payloads) hold no secret."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MLTRACE_"))}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), str(HERE), env.get("PYTHONPATH", "")) if p)
    code = textwrap.dedent(EVERY_EXPORTER.format(tests=str(TESTS), here=str(HERE)))
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", code],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["spans"] >= 2 and len(out["refs"]) == 2
    assert all(out[k] > 1000 for k in ("console_len", "otlp_len", "zipkin_len", "db_len"))  # each got the spans
    assert out["stored_payload_has_fields"]
    sinks = ("console", "memory", "otlp", "zipkin", "local_store_file")
    assert {k: out[k] for k in sinks} == {k: [] for k in sinks}


def test_secrets_list_is_detectable() -> None:
    """Guard for the test above: ``leaked`` finds each secret in plain text."""
    assert len(leaked(" ".join(SECRETS.values()))) == len(SECRETS)
    assert leaked("4111111111111111") == ["card(no spaces)"]
    assert re.search("example", SECRETS["email"])
