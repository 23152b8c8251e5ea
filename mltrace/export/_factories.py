"""Exporter factories: one function per ``exporter=`` name accepted by :func:`mltrace.configure`.

``jaeger`` is OTLP pointed at Jaeger, which ingests OTLP natively (gRPC 4317, HTTP 4318). The old
``opentelemetry-exporter-jaeger`` was removed upstream in 1.22 and cannot be installed beside
current OpenTelemetry, so it is not used.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlsplit

from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter

from .._errors import ConfigurationError
from .._settings import ENV, EXPORTER_NAMES, parse_exporters

EXPORTERS: tuple[str, ...] = EXPORTER_NAMES

# OTEL_TRACES_EXPORTER values (the SDK's names) mapped onto ours.
_OTEL_NAMES = {
    "otlp": "otlp",
    "otlp_proto_grpc": "otlp",
    "otlp_proto_http": "otlp",
    "zipkin": "zipkin",
    "zipkin_json": "zipkin",
    "console": "console",
    "none": "none",
    "jaeger": "jaeger",
}

DEFAULT_ZIPKIN_ENDPOINT = "http://localhost:9411/api/v2/spans"


def choose_exporters(explicit: str | Iterable[str] | None) -> tuple[str, ...]:
    """The exporter names, in order: the argument (a name, ``"local,console"`` or a list), else
    ``MLTRACE_EXPORTER``, else ``OTEL_TRACES_EXPORTER`` (comma form too), else ``otlp`` when an OTLP
    endpoint is configured, else ``local``. Raises :class:`ConfigurationError` naming the bad one."""
    if explicit is not None:
        raw = explicit if isinstance(explicit, str) else ",".join(str(n) for n in explicit)
        try:
            names = parse_exporters(raw)
        except ValueError as exc:
            raise ConfigurationError(f"exporter={explicit!r}: {exc}") from None
        if not names:
            raise ConfigurationError(f"exporter={explicit!r}: name at least one of {', '.join(EXPORTERS)}")
        return names
    if ENV.EXPORTER.is_set():
        return ENV.EXPORTER.get()
    otel = os.environ.get("OTEL_TRACES_EXPORTER", "").strip()
    if otel:
        given = [n.strip().lower() for n in otel.split(",") if n.strip()]
        bad = [n for n in given if n not in _OTEL_NAMES]
        if bad:
            raise ConfigurationError(
                f"OTEL_TRACES_EXPORTER={otel!r}: {', '.join(map(repr, bad))} not supported by mltrace "
                f"(use {', '.join(sorted(_OTEL_NAMES))})"
            )
        try:
            return parse_exporters(",".join(_OTEL_NAMES[n] for n in given))
        except ValueError as exc:
            raise ConfigurationError(f"OTEL_TRACES_EXPORTER={otel!r}: {exc}") from None
    if os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return ("otlp",)
    return ("local",)


def choose_exporter(explicit: str | None) -> str:
    """The first of :func:`choose_exporters` (where the CLI reads traces back from)."""
    return choose_exporters(explicit)[0]


def otlp_protocol(explicit: str | None) -> str:
    """``grpc`` or ``http/protobuf``, from the argument or the standard OTLP variables."""
    proto = (
        explicit
        or os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    ).strip().lower()
    if proto in ("http", "http/protobuf"):
        return "http/protobuf"
    if proto == "grpc":
        return "grpc"
    raise ConfigurationError(f"OTLP protocol must be 'grpc' or 'http/protobuf'; got {proto!r}")


def otlp_exporter(endpoint: str | None, protocol: str | None, headers: dict[str, str] | None) -> SpanExporter:
    """OTLP over gRPC (default) or HTTP. With no endpoint the exporters read the standard
    ``OTEL_EXPORTER_OTLP_(TRACES_)ENDPOINT`` variables, defaulting to localhost 4317 / 4318."""
    if otlp_protocol(protocol) == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as Grpc

        insecure = None
        if endpoint is not None and endpoint.startswith("http://"):
            insecure = True
        return Grpc(endpoint=endpoint, headers=headers, insecure=insecure)
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as Http

    if endpoint is not None and not endpoint.rstrip("/").endswith("/v1/traces"):
        endpoint = endpoint.rstrip("/") + "/v1/traces"
    return Http(endpoint=endpoint, headers=headers)


def zipkin_exporter(endpoint: str | None) -> SpanExporter:
    """Zipkin v2 JSON to ``endpoint``, else ``OTEL_EXPORTER_ZIPKIN_ENDPOINT``, else :9411."""
    from opentelemetry.exporter.zipkin.json import ZipkinExporter

    url = endpoint or os.environ.get("OTEL_EXPORTER_ZIPKIN_ENDPOINT") or DEFAULT_ZIPKIN_ENDPOINT
    if not url.rstrip("/").endswith("/api/v2/spans"):
        url = url.rstrip("/") + "/api/v2/spans"
    return ZipkinExporter(endpoint=url)


def build_exporter(
    name: str,
    *,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: dict[str, str] | None = None,
    local_path: str | os.PathLike[str] | Path | None = None,
) -> SpanExporter | None:
    """The exporter for ``name`` (see :data:`EXPORTERS`); ``None`` for ``none``."""
    if name in ("jaeger", "otlp"):
        if name == "jaeger" and endpoint is None:
            endpoint = ENV.JAEGER_ENDPOINT.get() or None
        return otlp_exporter(endpoint, protocol, headers)
    if name == "zipkin":
        return zipkin_exporter(endpoint)
    if name == "console":
        return ConsoleSpanExporter()
    if name == "local":
        from ._local_store import LocalStoreExporter

        return LocalStoreExporter(local_path)
    if name == "none":
        return None
    raise ConfigurationError(f"exporter must be one of {', '.join(EXPORTERS)}; got {name!r}")


def _normal_url(url: str, *, suffix: str, default_scheme: str = "http") -> str:
    """``HTTP://Host:4318/v1/traces/`` and ``http://host:4318`` compare equal (scheme, host lower-cased)."""
    url = url.strip()
    if "//" not in url:
        url = f"{default_scheme}://{url}"
    parts = urlsplit(url)
    path = parts.path.rstrip("/")
    if suffix and path.endswith(suffix):
        path = path[: -len(suffix)].rstrip("/")
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{path}"


def destination(
    name: str,
    *,
    endpoint: str | None = None,
    protocol: str | None = None,
    local_path: str | os.PathLike[str] | None = None,
) -> str:
    """Where exporter ``name`` with these settings sends spans, normalised so that equivalent spellings
    (a trailing ``/``, an explicit ``/v1/traces`` or ``/api/v2/spans``, ``./x.db`` vs its absolute path)
    give the same string. ``configure()`` keys its exporters by it: one exporter per destination."""
    if name in ("jaeger", "otlp"):
        proto = otlp_protocol(protocol)
        if endpoint is None and name == "jaeger":
            endpoint = ENV.JAEGER_ENDPOINT.get() or None
        if endpoint is None:
            endpoint = (
                os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                or ("http://localhost:4317" if proto == "grpc" else "http://localhost:4318")
            )
        return f"otlp {proto} {_normal_url(endpoint, suffix='/v1/traces')}"
    if name == "zipkin":
        url = endpoint or os.environ.get("OTEL_EXPORTER_ZIPKIN_ENDPOINT") or DEFAULT_ZIPKIN_ENDPOINT
        return f"zipkin {_normal_url(url, suffix='/api/v2/spans')}"
    if name == "local":
        from ._local_store import resolve_path

        return f"local {resolve_path(local_path).expanduser().resolve()}"
    return name
