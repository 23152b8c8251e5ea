"""The one small interface every trace source implements, and ``open_source(url)`` to pick one.

    jaeger://host:16686     Jaeger's HTTP query API            (jaeger+https:// for TLS)
    zipkin://host:9411      Zipkin's v2 API                    (zipkin+https:// for TLS)
    local://path.db         the SQLite store the ``local`` exporter writes

With no URL the source comes from ``$MLTRACE_SOURCE``, else from the exporter mltrace is
configured with (in this process, or through ``MLTRACE_EXPORTER``/``OTEL_TRACES_EXPORTER``), else
``$MLTRACE_LOCAL_PATH``, else ``local://mltrace-traces.db``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

from .._errors import ConfigurationError
from .._settings import ENV
from ._model import Trace

Progress = Callable[[int], None]
"""Called with the number of traces fetched so far (for a progress display)."""

DEFAULT_LOCAL = "mltrace-traces.db"
DEFAULT_JAEGER_PORT = 16686
DEFAULT_ZIPKIN_PORT = 9411


@runtime_checkable
class TraceSource(Protocol):
    """Where traces are read from. Times are seconds; ``since`` counts back from now."""

    url: str

    def services(self) -> list[str]:
        """Every service name the source has spans for."""
        ...

    def find_traces(
        self,
        service: str | None,
        since: float | None = None,
        limit: int = 100,
        min_duration: float | None = None,
        *,
        progress: Progress | None = None,
    ) -> list[Trace]:
        """Up to ``limit`` complete traces entered through ``service``, newest first."""
        ...

    def get_trace(self, trace_id: str) -> Trace:
        """One complete trace; raises :class:`TraceNotFound`."""
        ...

    def find_by_attribute(self, key: str, value: str, limit: int = 100) -> list[Trace]:
        """Traces with a span carrying ``key == value`` (e.g. an input fingerprint), newest first."""
        ...

    def close(self) -> None: ...


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")


def parse_duration(text: str | float | int | None) -> float | None:
    """``"15m"`` → 900.0 seconds (units ms, s, m, h, d, w; a bare number is seconds)."""
    if text is None or isinstance(text, int | float):
        return None if text is None else float(text)
    match = _DURATION.match(text)
    if not match:
        raise ConfigurationError(f"not a duration: {text!r} (try 30s, 15m, 2h, 7d)")
    return float(match.group(1)) * _UNITS[match.group(2) or "s"]


def _host_port(endpoint: str | None, default_port: int) -> str:
    host = (urlsplit(endpoint).hostname if endpoint and "//" in endpoint else None) or "localhost"
    return f"{host}:{default_port}"


def _from_exporter(name: str, endpoint: str | None, local_path: str | None) -> str | None:
    if name == "local":
        return "local://" + (local_path or ENV.LOCAL_PATH.get() or DEFAULT_LOCAL)
    if name == "jaeger":
        endpoint = endpoint or ENV.JAEGER_ENDPOINT.get()
        return "jaeger://" + _host_port(endpoint, DEFAULT_JAEGER_PORT)
    if name == "zipkin":
        endpoint = endpoint or os.environ.get("OTEL_EXPORTER_ZIPKIN_ENDPOINT")
        port = (urlsplit(endpoint).port if endpoint and "//" in endpoint else None) or DEFAULT_ZIPKIN_PORT
        return "zipkin://" + _host_port(endpoint, port)
    return None


def default_source_url() -> str:
    """The source to read when none is given (see the module docstring for the order)."""
    explicit = ENV.SOURCE.get()
    if explicit:
        return explicit
    from .._configure import current

    handle = current()
    if handle is not None:
        url = _from_exporter(handle.exporter, handle.endpoint, handle.local_path)
        if url:
            return url
    from ..export import choose_exporter

    try:
        name = choose_exporter(None)
    except ConfigurationError:
        name = "local"
    return _from_exporter(name, None, None) or "local://" + (ENV.LOCAL_PATH.get() or DEFAULT_LOCAL)


def _http_base(url: str, scheme: str, default_port: int) -> str:
    rest = url.split("://", 1)[1].rstrip("/")
    if not rest:
        rest = f"localhost:{default_port}"
    http = "https" if scheme.endswith("+https") else "http"
    host = rest.split("/", 1)[0]
    if ":" not in host.rsplit("]", 1)[-1]:
        rest = rest.replace(host, f"{host}:{default_port}", 1)
    return f"{http}://{rest}"


def open_source(url: str | None = None, *, timeout: float = 10.0) -> TraceSource:
    """The trace source for ``url`` (``jaeger://``, ``zipkin://``, ``local://``; ``None``: the default).

    Raises :class:`mltrace.ConfigurationError` for an unknown scheme and
    :class:`SourceUnavailable` for a local store that does not exist.
    """
    url = url or default_source_url()
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("jaeger", "jaeger+http", "jaeger+https"):
        from .jaeger import JaegerSource

        return JaegerSource(_http_base(url, scheme, DEFAULT_JAEGER_PORT), timeout=timeout)
    if scheme in ("zipkin", "zipkin+http", "zipkin+https"):
        from .zipkin import ZipkinSource

        return ZipkinSource(_http_base(url, scheme, DEFAULT_ZIPKIN_PORT), timeout=timeout)
    if scheme in ("local", "sqlite", "file") or (not scheme and url.endswith((".db", ".sqlite", ".sqlite3"))):
        from .local import LocalSource

        path = url.split("://", 1)[1] if scheme else url
        return LocalSource(path or DEFAULT_LOCAL)
    raise ConfigurationError(
        f"unknown trace source {url!r}: use jaeger://host:16686, zipkin://host:9411 or local://path.db"
    )
