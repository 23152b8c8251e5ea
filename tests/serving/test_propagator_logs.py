"""Issue 11 item 15: what a client sends cannot make the server's log grow without bound.

OpenTelemetry's propagators log raw header content: 64 KiB of baggage was a 65,611-character
warning per request, and each malformed baggage member its own warning. mltrace caps what those
loggers pass on (each record cut short, at most a few per message per minute), under real uvicorn.
"""

from __future__ import annotations

import os

import pytest
from _servers import ServerProcess
from _wire import Wire, request

REQUESTS = 20


def _log_size(server: ServerProcess) -> int:
    return os.path.getsize(server.log)


@pytest.mark.parametrize("app", ["starlette", "fastapi"])
def test_hostile_baggage_cannot_flood_the_log(traced: ServerProcess, app: str) -> None:
    """20 requests with 12 KiB of baggage and 20 with 4,000 non-ASCII members: every response 200,
    and the log grows by a few KiB (two rate windows at most); it grew by 525 KB before."""
    huge = b"k=" + b"v" * 12_000
    many = b",".join([b"\xc3\xa9=1"] * 2_000)  # "é=1" as UTF-8, read as latin-1: not ASCII
    tracestate = b",".join(b"k%d=v" % i for i in range(40))  # over 32 members
    before = _log_size(traced)
    with Wire(traced.port) as wire:
        for i in range(REQUESTS):
            for baggage in (huge, many):
                headers = [(b"x-app", app.encode()), (b"baggage", baggage),
                           (b"traceparent", b"00-%032x-%016x-01" % (i + 1, i + 1)), (b"tracestate", tracestate)]
                wire.send(request("GET", "/items/1", headers))
                assert wire.response().status == 200
    grown = _log_size(traced) - before
    assert grown < 32_000, traced.output()[-500:]  # two windows of capped records at most; was 525 KB
    assert max(len(line) for line in traced.output().splitlines()) < 1_000
