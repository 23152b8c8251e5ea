"""Every ``MLTRACE_*`` variable in one typed table, and the runtime options spans read (``SETTINGS``).

This module is the only reader of ``MLTRACE_*`` variables: other modules ask it for a typed value
(``ENV.LOCAL_PATH.get()``) instead of parsing ``os.environ`` themselves, so each variable has one
parser, one range check, one default and one error message, and that message names the variable.

Two ways to read:

- ``Var.get()``: strict. A malformed value raises :class:`~mltrace.ConfigurationError` naming the
  variable and what it accepts. :func:`validate_environment` (run first by ``configure()``)
  checks every variable at once and reports every bad one.
- ``Var.lenient()``: for import time (``SETTINGS`` below). A malformed value gives the default and
  one logged warning: ``import mltrace`` must never raise because of the environment; the error is
  raised by ``configure()``, where the user can act on it.

Values are read when asked for, not cached: ``SETTINGS`` is filled at import, and each
``configure()`` re-reads the variables that are set (arguments still win), so a variable set after
``import mltrace`` (a ``.env`` loaded in ``main``) is seen by the next ``configure()``.

Plain typed code rather than pydantic-settings: the table is ~35 lines, adds no dependency (a
pydantic-settings model also pulls python-dotenv), reads lazily per variable (a settings model made
at import is validated whole there: the old strict parse at import is what made a bad
``MLTRACE_SAMPLE_SIZE`` break ``import mltrace``), and the error text, which must name the
variable, is ours.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from ._errors import ConfigurationError

_log = logging.getLogger("mltrace")
T = TypeVar("T")

# The exporter names configure() accepts (export/_factories.py builds them).
EXPORTER_NAMES: tuple[str, ...] = ("jaeger", "zipkin", "otlp", "console", "local", "none")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})
# RFC 9110 token: what an HTTP header name may contain.
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


# ---------------------------------------------------------------- parsers (raise ValueError: the reason)


def parse_bool(raw: str) -> bool:
    low = raw.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError("must be true/false (also 1/0, yes/no, on/off)")


def _int(minimum: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        try:
            value = int(raw.replace("_", ""))
        except ValueError:
            raise ValueError("must be a whole number") from None
        if value < minimum:
            raise ValueError(f"must be >= {minimum}")
        return value

    return parse


def _float(minimum: float, maximum: float | None = None, *, above: bool = False) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        try:
            value = float(raw)
        except ValueError:
            raise ValueError("must be a number") from None
        if value != value or value < minimum or (above and value == minimum):  # NaN fails too
            raise ValueError(f"must be {'>' if above else '>='} {minimum:g}")
        if maximum is not None and value > maximum:
            raise ValueError(f"must be within [{minimum:g}, {maximum:g}]")
        return value

    return parse


def _text(raw: str) -> str:
    return raw


def _header(raw: str) -> str:
    if not _TOKEN.match(raw):
        raise ValueError("must be an HTTP header name (letters, digits, '-'; no spaces or ':')")
    return raw


def _csv(raw: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in raw.split(",") if p.strip())


def parse_exporters(raw: str) -> tuple[str, ...]:
    """``local,console`` -> ``("local", "console")``; unknown names, or ``none`` beside others, fail."""
    names = tuple(dict.fromkeys(n.lower() for n in _csv(raw)))
    bad = [n for n in names if n not in EXPORTER_NAMES]
    if bad:
        unknown = ", ".join(map(repr, bad))
        raise ValueError(f"unknown exporter {unknown}; use one or more of {', '.join(EXPORTER_NAMES)}")
    if "none" in names and len(names) > 1:
        raise ValueError("'none' cannot be combined with other exporters")
    return names


def _sink(raw: str) -> str:
    if raw == "local" or (raw.startswith("file:") and raw[len("file:") :].lstrip("/")):
        return raw
    raise ValueError("must be 'local' or 'file:<dir>'")


# ---------------------------------------------------------------- the table


@dataclass(frozen=True)
class Var(Generic[T]):
    """One environment variable: its name, parser, default (when unset or empty) and meaning."""

    name: str
    parse: Callable[[str], T]
    default: T
    doc: str
    accepts: str = field(default="", compare=False)

    def raw(self) -> str | None:
        """The value as set (stripped), or ``None`` when unset or empty."""
        value = os.environ.get(self.name)
        return value.strip() if value is not None and value.strip() else None

    def is_set(self) -> bool:
        return self.raw() is not None

    def get(self) -> T:
        """The parsed value, the default when unset; :class:`ConfigurationError` naming the variable."""
        raw = self.raw()
        if raw is None:
            return self.default
        try:
            return self.parse(raw)
        except ValueError as exc:
            raise ConfigurationError(f"{self.name}={raw!r}: {exc}") from None

    def lenient(self) -> T:
        """Like :meth:`get`, but a malformed value gives the default and a warning (import time)."""
        try:
            return self.get()
        except ConfigurationError as exc:
            _log.warning("mltrace: %s; using the default %r until configure() (which raises on it)", exc, self.default)
            return self.default


class ENV:
    """Every ``MLTRACE_*`` variable mltrace reads (docs/configuration.md lists the same; a test checks)."""

    # Export
    EXPORTER: Var[tuple[str, ...]] = Var("MLTRACE_EXPORTER", parse_exporters, (), "exporter name(s), comma-separated")
    JAEGER_ENDPOINT = Var("MLTRACE_JAEGER_ENDPOINT", _text, "", "OTLP endpoint for exporter='jaeger'")
    LOCAL_PATH = Var("MLTRACE_LOCAL_PATH", _text, "", "the local store's file")
    LOCAL_MAX_SPANS = Var("MLTRACE_LOCAL_MAX_SPANS", _int(1), 1_000_000, "spans the local store keeps")
    BATCH = Var("MLTRACE_BATCH", parse_bool, True, "batch export (false: one span at a time)")
    METRICS = Var("MLTRACE_METRICS", parse_bool, False, "span counters as OpenTelemetry metrics")
    SOURCE = Var("MLTRACE_SOURCE", _text, "", "where the CLI reads traces")
    AUTO_CONFIGURE = Var("MLTRACE_AUTO_CONFIGURE", parse_bool, True, "configure() under opentelemetry-instrument")
    # Resource and head sampling
    MODEL_NAME = Var("MLTRACE_MODEL_NAME", _text, "", "ml.model.name resource default")
    MODEL_VERSION = Var("MLTRACE_MODEL_VERSION", _text, "", "ml.model.version resource default")
    SAMPLE_RATIO: Var[float | None] = Var(
        "MLTRACE_SAMPLE_RATIO", _float(0.0, 1.0), None, "parent-based ratio head sampler"
    )
    # What spans record (SETTINGS below)
    SUMMARIES = Var("MLTRACE_SUMMARIES", parse_bool, True, "input/output summaries on stage spans")
    DEFERRED_SPANS = Var("MLTRACE_DEFERRED_SPANS", parse_bool, True, "hand spans to the SDK after the response")
    MAX_FEATURES = Var("MLTRACE_MAX_FEATURES", _int(0), 8, "per-feature statistics recorded")
    SUMMARY_MAX_ATTRIBUTES = Var("MLTRACE_SUMMARY_MAX_ATTRIBUTES", _int(1), 52, "attributes one summary may add")
    SAMPLE_SIZE = Var("MLTRACE_SAMPLE_SIZE", _int(1), 100_000, "larger arrays are summarised from a sample")
    CAPTURE_REQUEST_BODY = Var("MLTRACE_CAPTURE_REQUEST_BODY", parse_bool, False, "request body summary")
    CAPTURE_RESPONSE_BODY = Var("MLTRACE_CAPTURE_RESPONSE_BODY", parse_bool, False, "response body summary")
    MAX_BODY_BYTES = Var("MLTRACE_MAX_BODY_BYTES", _int(0), 1 << 20, "bodies larger are only sized")
    TRACE_ID_HEADER = Var("MLTRACE_TRACE_ID_HEADER", _header, "X-Trace-Id", "response header with the trace id")
    FASTAPI_OPERATION_SPANS = Var("MLTRACE_FASTAPI_OPERATION_SPANS", parse_bool, False, "keep fastapi.* spans")
    FORCE_TRACE_HEADER = Var("MLTRACE_FORCE_TRACE_HEADER", _header, "", "request header that keeps its trace")
    FORCE_TRACE_TOKEN = Var("MLTRACE_FORCE_TRACE_TOKEN", _text, "", "value the force header must carry")
    # Payload capture (docs/privacy.md)
    CAPTURE_PAYLOADS = Var("MLTRACE_CAPTURE_PAYLOADS", parse_bool, False, "redacted raw payload capture")
    PAYLOAD_ALLOW: Var[tuple[str, ...]] = Var("MLTRACE_PAYLOAD_ALLOW", _csv, (), "payload paths kept")
    PAYLOAD_DENY: Var[tuple[str, ...]] = Var("MLTRACE_PAYLOAD_DENY", _csv, (), "payload paths dropped")
    PAYLOAD_MAX_BYTES = Var("MLTRACE_PAYLOAD_MAX_BYTES", _int(1), 64 * 1024, "bytes one captured payload keeps")
    PAYLOAD_HEADERS = Var("MLTRACE_PAYLOAD_HEADERS", parse_bool, True, "capture (safe) headers too")
    PAYLOAD_SINK = Var("MLTRACE_PAYLOAD_SINK", _sink, "local", "where payloads go: local or file:<dir>")
    # Tail sampling (docs/sampling.md); unset numbers keep TailSamplingConfig's defaults
    TAIL_SAMPLING: Var[bool | None] = Var("MLTRACE_TAIL_SAMPLING", parse_bool, None, "tail sampling on/off")
    TAIL_SAMPLE_RATIO: Var[float | None] = Var(
        "MLTRACE_TAIL_SAMPLE_RATIO", _float(0.0, 1.0), None, "share of unremarkable traces kept"
    )
    TAIL_SLOW_MS: Var[float | None] = Var("MLTRACE_TAIL_SLOW_MS", _float(0.0), None, "keep traces this slow")
    TAIL_KEEP_P99: Var[bool | None] = Var("MLTRACE_TAIL_KEEP_P99", parse_bool, None, "keep traces over the p99")
    TAIL_MAX_TRACES: Var[int | None] = Var("MLTRACE_TAIL_MAX_TRACES", _int(1), None, "traces buffered")
    TAIL_MAX_SPANS: Var[int | None] = Var("MLTRACE_TAIL_MAX_SPANS", _int(1), None, "spans buffered per trace")
    TAIL_MAX_WAIT_S: Var[float | None] = Var(
        "MLTRACE_TAIL_MAX_WAIT_S", _float(0.0, above=True), None, "seconds a trace waits for its root"
    )

    @classmethod
    def all(cls) -> Iterator[Var[Any]]:
        for value in vars(cls).values():
            if isinstance(value, Var):
                yield value


def by_name(name: str) -> Var[Any]:
    """The :class:`Var` for ``MLTRACE_<...>``; ``KeyError`` for a variable mltrace does not read."""
    for var in ENV.all():
        if var.name == name:
            return var
    raise KeyError(name)


def validate_environment() -> None:
    """Check every ``MLTRACE_*`` variable; one :class:`ConfigurationError` naming each bad one."""
    problems = []
    for var in ENV.all():
        try:
            var.get()
        except ConfigurationError as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigurationError("invalid environment: " + "; ".join(problems))


def env_bool(name: str, default: bool) -> bool:
    """A boolean variable (strict: ``MLTRACE_X=maybe`` raises naming it); kept for older callers."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return parse_bool(raw.strip())
    except ValueError as exc:
        raise ConfigurationError(f"{name}={raw.strip()!r}: {exc}") from None


def env_int(name: str, default: int) -> int:
    """A whole-number variable (strict); kept for older callers."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return default
    try:
        return int(raw.strip())
    except ValueError:
        raise ConfigurationError(f"{name}={raw.strip()!r}: must be a whole number") from None


# ---------------------------------------------------------------- runtime options (hot path)


@dataclass
class Settings:
    """What spans record, read by stages and the middleware on every request.

    Filled from the environment at import, leniently (see the module docstring); ``configure()``
    validates the environment strictly and then overrides fields from its arguments.
    """

    summaries: bool = field(default_factory=ENV.SUMMARIES.lenient)
    # 8 features x 4 statistics + the core keys keeps an input and an output summary, drift and the
    # stage's own keys under OpenTelemetry's default 128 attributes per span (the SDK drops the
    # OLDEST attributes past it, which would be ml.stage itself).
    max_features: int = field(default_factory=ENV.MAX_FEATURES.lenient)
    summary_max_attributes: int = field(default_factory=ENV.SUMMARY_MAX_ATTRIBUTES.lenient)
    sample_size: int = field(default_factory=ENV.SAMPLE_SIZE.lenient)
    capture_request_body: bool = field(default_factory=ENV.CAPTURE_REQUEST_BODY.lenient)
    capture_response_body: bool = field(default_factory=ENV.CAPTURE_RESPONSE_BODY.lenient)
    max_body_bytes: int = field(default_factory=ENV.MAX_BODY_BYTES.lenient)
    # MLTRACE_TRACE_ID_HEADER set but empty turns the header off (docs/configuration.md).
    trace_id_header: str = field(
        default_factory=lambda: "" if os.environ.get("MLTRACE_TRACE_ID_HEADER") == "" else ENV.TRACE_ID_HEADER.lenient()
    )
    fastapi_operation_spans: bool = field(default_factory=ENV.FASTAPI_OPERATION_SPANS.lenient)
    # A request header that keeps its trace through head and tail sampling; "" (off) unless set.
    force_trace_header: str = field(default_factory=ENV.FORCE_TRACE_HEADER.lenient)
    # When set, the force header's value must equal it (keeps strangers from forcing traces).
    force_trace_token: str = field(default_factory=ENV.FORCE_TRACE_TOKEN.lenient)
    # A mltrace.privacy.PayloadCapture once configure(capture_payloads=...) turns raw capture on.
    payload_capture: Any = None


# Each Settings field and the variable it comes from; configure() re-reads the ones that are set.
SETTINGS_VARS: dict[str, Var[Any]] = {
    "summaries": ENV.SUMMARIES,
    "max_features": ENV.MAX_FEATURES,
    "summary_max_attributes": ENV.SUMMARY_MAX_ATTRIBUTES,
    "sample_size": ENV.SAMPLE_SIZE,
    "capture_request_body": ENV.CAPTURE_REQUEST_BODY,
    "capture_response_body": ENV.CAPTURE_RESPONSE_BODY,
    "max_body_bytes": ENV.MAX_BODY_BYTES,
    "trace_id_header": ENV.TRACE_ID_HEADER,
    "fastapi_operation_spans": ENV.FASTAPI_OPERATION_SPANS,
    "force_trace_header": ENV.FORCE_TRACE_HEADER,
    "force_trace_token": ENV.FORCE_TRACE_TOKEN,
}


def settings_from_env() -> dict[str, Any]:
    """The ``Settings`` fields whose variable is set now, parsed strictly (for ``configure()``)."""
    return {name: var.get() for name, var in SETTINGS_VARS.items() if var.is_set()}


SETTINGS = Settings()
