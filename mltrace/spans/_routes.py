"""The route template of a served request (``http.route`` and the server span's name), mounts included.

Starlette's router keeps only the innermost matched route in ``scope["route"]``: behind
``Mount("/v1", routes=[Route("/predict", f)])`` that is ``/predict``, and the same sub-app under
``/v2`` gave the same name. When the request went through a mount (``root_path`` grew), the
template is rebuilt from the outermost router down, matching each mount as the router did, so
the result is ``/v1/predict`` (``/users/{uid}/predict`` for a mount with parameters: templates,
never the concrete path).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from starlette.routing import Match
from starlette.types import Scope

_MAX_DEPTH = 8  # mounts inside mounts; deeper than any app seen, and bounds the walk


def _template(route: Any) -> str | None:
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) else None


def route_template(scope: Scope, path: str, root_path: str) -> str | None:
    """The full route template of the request in ``scope`` after the app handled it, or ``None``.

    ``path``/``root_path``: the scope's as the middleware was entered (Starlette before 0.33
    rewrote ``scope["path"]`` to what was left below a mount)."""
    route = scope.get("route")
    top_root = scope.get("app_root_path", root_path)
    if route is not None and scope.get("root_path", "") == top_root:
        return _template(route)  # no mount on the way: the route knows it all
    # Through a mount, or no ``scope["route"]`` at all (FastAPI's router sets it only for its own
    # APIRoutes, not for Starlette routes and mounts; old Starlette never did): ask the routers.
    routes = getattr(scope.get("router"), "routes", None)
    if not routes:
        return _template(route)
    view = {"type": scope["type"], "path": path, "root_path": top_root,
            "method": scope.get("method", "GET"), "headers": scope.get("headers", []), "path_params": {}}
    try:
        found = _walk(routes, view, route, 0)
    except Exception:  # a custom route whose matches() fails: the innermost template still names it
        found = None
    return found or _template(route)


def _walk(routes: Sequence[Any], view: dict[str, Any], target: Any, depth: int) -> str | None:
    """The template of the route handling ``view`` below ``routes``, matched as the router matches:
    the first full match (a mount is descended into: the same sub-app mounted twice is told apart
    by its prefix), else the first partial one. A known ``target`` is found by identity."""
    if target is not None and any(candidate is target for candidate in routes):
        return _template(target)
    if depth >= _MAX_DEPTH:
        return None
    partial = None
    for candidate in routes:
        children = getattr(candidate, "routes", None)
        if target is not None and not children:
            continue  # not the target, and nothing below it
        match, child_scope = candidate.matches(view)
        if match is Match.FULL:
            if not children:
                return _template(candidate)
            inner = _walk(children, {**view, **child_scope}, target, depth + 1)
            prefix = getattr(candidate, "path", "")  # a Mount's own template; a Host route has none
            if inner is None:
                return _template(candidate) if target is None or candidate is target else None
            return (prefix if isinstance(prefix, str) else "") + inner
        if match is Match.PARTIAL and partial is None and not children:
            partial = candidate
    return _template(partial) if partial is not None and target is None else None
