"""One raw ASGI request to a benchmark app: no HTTP client, no server, just the app's own cost."""

from __future__ import annotations

import json
import random
from typing import Any

# The benchmark body: 32 floats, as in FACTS.md's measurements.
BODY = json.dumps({"x": [0.1 * i for i in range(32)]}).encode()


def bodies(n: int = 1024, seed: int = 7) -> list[bytes]:
    """``n`` distinct bodies (32 random floats and one of 1,024 users each), so no request repeats
    the one before it: real traffic does not, and summaries of repeated content are cheaper."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        body = {"x": [round(rng.gauss(0.0, 1.0), 6) for _ in range(32)], "user": f"u{rng.randrange(1024)}"}
        out.append(json.dumps(body).encode())
    return out


async def call(app: Any, body: bytes = BODY, path: str = "/predict") -> int:
    """POST ``body`` to ``path`` through ``app``; returns the response status code."""
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
        "root_path": "", "headers": [(b"host", b"bench"), (b"content-type", b"application/json"),
                                     (b"content-length", str(len(body)).encode())],
        "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8000),
    }
    sent = False
    status = 0

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    await app(scope, receive, send)
    return status
