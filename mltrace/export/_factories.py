"""Exporter factories: one function per ``exporter=`` name accepted by :func:`mltrace.configure`.

``jaeger`` is OTLP pointed at Jaeger, which ingests OTLP natively (gRPC 4317, HTTP 4318). The old
``opentelemetry-exporter-jaeger`` was removed upstream in 1.22 and cannot be installed beside
current OpenTelemetry, so it is not used.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SpanExporter

from .._errors import ConfigurationError

ExporterName = Literal["jaeger", "zipkin", "otlp", "console", "local", "none"]
EXPORTERS: tuple[str, ...] = ("jaeger", "zipkin", "otlp", "console", "local", "none")

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


def choose_exporter(explicit: str | None) -> str:
    """The exporter name: the argument, else ``MLTRACE_EXPORTER``, else ``OTEL_TRACES_EXPORTER``,
    else ``otlp`` when an OTLP endpoint is configured, else ``local``."""
    if explicit is not None:
        name = explicit.strip().lower()
    elif os.environ.get("MLTRACE_EXPORTER"):
        name = os.environ["MLTRACE_EXPORTER"].strip().lower()
    elif os.environ.get("OTEL_TRACES_EXPORTER"):
        first = os.environ["OTEL_TRACES_EXPORTER"].split(",")[0].strip().lower()
        if first not in _OTEL_NAMES:
            raise ConfigurationError(f"OTEL_TRACES_EXPORTER={first!r} is not supported by mltrace")
        name = _OTEL_NAMES[first]
    elif os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    ):
        name = "otlp"
    else:
        name = "local"
    if name not in EXPORTERS:
        raise ConfigurationError(f"exporter must be one of {', '.join(EXPORTERS)}; got {name!r}")
    return name


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
            endpoint = os.environ.get("MLTRACE_JAEGER_ENDPOINT") or None
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
