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
from collections.abc import Mapping
from typing import Any

from opentelemetry import propagate
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.propagators.textmap import TextMapPropagator
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


def request_attributes(scope: Scope, headers: Mapping[str, str]) -> dict[str, Any]:
    """The server span's start attributes (OpenTelemetry HTTP server conventions); ``headers``
    answers ``host`` and ``user-agent`` (the first value of each, as Starlette's ``Headers``)."""
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


# -- the headers the propagators read ------------------------------------------------------------

def _read_by(propagator: TextMapPropagator) -> frozenset[str] | None:
    """The header names ``propagator.extract`` reads (from its source), or ``None`` when unknown.

    Exact types only (a subclass may read more), and not ``fields``: that is what ``inject``
    writes, and B3's multi-header extract also reads the single ``b3`` header, which its
    ``fields`` leaves out; Jaeger's reads every ``uberctx-`` header, a prefix."""
    cls = type(propagator)
    name = f"{cls.__module__}.{cls.__qualname__}"
    return _KNOWN_READS.get(name)


_B3_READS = frozenset({"b3", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled", "x-b3-flags"})
_KNOWN_READS: dict[str, frozenset[str]] = {
    "opentelemetry.trace.propagation.tracecontext.TraceContextTextMapPropagator":
        frozenset({"traceparent", "tracestate"}),
    "opentelemetry.baggage.propagation.W3CBaggagePropagator": frozenset({"baggage"}),
    "opentelemetry.propagators.b3.B3MultiFormat": _B3_READS,
    "opentelemetry.propagators.b3.B3SingleFormat": _B3_READS,  # B3MultiFormat's extract
    "opentelemetry.propagators.b3.B3Format": _B3_READS,  # the deprecated alias's class
}


def _reads_of(propagator: TextMapPropagator, depth: int) -> set[str] | None:
    """What ``propagator`` reads, composites opened (configure() may nest one in another)."""
    inner = getattr(propagator, "_propagators", None)
    if type(propagator) is not CompositePropagator or not isinstance(inner, list | tuple):
        read = _read_by(propagator)
        return None if read is None else set(read)
    if depth > 4:
        return None
    names: set[str] = set()
    for part in inner:
        more = _reads_of(part, depth + 1)
        if more is None:
            return None
        names |= more
    return names


def propagated_headers() -> frozenset[bytes] | None:
    """The (lower-case, encoded) header names the global propagators read, or ``None`` when one
    of them is not a known type (then every header goes to ``propagate.extract``, as before).

    Cached per global propagator object (``propagate.set_global_textmap`` replaces it)."""
    textmap = propagate.get_global_textmap()
    inner = getattr(textmap, "_propagators", None)
    size = len(inner) if isinstance(inner, list | tuple) else -1
    last = _PROPAGATED  # compared by identity (held, so never a reused id): ~0.1 µs a request
    if last[0] is textmap and last[1] is inner and last[2] == size:
        cached: frozenset[bytes] | None = last[3]
        return cached
    names = _reads_of(textmap, 0)
    found = None if names is None else frozenset(n.encode("latin-1") for n in names)
    last[:] = [textmap, inner, size, found]
    return found


# [the global propagator, its list of propagators, that list's length, names]: one slot, rebuilt
# when any of them changes
_PROPAGATED: list[Any] = [None, None, -1, None]


def inbound_headers(
    scope: Scope, wanted: frozenset[bytes] | None, extra: tuple[bytes, ...]
) -> tuple[dict[str, str], bool]:
    """One pass over the request's headers: ``(headers, trace)``.

    ``headers`` holds the first value of each name in ``wanted`` or ``extra`` (every header when
    ``wanted`` is None: the propagators are not all known); ``trace``: whether any header the
    propagators read is there (always True when ``wanted`` is None). A dict answers each lookup at
    once where Starlette's ``Headers`` scans the list every time."""
    out: dict[str, str] = {}
    found = wanted is None
    for key, value in scope.get("headers", ()):
        if wanted is None or key in wanted:
            found = True
        elif key not in extra:
            continue
        name = key.decode("latin-1")
        if name not in out:
            out[name] = value.decode("latin-1")
    return out, found


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
