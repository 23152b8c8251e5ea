"""The ``mltrace ui`` web application: read-only pages and ``/api/...`` JSON over one trace source.

Starlette (a core dependency) routes; Jinja2 renders with autoescaping on, so every value that came
from a span is text in the page; charts are SVG drawn on the server, so the pages run no script
at all and the Content-Security-Policy can forbid it outright (``script-src 'none'``): a hostile
attribute that slipped past escaping still could not run.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._errors import ConfigurationError, MLTraceError
from ..query import SourceUnavailable, TraceNotFound, TraceSource, UnknownService
from . import _charts as charts
from . import _views as views
from ._data import CachedSource, answer
from ._params import ParameterError, parse

HERE = Path(__file__).parent
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'; script-src 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-resource-policy", b"same-origin"),
]
LOOPBACK_NAMES = ["127.0.0.1", "localhost", "::1", "[::1]"]


class SecurityHeaders:
    """Adds the CSP and friends to every response (pure ASGI: nothing else is touched)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + SECURITY_HEADERS
            await send(message)

        await self.app(scope, receive, with_headers)


def json_text(data: Any) -> str:
    """Byte for byte what ``--json`` prints (``mltrace.cli._common.print_json``)."""
    return json.dumps(data, indent=2, default=str, allow_nan=False) + "\n"


def _status(exc: BaseException) -> int:
    if isinstance(exc, TraceNotFound | UnknownService):
        return 404
    if isinstance(exc, ParameterError | ConfigurationError | ValueError):
        return 400
    if isinstance(exc, SourceUnavailable):
        return 503
    return 500


class UI:
    """The pages and API over ``source``; ``service`` is the service pages show when the query names
    none (the API adds nothing to its query)."""

    def __init__(self, source: TraceSource, service: str | None = None, profile: Any = None) -> None:
        import jinja2

        self.source = CachedSource(source)
        self.service = service
        self.profile = profile
        self.env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(HERE / "templates"),
            autoescape=True,  # every template is HTML: escape everything that is not marked safe
            undefined=jinja2.ChainableUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters["num"] = charts.number
        self.env.filters["clock"] = lambda us: charts.clock(us) if isinstance(us, int | float) else "-"

    # -- helpers -------------------------------------------------------------------------------
    def defaults(self) -> dict[str, str]:
        return {"service": self.service} if self.service else {}

    def page_service(self, query: dict[str, str]) -> dict[str, str]:
        """A page shows one service: the one asked for, else the server's, else the first known."""
        if query.get("service"):
            return {}
        if self.service:
            return self.defaults()
        known = self.services()
        return {"service": known[0]} if known else {}

    def services(self) -> list[str]:
        try:
            return self.source.services()
        except MLTraceError:
            return []

    def render(self, name: str, request: Request, context: dict[str, Any], api: str, status: int = 200) -> Response:
        service = context.get("service")
        since = context.get("since")
        nav = {k: v for k, v in (("service", service), ("since", since)) if v}
        body = self.env.get_template(name).render(
            **context, source_url=self.source.url, nav_query=("?" + urlencode(nav)) if nav else "", api_href=api,
            page=name.removesuffix(".html"),
        )
        return HTMLResponse(body, status_code=status)

    def failure(self, request: Request, exc: BaseException, *, api: bool) -> Response:
        status = _status(exc)
        message = str(exc) if isinstance(exc, MLTraceError | ValueError) else f"{type(exc).__name__}: {exc}"
        if api:
            return Response(json_text({"error": message, "status": status}), status, media_type="application/json")
        heading = {404: "Not found", 400: "Bad request", 503: "Source unavailable"}.get(status, "Error")
        return self.render("error.html", request, {"status": status, "heading": heading, "message": message},
                           "/api/stats", status)

    def guarded(self, fn: Callable[[Request], Response], *, api: bool) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            try:
                return fn(request)
            except (MLTraceError, ValueError, LookupError) as exc:
                return self.failure(request, exc, api=api)

        return endpoint

    # -- API -----------------------------------------------------------------------------------
    def api(self, command: str, path_param: str | None = None) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            positional = request.path_params.get(path_param) if path_param else None
            query = list(request.query_params.multi_items())
            # The query is the whole command line: the server's --service is the pages' default,
            # never added here, so /api/stats?since=1h is exactly `mltrace stats --since 1h --json`.
            args = parse(command, query, positional=positional)
            if command == "lineage" and positional is None and not args.fingerprint:
                raise ParameterError("give a trace id (/api/lineage/TRACE_ID) or ?fingerprint=F")
            return Response(json_text(answer(self.source, args)), media_type="application/json")

        return self.guarded(endpoint, api=True)

    # -- pages ---------------------------------------------------------------------------------
    def _query(self, request: Request, *extra: str) -> dict[str, str]:
        return {k: v for k, v in request.query_params.items() if v != "" or k in extra}

    def overview(self, request: Request) -> Response:
        query = self._query(request)
        query.setdefault("since", "1h")
        defaults = self.page_service(query)
        ctx = views.overview(self.source, query, defaults)
        ctx["services"] = self.services()
        return self.render("overview.html", request, ctx, "/api/stats?" + urlencode(self._nav(ctx)))

    def _nav(self, ctx: dict[str, Any]) -> dict[str, str]:
        return {k: str(ctx[k]) for k in ("service", "since") if ctx.get(k)}

    def slow(self, request: Request) -> Response:
        query = self._query(request)
        ctx = views.slow_page(self.source, query, self.page_service(query))
        ctx.update(service=ctx["args"]["service"], since=ctx["args"]["since"], services=self.services())
        return self.render("slow.html", request, ctx, "/api/slow?" + urlencode({**query, **self._nav(ctx)}))

    def drift(self, request: Request) -> Response:
        query = self._query(request)
        ctx = views.drift_page(self.source, dict(query), self.page_service(query), self.profile)
        ctx.update(service=ctx["args"]["service"], since=ctx["args"]["since"], services=self.services())
        query.pop("feature", None)
        return self.render("drift.html", request, ctx, "/api/drift?" + urlencode({**query, **self._nav(ctx)}))

    def trace(self, request: Request) -> Response:
        trace_id = request.path_params["trace_id"]
        ctx = views.trace_page(self.source, trace_id)
        ctx["service"] = self.service
        return self.render("trace.html", request, ctx, f"/api/traces/{ctx['show']['trace_id']}")

    def lineage(self, request: Request) -> Response:
        trace_id = request.path_params["trace_id"]
        ctx = views.lineage_page(self.source, trace_id)
        ctx["service"] = self.service
        return self.render("lineage.html", request, ctx, f"/api/lineage/{ctx['lineage']['trace_id']}")

    def jump(self, request: Request) -> Response:
        trace_id = "".join(c for c in request.query_params.get("id", "") if c in "0123456789abcdefABCDEF")
        return RedirectResponse(f"/traces/{trace_id}" if trace_id else "/", status_code=303)

    def routes(self) -> list[Route | Mount]:
        page = self.guarded
        return [
            Route("/", page(self.overview, api=False)),
            Route("/slow", page(self.slow, api=False)),
            Route("/drift", page(self.drift, api=False)),
            Route("/traces", self.jump),
            Route("/traces/{trace_id}", page(self.trace, api=False)),
            Route("/lineage/{trace_id}", page(self.lineage, api=False)),
            Route("/api/slow", self.api("slow")),
            Route("/api/stats", self.api("stats")),
            Route("/api/drift", self.api("drift")),
            Route("/api/traces/{trace_id}", self.api("show", "trace_id")),
            Route("/api/lineage/{trace_id}", self.api("lineage", "trace_id")),
            Route("/api/lineage", self.api("lineage")),
            Route("/favicon.ico", lambda request: RedirectResponse("/static/favicon.svg", status_code=301)),
            Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        ]


def create_app(
    source: TraceSource, *, service: str | None = None, allowed_hosts: list[str] | None = None, profile: Any = None
) -> Starlette:
    """The web application over an open ``source`` (GET and HEAD only: the view is read-only).

    ``profile`` (a :class:`mltrace.drift.ReferenceProfile`) lets /drift draw a feature's reference
    distribution against the requests'.
    ``allowed_hosts`` are the Host headers answered (default: loopback names only, which keeps a
    page on another site from reading this one through DNS rebinding); ``["*"]`` answers any.
    """
    ui = UI(source, service, profile)
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts or LOOPBACK_NAMES),
    ]
    app = Starlette(routes=ui.routes(), middleware=middleware)  # the caller closes the source
    app.state.ui = ui
    return app
