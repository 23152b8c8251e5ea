"""What a client sends that mltrace reads, read defensively: the request's HTTP attributes (a
hostile ``Host`` header among them) and what OpenTelemetry's propagators may log about its headers.

Nothing a client sends may change a response or put an invalid attribute on a span: ``Host:
localhost:\\xb2`` (a superscript digit passes ``str.isdigit()`` and makes ``int()`` raise) and
``Host: x:99999999999999999999999`` (an int the OTLP encoder rejects, with a traceback per span)
give no ``server.port`` at all.

Propagators log raw header content: the W3C baggage propagator put a 65,611-character warning in
the log for each request carrying 64 KiB of baggage, and one warning per malformed list member (an
8 KiB header of ``é,é,...`` is ~4,000 warnings a request). :func:`cap_propagator_logs` caps what
those loggers pass on.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from starlette.datastructures import Headers
from starlette.types import Scope

from ..privacy import redact_query

_DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_TEXT = 256  # characters of a client-sent string put on a span (user agent, host)


def _port(text: str) -> int | None:
    """A TCP port (1-65535), or ``None``: only ASCII digits count (``"²".isdigit()`` is true)."""
    if 0 < len(text) <= 5 and text.isascii() and text.isdigit():
        port = int(text)
        return port if 0 < port <= 65535 else None
    return None


def host_attributes(host: str, scheme: str) -> dict[str, Any]:
    """``server.address``/``server.port`` from a ``Host`` header; a port that is not one is left out."""
    if host.startswith("["):  # an IPv6 literal: [::1]:8000
        end = host.find("]")
        name = host[1:end] if end > 0 else host
        rest = host[end + 1:] if end > 0 else ""
        port_text = rest[1:] if rest.startswith(":") else None
    elif host.count(":") == 1:
        name, _, port_text = host.partition(":")
    else:
        name, port_text = host, None
    attrs: dict[str, Any] = {"server.address": (name or host)[:MAX_TEXT]}
    port = _DEFAULT_PORTS.get(scheme, 80) if port_text is None else _port(port_text)
    if port is not None:
        attrs["server.port"] = port
    return attrs


def request_attributes(scope: Scope, headers: Headers) -> dict[str, Any]:
    """The server span's start attributes (OpenTelemetry HTTP server conventions)."""
    scheme = scope.get("scheme", "http")
    attrs: dict[str, Any] = {
        "http.request.method": scope.get("method", "_OTHER"),
        "url.path": scope.get("path", ""),
        "url.scheme": scheme,
    }
    if scope.get("query_string"):
        attrs["url.query"] = redact_query(scope["query_string"])  # one list: privacy.SENSITIVE_QUERY_PARAMS
    if scope.get("http_version"):
        attrs["network.protocol.version"] = scope["http_version"]
    host = headers.get("host")
    if host:
        attrs.update(host_attributes(host, scheme))
    elif scope.get("server"):
        address, port = scope["server"][0], scope["server"][1]
        attrs["server.address"] = address
        if isinstance(port, int):
            attrs["server.port"] = port
    client = scope.get("client")
    if client:
        attrs["client.address"] = client[0]
    agent = headers.get("user-agent")
    if agent:
        attrs["user_agent.original"] = agent[:MAX_TEXT]
    return attrs


# -- what propagators may log about a client's headers --------------------------------------------

# The loggers of OpenTelemetry's propagators (and of TraceState, which the W3C propagator fills from
# the client's tracestate header) that put header content into their messages.
PROPAGATOR_LOGGERS = (
    "opentelemetry.baggage.propagation",
    "opentelemetry.trace.propagation.tracecontext",
    "opentelemetry.trace.span",
    "opentelemetry.propagators.b3",
)


class ClientTextCap(logging.Filter):
    """Cuts each record to ``max_chars`` and passes at most ``burst`` records per message template
    and ``window_s``; the next record let through says how many were held back.

    A filter on the logger itself, so it applies before any handler (and to whoever calls the
    propagators: mltrace, FastAPI's own telemetry, OpenTelemetry's instrumentations).
    """

    def __init__(self, max_chars: int = 300, burst: int = 5, window_s: float = 60.0) -> None:
        super().__init__()
        self.max_chars = max_chars
        self.burst = burst
        self.window_s = window_s
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], list[float]] = {}  # (logger, template) -> [window start, passed, held]

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg)[:200])
        now = time.monotonic()
        with self._lock:
            state = self._seen.get(key)
            if state is None or now - state[0] >= self.window_s:
                if len(self._seen) > 1000:  # templates are few; arbitrary client text is cut to 200
                    self._seen.clear()
                held = int(state[2]) if state is not None else 0
                state = self._seen[key] = [now, 0.0, 0.0]
            else:
                held = 0
            if state[1] >= self.burst:
                state[2] += 1
                return False
            state[1] += 1
        try:
            message = record.getMessage()
        except Exception:  # a record that cannot format: let logging report it as it would
            return True
        if len(message) > self.max_chars:
            message = f"{message[:self.max_chars]}… ({len(message) - self.max_chars} characters cut by mltrace)"
        if held:
            message += f" ({held} similar messages held back by mltrace in the last {self.window_s:.0f} s)"
        record.msg, record.args = message, None
        return True


_CAP = ClientTextCap()


def cap_propagator_logs() -> None:
    """Install the cap on the propagators' loggers (once; called when a middleware is made)."""
    for name in PROPAGATOR_LOGGERS:
        logger = logging.getLogger(name)
        if _CAP not in logger.filters:
            logger.addFilter(_CAP)
