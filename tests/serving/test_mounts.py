"""Issue 11 item 3: mounted sub-apps keep their prefix, and a FastAPI sub-app mounted under a
telemetry-off app gives one SERVER span (docs/fastapi.md promises one), under real uvicorn.

``Mount("/v1", routes=[Route("/predict", f)])`` and the same under ``/v2`` both used to become
``POST /predict``; the FastAPI sub-app added a second SERVER span and its operation spans.
"""

from __future__ import annotations

import httpx
from _servers import ServerProcess
from _serving import spans_of

CASES = [
    # (x-app, method, path, the route template expected)
    ("mounted", "POST", "/v1/predict", "/v1/predict"),
    ("mounted", "POST", "/v2/predict", "/v2/predict"),
    ("mounted", "GET", "/v1/items/7", "/v1/items/{item_id}"),
    ("mounted", "GET", "/users/42/items/7", "/users/{uid}/items/{item_id}"),
    ("fastapi-mounted", "POST", "/sub/predict", "/sub/predict"),
    ("fastapi-mounted", "GET", "/sub/items/3", "/sub/items/{item_id}"),
    ("starlette", "GET", "/items/3", "/items/{item_id}"),
]


def test_mounted_routes_keep_their_prefix(traced: ServerProcess) -> None:
    """Span name and ``http.route`` carry every mount's template; one SERVER span; stages are its
    children and no FastAPI operation span sits between."""
    expected: dict[str, tuple[str, str]] = {}
    with httpx.Client(base_url=traced.url, timeout=30) as client:
        for app, method, path, route in CASES:
            body = {"x": [1.0, 2.0]} if method == "POST" else None
            r = client.request(method, path, json=body, headers={"x-app": app})
            assert r.status_code == 200, (app, path, r.text)
            expected[r.headers["x-trace-id"]] = (f"{method} {route}", route)
    by_trace = spans_of(traced.db, list(expected))  # type: ignore[attr-defined]
    for trace_id, (name, route) in expected.items():
        spans = by_trace[trace_id]
        servers = [s for s in spans if s["kind"] == "SERVER"]
        assert len(servers) == 1, [(s["name"], s["kind"]) for s in spans]
        (server,) = servers
        assert (server["name"], server["attributes"].get("http.route")) == (name, route), server
        assert not [s["name"] for s in spans if s["name"].startswith("fastapi.")]
        assert all(s["parent_span_id"] == server["span_id"] for s in spans if s is not server)
