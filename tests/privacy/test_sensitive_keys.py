"""One list of sensitive query keys, one placeholder story: ``[REDACTED]`` in everything mltrace
writes, ``REDACTED`` only in ``url.query`` (OTel's HTTP conventions prescribe that word)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

import mltrace
from mltrace.privacy import (
    DEFAULT_DENY_KEYS,
    REDACTED,
    SENSITIVE_QUERY_PARAMS,
    URL_REDACTED,
    CaptureRules,
    redact_query,
)
from mltrace.privacy._capture import _http_document, _Snapshot
from mltrace.testing import CapturedSpans

ROOT = Path(mltrace.__file__).parent.parent
# what the middleware has redacted in url.query since before the one list (OTel's list and common
# credential names), in the case clients send them
URL_KEYS = ("sig", "Signature", "X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token",
            "X-Goog-Signature", "token", "access_token", "api_key", "apikey", "key", "password", "secret")


def test_placeholders() -> None:
    assert REDACTED == "[REDACTED]"  # docs/privacy.md and the feature.* attributes promise this
    assert URL_REDACTED == "REDACTED"  # OTel's url.query convention: `sig=REDACTED`
    assert '"[REDACTED]"' in (ROOT / "docs/privacy.md").read_text()
    assert "replaced by `REDACTED`" in (ROOT / "docs/semantic-conventions.md").read_text()


def test_one_list() -> None:
    assert set(DEFAULT_DENY_KEYS) <= SENSITIVE_QUERY_PARAMS
    assert {k.lower() for k in URL_KEYS} <= SENSITIVE_QUERY_PARAMS
    # OTel's url.query list names AWSAccessKeyId too; the middleware's own list lacks it
    assert "awsaccesskeyid" in SENSITIVE_QUERY_PARAMS
    assert all(k == k.lower() for k in SENSITIVE_QUERY_PARAMS)


def test_redact_query_keeps_keys_and_order() -> None:
    query = "q=cat&SIG=abc&X-Amz-Signature=def&client_secret=s3&n=2&flag="
    assert redact_query(query.encode()) == (
        "q=cat&SIG=REDACTED&X-Amz-Signature=REDACTED&client_secret=REDACTED&n=2&flag="
    )
    assert redact_query("") == ""


@pytest.fixture
def served(spans: CapturedSpans) -> Iterator[tuple[TestClient, CapturedSpans]]:
    async def ok(request: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/p", ok)])
    app.add_middleware(mltrace.MLTraceMiddleware)
    with TestClient(app) as client:
        yield client, spans


def test_span_url_query_is_what_redact_query_gives(served: tuple[TestClient, CapturedSpans]) -> None:
    """The middleware's url.query is redact_query's: the keys it has always redacted, and those its
    own list lacked before they became one (AWSAccessKeyId, client_secret, refresh_token, ...)."""
    client, spans = served
    query = "&".join(f"{k}=v{i}" for i, k in enumerate(URL_KEYS)) + "&q=cat"
    assert client.get(f"/p?{query}").text == "ok"
    recorded = str((spans.server().attributes or {})["url.query"])
    assert recorded == redact_query(query)
    assert dict(parse_qsl(recorded))["q"] == "cat"
    assert not re.search(r"=v\d", recorded)
    assert client.get("/p?AWSAccessKeyId=a1&client_secret=b2&refresh_token=c3&q=dog").text == "ok"
    second = [s for s in spans.spans if s.kind is SpanKind.SERVER][-1]
    later = dict(parse_qsl(str((second.attributes or {})["url.query"])))
    assert later == {"AWSAccessKeyId": "REDACTED", "client_secret": "REDACTED", "refresh_token": "REDACTED", "q": "dog"}


def test_captured_query_uses_the_same_keys() -> None:
    """A captured payload's query drops the URL credential parameters too (with ``[REDACTED]``, the
    payload placeholder), besides the rules' deny keys."""
    request = _Snapshot("GET", "/p", b"sig=abc&X-Goog-Signature=d&token=t&q=cat", [], None)
    doc = _http_document(CaptureRules(), request, _Snapshot(None, None, b"", [], None, 200))
    assert doc["request"]["query"] == {"sig": REDACTED, "X-Goog-Signature": REDACTED, "token": REDACTED, "q": "cat"}
