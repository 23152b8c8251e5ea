"""``mltrace.configure()``: the TracerProvider, resource, sampler, propagators and exporter.

Honours the standard ``OTEL_*`` variables (service name, resource attributes, sampler, span
limits, OTLP/Zipkin endpoints, propagators) and ``MLTRACE_*`` for mltrace's own settings. Never
replaces a provider the application (or ``opentelemetry-instrument``) already set, and never
adds the same exporter twice.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import propagate, trace
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.sampling import Sampler, _get_from_env_or_default

from . import semconv
from ._errors import ConfigurationError
from ._settings import SETTINGS, env_bool
from ._version import __version__
from .export import (
    CountingBatchSpanProcessor,
    CountingExporter,
    build_exporter,
    choose_exporter,
    export_stats,
)
from .export._local_store import resolve_path
from .privacy import CaptureRules, PayloadCapture, sink_from_env
from .sampling import (
    ConsistentProbabilitySampler,
    ForceTracePropagator,
    ForceTraceSampler,
    TailSampler,
    TailSamplingConfig,
)

_lock = threading.Lock()
_MARK = "_mltrace_exporters"


@dataclass
class MLTrace:
    """What :func:`configure` set up. ``shutdown()`` flushes and stops export within a bound."""

    provider: TracerProvider
    exporter: str
    endpoint: str | None = None
    local_path: str | None = None
    owns_provider: bool = True
    processors: list[SpanProcessor] = field(default_factory=list)
    payload_capture: PayloadCapture | None = None

    def force_flush(self, timeout_s: float = 5.0) -> bool:
        """Export what is queued; ``False`` if that did not finish within ``timeout_s``."""
        return bool(self.provider.force_flush(int(timeout_s * 1000)))

    def shutdown(self, timeout_s: float = 5.0) -> bool:
        """Flush and stop export; returns ``False`` if it took longer than ``timeout_s``.

        A hung backend cannot hold the process: shutdown runs on a daemon thread that is
        abandoned after ``timeout_s``.
        """
        stop = self.provider.shutdown if self.owns_provider else self._shutdown_ours

        def target() -> None:
            try:
                if self.payload_capture is not None:
                    self.payload_capture.close(timeout_s)
            finally:
                stop()

        worker = threading.Thread(target=target, name="mltrace-shutdown", daemon=True)
        worker.start()
        worker.join(timeout_s)
        return not worker.is_alive()

    def _shutdown_ours(self) -> None:
        for p in self.processors:
            p.shutdown()

    def stats(self) -> dict[str, int]:
        """Span counters (queued, exported, failed, dropped); see :func:`mltrace.export_stats`."""
        return export_stats()


_current: MLTrace | None = None


def current() -> MLTrace | None:
    """The handle from the last :func:`configure` call, if any."""
    return _current


def _resource(
    service_name: str | None,
    service_version: str | None,
    model_name: str | None,
    model_version: str | None,
    extra: dict[str, Any] | None,
) -> Resource:
    attrs: dict[str, Any] = {"telemetry.distro.name": "mltrace", "telemetry.distro.version": __version__}
    name = service_name or os.environ.get("OTEL_SERVICE_NAME")
    if name:
        attrs["service.name"] = name
    if service_version:
        attrs["service.version"] = service_version
    if model_name or os.environ.get("MLTRACE_MODEL_NAME"):
        attrs[semconv.ML_MODEL_NAME] = model_name or os.environ["MLTRACE_MODEL_NAME"]
    if model_version or os.environ.get("MLTRACE_MODEL_VERSION"):
        attrs[semconv.ML_MODEL_VERSION] = model_version or os.environ["MLTRACE_MODEL_VERSION"]
    attrs.update(extra or {})
    # Resource.create merges OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME; explicit values win.
    return Resource.create(attrs)


def _sampler(sample_ratio: float | None, sampler: Sampler | None) -> Sampler | None:
    if sampler is not None:
        return sampler
    if sample_ratio is None:
        raw = os.environ.get("MLTRACE_SAMPLE_RATIO")
        if not raw:
            return None  # the SDK reads OTEL_TRACES_SAMPLER / _ARG itself
        try:
            sample_ratio = float(raw)
        except ValueError:
            raise ConfigurationError(f"MLTRACE_SAMPLE_RATIO must be a number; got {raw!r}") from None
    if not 0.0 <= sample_ratio <= 1.0:
        raise ConfigurationError(f"sample_ratio must be within [0, 1]; got {sample_ratio}")
    return ConsistentProbabilitySampler(sample_ratio)  # ParentBased, with ot=th (docs/sampling.md)


def _tail_config(tail_sampling: TailSamplingConfig | bool | None) -> TailSamplingConfig | None:
    if isinstance(tail_sampling, TailSamplingConfig):
        return tail_sampling
    if tail_sampling is None:
        return TailSamplingConfig.from_env()
    if not isinstance(tail_sampling, bool):
        raise ConfigurationError(f"tail_sampling must be a TailSamplingConfig or a bool; got {tail_sampling!r}")
    return TailSamplingConfig() if tail_sampling else None


def _payload_capture(
    capture_payloads: CaptureRules | PayloadCapture | bool | None,
    local_path: str | os.PathLike[str] | None,
) -> PayloadCapture | bool | None:
    """The capture to install, ``None`` to turn it off, ``False`` to leave the current one."""
    if capture_payloads is None:
        if not env_bool("MLTRACE_CAPTURE_PAYLOADS", False):
            return False
        capture_payloads = True
    if isinstance(capture_payloads, PayloadCapture):
        return capture_payloads
    if isinstance(capture_payloads, CaptureRules):
        return PayloadCapture(capture_payloads, sink_from_env(local_path))
    if isinstance(capture_payloads, bool):
        return PayloadCapture(CaptureRules.from_env(), sink_from_env(local_path)) if capture_payloads else None
    raise ConfigurationError(
        f"capture_payloads must be CaptureRules, PayloadCapture or a bool; got {capture_payloads!r}"
    )


def _install_force_propagator() -> None:
    """Add :class:`ForceTracePropagator` to the global propagator, once (only when a force header is set)."""
    current = propagate.get_global_textmap()
    inner = getattr(current, "_propagators", (current,))
    if any(isinstance(p, ForceTracePropagator) for p in inner):
        return
    propagate.set_global_textmap(CompositePropagator([current, ForceTracePropagator()]))


def _is_default_propagator() -> bool:
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    current_map = propagate.get_global_textmap()
    inner = getattr(current_map, "_propagators", None)
    if not isinstance(current_map, CompositePropagator) or inner is None:
        return False
    return [type(p) for p in inner] == [TraceContextTextMapPropagator, W3CBaggagePropagator]


def _install_propagators() -> None:
    """W3C trace context and baggage, plus B3 (single and multi header) for Zipkin-only peers.

    Only when the user has not chosen propagators (``OTEL_PROPAGATORS`` or their own code).
    W3C is listed last so that it wins when a request carries both.
    """
    if os.environ.get("OTEL_PROPAGATORS") or not _is_default_propagator():
        return
    from opentelemetry.baggage.propagation import W3CBaggagePropagator
    from opentelemetry.propagators.b3 import B3MultiFormat
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    propagate.set_global_textmap(
        CompositePropagator([B3MultiFormat(), TraceContextTextMapPropagator(), W3CBaggagePropagator()])
    )


def configure(
    service_name: str | None = None,
    *,
    exporter: str | None = None,
    endpoint: str | None = None,
    protocol: str | None = None,
    headers: dict[str, str] | None = None,
    local_path: str | os.PathLike[str] | None = None,
    service_version: str | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
    resource_attributes: dict[str, Any] | None = None,
    sample_ratio: float | None = None,
    sampler: Sampler | None = None,
    batch: bool | None = None,
    propagators: bool = True,
    fastapi_operation_spans: bool | None = None,
    summaries: bool | None = None,
    max_features: int | None = None,
    tail_sampling: TailSamplingConfig | bool | None = None,
    force_trace_header: str | None = None,
    capture_payloads: CaptureRules | PayloadCapture | bool | None = None,
    metrics: bool | None = None,
) -> MLTrace:
    """Set up tracing for this process and return a handle with ``shutdown()``/``force_flush()``.

    ``exporter`` is one of ``jaeger`` (OTLP to Jaeger, gRPC 4317 unless ``protocol="http"``),
    ``zipkin``, ``otlp``, ``console``, ``local`` (the embedded SQLite store, the default when no
    backend is configured) or ``none``. Calling it again adds nothing twice.

    Reliability, privacy and sampling (docs/reliability.md, privacy.md, sampling.md):
    ``tail_sampling`` (or ``MLTRACE_TAIL_*``) puts a :class:`~mltrace.sampling.TailSampler` in front of
    the exporter; ``force_trace_header`` (or ``MLTRACE_FORCE_TRACE_HEADER``) names a request header
    that keeps its trace; ``capture_payloads`` (or ``MLTRACE_CAPTURE_PAYLOADS``) turns on redacted raw
    payload capture, stored by reference; ``metrics`` (or ``MLTRACE_METRICS``) publishes the drop
    counters as OpenTelemetry metrics on the global MeterProvider.
    """
    global _current
    if summaries is not None:
        SETTINGS.summaries = summaries
    if max_features is not None:
        SETTINGS.max_features = max_features
    if fastapi_operation_spans is not None:
        SETTINGS.fastapi_operation_spans = fastapi_operation_spans
    if force_trace_header is not None:
        SETTINGS.force_trace_header = force_trace_header.strip()
    tail = _tail_config(tail_sampling)
    capture = _payload_capture(capture_payloads, local_path)
    if capture is not False:
        SETTINGS.payload_capture = capture
    if metrics or (metrics is None and env_bool("MLTRACE_METRICS", False)):
        from .export._metrics import enable_metrics

        enable_metrics()

    with _lock:
        existing = trace.get_tracer_provider()
        created = not isinstance(existing, TracerProvider)
        if created:
            head = _sampler(sample_ratio, sampler)
            if SETTINGS.force_trace_header:  # the force header must survive a ratio head sampler
                head = ForceTraceSampler(head or _get_from_env_or_default())
            provider = TracerProvider(
                resource=_resource(service_name, service_version, model_name, model_version, resource_attributes),
                sampler=head,
            )
            setattr(provider, "_mltrace_owned", True)  # noqa: B010 - a marker on a foreign class
        else:
            assert isinstance(existing, TracerProvider)
            provider = existing
        owns = bool(getattr(provider, "_mltrace_owned", False))
        name = choose_exporter(exporter)
        added: set[str] = getattr(provider, _MARK, set())
        processors: list[SpanProcessor] = []
        # On a provider the app already set, add an exporter only when asked for one explicitly:
        # the app (or opentelemetry-instrument) already exports where it wants.
        wants_exporter = created or exporter is not None or bool(os.environ.get("MLTRACE_EXPORTER"))
        key = f"{name}|{endpoint}|{local_path}"
        if wants_exporter and key not in added:
            inner = build_exporter(name, endpoint=endpoint, protocol=protocol, headers=headers, local_path=local_path)
            if inner is not None:
                wrapped = CountingExporter(inner, name)
                use_batch = batch if batch is not None else env_bool("MLTRACE_BATCH", True)
                processor: SpanProcessor = (
                    CountingBatchSpanProcessor(wrapped) if use_batch else SimpleSpanProcessor(wrapped)
                )
                if tail is not None:
                    processor = TailSampler(processor, tail)
                provider.add_span_processor(processor)
                processors.append(processor)
            added.add(key)
            setattr(provider, _MARK, added)
        if created:
            trace.set_tracer_provider(provider)
        if propagators:
            _install_propagators()
        if SETTINGS.force_trace_header:  # whoever starts the server span, the sampler sees the header
            _install_force_propagator()
        _current = MLTrace(
            provider=provider,
            exporter=name,
            endpoint=endpoint,
            local_path=str(resolve_path(local_path)) if name == "local" else None,
            owns_provider=owns,
            processors=processors,
            payload_capture=SETTINGS.payload_capture,
        )
        return _current
