"""``TailSamplingConfig``: what the in-process tail decision keeps, from code or ``MLTRACE_TAIL_*``."""

from __future__ import annotations

from dataclasses import dataclass

from .._errors import ConfigurationError
from .._settings import ENV


@dataclass(frozen=True)
class TailSamplingConfig:
    """Keep every trace that errored, was slow, carried a drift alert or was forced; sample the rest.

    ``ratio``: the share of the remaining (unremarkable) traces kept, chosen by a hash of the trace
    id, so every mltrace process with the same ratio keeps the same traces.
    ``slow_ms``: keep traces whose local root lasted at least this long (``None``: no fixed bound).
    ``keep_p99``: keep traces slower than the running p99 of the last ``p99_window`` local roots
    (after ``p99_min_samples`` of them).
    ``max_traces`` / ``max_spans_per_trace``: the buffer's bounds; ``max_wait_s``: a trace whose
    local root has not ended after this long is decided with what has arrived.
    """

    ratio: float = 0.1
    slow_ms: float | None = None
    keep_p99: bool = True
    keep_errors: bool = True
    keep_drift_alerts: bool = True
    p99_window: int = 1024
    p99_min_samples: int = 200
    max_traces: int = 10_000
    max_spans_per_trace: int = 1_000
    max_wait_s: float = 30.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.ratio <= 1.0:
            raise ConfigurationError(f"tail sampling ratio must be within [0, 1]; got {self.ratio}")
        if self.slow_ms is not None and self.slow_ms < 0:
            raise ConfigurationError(f"slow_ms must be >= 0; got {self.slow_ms}")
        for name in ("p99_window", "max_traces", "max_spans_per_trace"):
            if getattr(self, name) < 1:
                raise ConfigurationError(f"{name} must be >= 1; got {getattr(self, name)}")
        if self.p99_window < 16:
            raise ConfigurationError(f"p99_window must be >= 16; got {self.p99_window}")
        if self.max_wait_s <= 0:
            raise ConfigurationError(f"max_wait_s must be > 0; got {self.max_wait_s}")

    @classmethod
    def from_env(cls) -> TailSamplingConfig | None:
        """The config ``MLTRACE_TAIL_*`` describe, or ``None`` when tail sampling is not enabled.

        Enabled by ``MLTRACE_TAIL_SAMPLING=true`` or by setting ``MLTRACE_TAIL_SAMPLE_RATIO``.
        """
        ratio = ENV.TAIL_SAMPLE_RATIO.get()
        if not (ratio is not None if ENV.TAIL_SAMPLING.get() is None else ENV.TAIL_SAMPLING.get()):
            return None
        defaults = cls()
        max_traces = ENV.TAIL_MAX_TRACES.get()
        max_spans = ENV.TAIL_MAX_SPANS.get()
        max_wait = ENV.TAIL_MAX_WAIT_S.get()
        return cls(
            ratio=defaults.ratio if ratio is None else ratio,
            slow_ms=ENV.TAIL_SLOW_MS.get(),
            keep_p99=defaults.keep_p99 if ENV.TAIL_KEEP_P99.get() is None else bool(ENV.TAIL_KEEP_P99.get()),
            max_traces=defaults.max_traces if max_traces is None else int(max_traces),
            max_spans_per_trace=defaults.max_spans_per_trace if max_spans is None else int(max_spans),
            max_wait_s=defaults.max_wait_s if max_wait is None else max_wait,
        )
