"""Flush queued spans (and log records) when the ASGI server shuts the app down.

Uvicorn (alone, with ``--workers``, or as gunicorn's worker class) ends a worker stopped by
SIGTERM by raising the signal again once the app's lifespan shutdown is done, so the worker dies
without running ``atexit`` handlers: whatever the BatchSpanProcessor still queues (up to
``OTEL_BSP_SCHEDULE_DELAY``, 5 s by default, of spans) would be lost on every deploy or scale-in.
:func:`run_lifespan` passes the lifespan scope through and flushes before it reports
``lifespan.shutdown.complete``, while the server still waits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_log = logging.getLogger("mltrace")

DEFAULT_FLUSH_TIMEOUT_S = 5.0
_SHUTDOWN_DONE = frozenset({"lifespan.shutdown.complete", "lifespan.shutdown.failed"})


def _providers() -> list[Any]:
    found: list[Any] = [trace.get_tracer_provider()]
    try:
        from opentelemetry._logs import get_logger_provider

        found.append(get_logger_provider())
    except ImportError:  # pragma: no cover - part of opentelemetry-api
        pass
    return [p for p in found if callable(getattr(p, "force_flush", None))]


def flush_providers(timeout_s: float = DEFAULT_FLUSH_TIMEOUT_S) -> bool:
    """Force-flush the global tracer and logger providers; ``False`` if any did not finish in time."""
    deadline = time.monotonic() + timeout_s
    ok = True
    for provider in _providers():
        left_ms = max(0, int((deadline - time.monotonic()) * 1000))
        try:
            ok = provider.force_flush(left_ms) is not False and ok
        except Exception:  # a broken exporter must not stop the server from shutting down
            _log.warning("mltrace: flushing %s at shutdown failed", type(provider).__name__, exc_info=True)
            ok = False
    return ok


async def run_lifespan(
    app: ASGIApp, scope: Scope, receive: Receive, send: Send, *, timeout_s: float = DEFAULT_FLUSH_TIMEOUT_S
) -> None:
    """Run ``app`` for a ``lifespan`` scope; flush telemetry before shutdown is reported done."""

    async def flushing_send(message: Message) -> None:
        if message.get("type") in _SHUTDOWN_DONE:
            ok = await asyncio.to_thread(flush_providers, timeout_s)
            if not ok:
                _log.warning("mltrace: spans still queued after %.1f s at shutdown", timeout_s)
        await send(message)

    await app(scope, receive, flushing_send)
