"""``open_source(url)``: the trace source for a URL (the interface itself is in ``_protocol.py``).

    jaeger://host:16686     Jaeger's HTTP query API            (jaeger+https:// for TLS)
    zipkin://host:9411      Zipkin's v2 API                    (zipkin+https:// for TLS)
    local://path.db         the SQLite store the ``local`` exporter writes

With no URL the source comes from ``$MLTRACE_SOURCE``, else from the exporter mltrace is
configured with (in this process, or through ``MLTRACE_EXPORTER``/``OTEL_TRACES_EXPORTER``), else
``$MLTRACE_LOCAL_PATH``, else ``local://mltrace-traces.db``.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from .._errors import ConfigurationError
from .._settings import ENV
from ._protocol import Progress, TraceSource, parse_duration

__all__ = ["Progress", "TraceSource", "default_source_url", "open_source", "parse_duration"]

DEFAULT_LOCAL = "mltrace-traces.db"
DEFAULT_JAEGER_PORT = 16686
DEFAULT_ZIPKIN_PORT = 9411


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
