"""Logs beside traces: trace and span ids on every log record, optional export over OTLP.

Built on OpenTelemetry's logging instrumentation (``opentelemetry-instrumentation-logging``):
its record factory puts ``otelTraceID``, ``otelSpanID``, ``otelTraceSampled`` and
``otelServiceName`` on every ``logging.LogRecord``, and with ``export=True`` its
``LoggingHandler`` on the root logger sends records through an SDK ``LoggerProvider``
(``BatchLogRecordProcessor`` and the OTLP log exporter), each record carrying the trace and span
ids of the span current when it was logged, so a backend that stores logs shows a request's
logs next to its trace. Jaeger and Zipkin store traces only: send logs to an OpenTelemetry
Collector (or any OTLP log backend).
"""

from __future__ import annotations

import os
import threading
from typing import Any

from opentelemetry import trace

from .._errors import ConfigurationError

_lock = threading.Lock()
_EXTRA = "opentelemetry-instrumentation-logging (pip install opentelemetry-instrumentation-logging)"


class _State:
    instrumented = False
    exporting = False
    provider: Any = None


_state = _State()


def _instrumentor() -> Any:
    try:
        from opentelemetry.instrumentation.logging import LoggingInstrumentor
    except ImportError as exc:  # pragma: no cover - a dependency of mltrace
        raise ImportError(f"mltrace.instrument_logging needs {_EXTRA}") from exc
    return LoggingInstrumentor()


def _log_exporter(endpoint: str | None, protocol: str | None, headers: dict[str, str] | None) -> Any:
    """OTLP logs over gRPC (default) or HTTP; with no endpoint the exporters read the standard
    ``OTEL_EXPORTER_OTLP_(LOGS_)ENDPOINT`` variables."""
    from ._factories import otlp_protocol

    proto = otlp_protocol(
        protocol
        or os.environ.get("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "grpc"
    )
    if proto == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc._log_exporter import OTLPLogExporter as Grpc

        insecure = True if endpoint is not None and endpoint.startswith("http://") else None
        return Grpc(endpoint=endpoint, headers=headers, insecure=insecure)
    from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter as Http

    if endpoint is not None and not endpoint.rstrip("/").endswith("/v1/logs"):
        endpoint = endpoint.rstrip("/") + "/v1/logs"
    return Http(endpoint=endpoint, headers=headers)


def _logger_provider(endpoint: str | None, protocol: str | None, headers: dict[str, str] | None) -> Any:
    """The global SDK LoggerProvider, made (with the tracer provider's resource) if none is set."""
    from opentelemetry._logs import get_logger_provider, set_logger_provider
    from opentelemetry.sdk._logs import LoggerProvider
    from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider

    existing: Any = get_logger_provider()
    created = not isinstance(existing, LoggerProvider)
    if created:
        tracer_provider = trace.get_tracer_provider()
        resource = tracer_provider.resource if isinstance(tracer_provider, TracerProvider) else Resource.create()
        provider = LoggerProvider(resource=resource)
    else:
        provider = existing
    # On a provider someone else set, export only when told where: they already export.
    if created or endpoint is not None:
        provider.add_log_record_processor(BatchLogRecordProcessor(_log_exporter(endpoint, protocol, headers)))
    if created:
        set_logger_provider(provider)
    return provider


def instrument_logging(
    export: bool = False,
    *,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: dict[str, str] | None = None,
    level: int | None = None,
    set_format: bool | None = None,
) -> Any:
    """Put the current trace and span ids on every log record; with ``export=True``, also send
    log records over OTLP.

    Records get ``otelTraceID``/``otelSpanID`` (``"0"`` outside a trace), usable in a format
    string such as ``"%(levelname)s [trace=%(otelTraceID)s span=%(otelSpanID)s] %(message)s"``;
    ``set_format=True`` calls ``logging.basicConfig`` with OpenTelemetry's format that shows
    them (default: the ``OTEL_PYTHON_LOG_CORRELATION`` variable). ``export=True`` adds
    OpenTelemetry's ``LoggingHandler`` (records at ``level`` and above; default
    ``OTEL_PYTHON_LOG_HANDLER_LEVEL``, else all) to the root logger and
    an OTLP exporter (``endpoint``/``protocol``/``headers`` as in :func:`mltrace.configure`,
    default the ``OTEL_EXPORTER_OTLP_*`` variables) to the global ``LoggerProvider``, made if
    none is set. Returns that provider (``None`` without export) for ``force_flush()`` and
    ``shutdown()``. Calling again is harmless; ``export=True`` later adds export.
    """
    if level is not None and (not isinstance(level, int) or isinstance(level, bool)):
        raise ConfigurationError(f"level must be a logging level (an int); got {level!r}")
    if not export and (endpoint is not None or protocol is not None or headers is not None):
        raise ConfigurationError("endpoint, protocol and headers need export=True")
    with _lock:
        if _state.instrumented and (_state.exporting or not export):
            return _state.provider
        instrumentor = _instrumentor()
        keep_handler = False
        if instrumentor.is_instrumented_by_opentelemetry:
            # Ours without export, or someone else's (opentelemetry-instrument's, which does not
            # put ids on records): redo it with ids, keeping an export handler that was there.
            keep_handler = not _state.instrumented and getattr(type(instrumentor), "_logging_handler", None) is not None
            instrumentor.uninstrument()
        provider = _logger_provider(endpoint, protocol, headers) if export else None
        options: dict[str, Any] = {
            "inject_trace_context": True,
            "enable_log_auto_instrumentation": export or keep_handler,
        }
        if level is not None:
            options["log_handler_level"] = level
        if set_format is not None:
            options["set_logging_format"] = set_format
        instrumentor.instrument(**options)
        _state.instrumented, _state.exporting, _state.provider = True, export, provider
        return provider


def uninstrument_logging() -> None:
    """Undo :func:`instrument_logging`: the old record factory returns, the handler goes.

    The global ``LoggerProvider`` stays (OpenTelemetry allows setting it only once).
    """
    with _lock:
        if not _state.instrumented:
            return
        _instrumentor().uninstrument()
        _state.instrumented = _state.exporting = False
        _state.provider = None
