"""Auto-instrumentation: ``opentelemetry-instrument uvicorn app:app`` adds mltrace to an
unmodified Starlette or FastAPI app.

Registered as the ``mltrace`` entry point of the ``opentelemetry_instrumentor`` group, so
``OTEL_PYTHON_DISABLED_INSTRUMENTATIONS=mltrace`` turns it off. ``MLTraceInstrumentor`` puts
:class:`mltrace.MLTraceMiddleware` first among each app's user middleware when the app builds
its middleware stack, that is inside the SERVER span made by FastAPI's native telemetry or by
opentelemetry-instrumentation-fastapi/asgi, which it then enriches (one server span, not two).
An app that already added ``MLTraceMiddleware`` itself is left as it is.

When the first app builds its stack and no SDK ``TracerProvider`` is set (no OpenTelemetry
distro or configurator ran, and the app did not call :func:`mltrace.configure`), the
instrumentor calls ``mltrace.configure()``, which reads ``MLTRACE_*``/``OTEL_*`` variables;
``MLTRACE_AUTO_CONFIGURE=false`` (or ``instrument(configure=False)``) turns that off.
Configuring then, not at instrumentation time, lets an app's own ``configure()`` call win and
gives each forked worker its own provider.
"""

from __future__ import annotations

import functools
import logging
import os
import threading
import weakref
from collections.abc import Callable, Collection
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.instrumentor import BaseInstrumentor  # type: ignore[attr-defined]
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.types import ASGIApp

from ._settings import ENV
from .spans import MLTraceMiddleware

_log = logging.getLogger("mltrace.instrumentation")

_ORIGINAL = "_mltrace_original_build_middleware_stack"

BuildStack = Callable[[Starlette], ASGIApp]


class _State:
    def __init__(self) -> None:
        self.options: dict[str, Any] = {}
        self.configure = True
        self.configured = False
        self.lock = threading.Lock()
        self.apps: weakref.WeakSet[Starlette] = weakref.WeakSet()


_state = _State()


def _has_mltrace(app: Starlette) -> bool:
    return any(getattr(m, "cls", None) is MLTraceMiddleware for m in app.user_middleware)


def _configure_once() -> None:
    """``mltrace.configure()`` from the environment, unless a provider is already set."""
    from opentelemetry.sdk.trace import TracerProvider

    with _state.lock:
        if _state.configured or not _state.configure:
            return
        _state.configured = True
        if isinstance(trace.get_tracer_provider(), TracerProvider):
            return
        from ._configure import configure

        try:
            configure(resource_attributes={"process.pid": os.getpid()})
        except Exception:  # a bad setting must not stop the app from serving
            _log.exception("mltrace: auto-configuration failed; requests are not traced")


def _patched(original: BuildStack) -> BuildStack:
    @functools.wraps(original)
    def build_middleware_stack(self: Starlette) -> ASGIApp:
        if _has_mltrace(self):
            return original(self)
        _configure_once()
        user = self.user_middleware
        self.user_middleware = [Middleware(MLTraceMiddleware, **_state.options), *user]
        try:
            stack = original(self)
        finally:
            self.user_middleware = user
        _state.apps.add(self)
        return stack

    setattr(build_middleware_stack, _ORIGINAL, original)
    return build_middleware_stack


def _app_classes() -> list[type[Starlette]]:
    classes: list[type[Starlette]] = [Starlette]
    try:
        from fastapi.applications import FastAPI  # overrides build_middleware_stack
    except ImportError:  # FastAPI is optional (the `fastapi` extra): Starlette apps only
        return classes
    classes.append(FastAPI)
    return classes


class MLTraceInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Adds :class:`mltrace.MLTraceMiddleware` to every Starlette/FastAPI app.

    ``MLTraceInstrumentor().instrument(**options)``: ``options`` are passed to the middleware
    (``capture_request_body``, ``excluded_paths``, ...), plus ``configure=False`` to skip
    auto-configuration. Apps built before ``instrument()`` are not changed; after
    ``uninstrument()`` every app rebuilds its stack without the middleware.
    """

    def instrumentation_dependencies(self) -> Collection[str]:
        return ("starlette >= 0.35",)  # the Starlette of FastAPI 0.109, the oldest supported

    def _instrument(self, **kwargs: Any) -> None:
        configure = kwargs.pop("configure", None)
        _state.options = {k: v for k, v in kwargs.items() if k not in ("tracer_provider", "meter_provider")}
        _state.configure = ENV.AUTO_CONFIGURE.get() if configure is None else bool(configure)
        _state.configured = False
        for cls in _app_classes():
            current = cls.__dict__["build_middleware_stack"]
            if not hasattr(current, _ORIGINAL):
                cls.build_middleware_stack = _patched(current)  # type: ignore[method-assign,assignment]

    def _uninstrument(self, **kwargs: Any) -> None:
        for cls in _app_classes():
            current = cls.__dict__["build_middleware_stack"]
            original = getattr(current, _ORIGINAL, None)
            if original is not None:
                cls.build_middleware_stack = original  # type: ignore[method-assign,assignment]
        for app in list(_state.apps):
            app.middleware_stack = None  # rebuilt without mltrace on the next call
        _state.apps = weakref.WeakSet()
