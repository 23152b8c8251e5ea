"""The ``--json`` contracts of ``slow``, ``stats``, ``show``, ``diff``, ``lineage``, ``drift`` and
``accuracy``, as TypedDicts: what each analysis function returns and each command prints, field by
field.

The functions build plain dicts (JSON-ready, no conversion on output); these types let mypy check
that every field is set with the right kind of value, and tests/cli/test_json_contracts.py checks both
that real outputs carry exactly these fields and that every field docs/cli.md names is one of them.
(``slow --by ttft|tpot``, the generation report, is still a plain dict: its rows carry a key named
after the metric.)
Keys that are not identifiers (``"2xx"``) use the functional TypedDict form. No ``from __future__
import annotations`` here: Python 3.11's TypedDict reads ``NotRequired`` only from evaluated
annotations (with string ones every key counts as required at run time).
"""

from typing import Any, Literal, NotRequired, TypedDict

# ---------------------------------------------------------------- shared pieces


class TraceHeader(TypedDict):
    """Which trace, as ``lineage`` and each side of ``diff`` give it (``_lineage.trace_header``)."""

    trace_id: str
    name: str
    service: str
    start_us: int
    duration_ms: float
    error: bool


class Percentiles(TypedDict, total=False):
    """``p50``/``p95``/``p99``/``mean``/``max`` in the values' unit; empty when there were none."""

    p50: float
    p95: float
    p99: float
    mean: float
    max: float


StatusCounts = TypedDict(
    "StatusCounts",
    {"2xx": int, "3xx": int, "4xx": int, "5xx": int, "none": int, "1xx": NotRequired[int], "codes": dict[str, int]},
)
"""Root spans' ``http.response.status_code`` by class, ``none`` without one, ``codes`` by code."""

# ---------------------------------------------------------------- slow


class SlowTraceRow(TypedDict):
    """One listed trace: its duration, self time (ms) per stage, dominant stage, and the values of
    the attributes the top causes name (those it has)."""

    trace_id: str
    duration_ms: float
    start_us: int
    name: str
    service: str
    error: bool
    stages: dict[str, float]
    dominant_stage: str | None
    attributes: dict[str, Any]


class StageExcess(TypedDict):
    """One stage's mean self time (ms) in the slow set and in the rest, and its share of the extra."""

    slow_ms: float
    others_ms: float
    share_of_extra: float


class SameTraces(TypedDict):
    """A condition that singles out exactly the traces its cause does (``same traces: ...``)."""

    attribute: str
    condition: str


class CauseFinding(TypedDict):
    """A cause as one stage's search finds it, before the causes are ranked."""

    stage: str
    attribute: str
    condition: str  # ">= 1950", "== v2", "is set"
    value: Any
    reason: str
    score: float  # separation x milliseconds added: what causes are ranked by
    slowdown: float | None  # None when the stage takes no time without the condition
    added_ms: float
    median_ms_with: float
    median_ms_without: float
    slow_count: int
    slow_total: int
    other_count: int
    other_total: int
    separation: float
    effect_size: float
    given: list[str]  # causes of the same stage already set aside
    also: NotRequired[list[SameTraces]]


class SlowCause(CauseFinding):
    """One ranked cause of the slow traces."""

    rank: int


class SlowAnalysis(TypedDict):
    """:func:`mltrace.analysis.analyze_slow`: the slow-trace report for traces already fetched. With
    no traces only ``scanned``, ``metric``, ``traces``, ``stages`` and ``causes`` are there."""

    scanned: int
    metric: str  # "duration", or the stage ranked by (--stage)
    slow_count: NotRequired[int]
    slow_threshold_ms: NotRequired[float | None]
    median_ms: NotRequired[float]
    requests: NotRequired[float]
    traces: list[SlowTraceRow]
    stages: dict[str, StageExcess]
    dominant_stage: NotRequired[str | None]
    causes: list[SlowCause]


class SlowReport(SlowAnalysis):
    """``mltrace slow --json`` / :func:`mltrace.analysis.slow_traces`."""

    source: str
    service: str | None
    since: str | float | None
    analysed: int  # traces the stage shares and causes come from
    sampled: bool  # True: a uniform sample of the window
    sample_weight: float  # the window's traces per analysed trace


# ---------------------------------------------------------------- stats


class StageRow(Percentiles):
    """One stage's self time (ms) over the traces that have it."""

    stage: str
    count: int
    errors: int
    share_of_time: float


class OperationRow(Percentiles):
    """One span name of one service: its duration (ms) and error rate."""

    service: str
    operation: str
    count: int
    errors: int
    error_rate: float


class CountedPercentiles(Percentiles, total=False):
    count: int


class StatsGroup(TypedDict):
    """One value of the ``--by`` attribute (or a quartile range of a many-valued number)."""

    value: str
    count: int
    errors: int
    error_rate: float
    status_4xx: int
    status_5xx: int
    duration_ms: Percentiles
    stages_p50_ms: dict[str, float]
    predictions: dict[str, float]
    drift_score: CountedPercentiles
    drift_alerts: int


class StatsSlice(TypedDict):
    attribute: str
    groups: list[StatsGroup]


class TraceSummary(TypedDict):
    """:func:`mltrace.analysis.summarize_traces`: counts, latency and errors over some traces."""

    count: int
    requests: float
    errors: int
    error_rate: float
    status: StatusCounts
    duration_ms: Percentiles
    stages: list[StageRow]
    operations: list[OperationRow]
    by: NotRequired[StatsSlice]
    generation: NotRequired[dict[str, Any]]


class StatsReport(TraceSummary):
    """``mltrace stats --json`` / :func:`mltrace.analysis.trace_stats`."""

    source: str
    service: str | None
    since: str | float | None
    scanned: int  # traces in the window (local store) or fetched (Jaeger, Zipkin)
    analysed: int  # traces the figures come from (feedback-only traces left out)
    sampled: bool  # True: a uniform sample of the window (issue 14)
    sample_weight: float  # the window's traces per analysed trace


# ---------------------------------------------------------------- show


class SpanEvent(TypedDict):
    """One span event (an exception, a stream's first token): name, time, attributes."""

    name: str
    time_us: int
    attributes: dict[str, Any]


class CriticalSegment(TypedDict):
    """One stretch of the critical path (:func:`mltrace.analysis.critical_path`), in time order."""

    span_id: str
    name: str
    service: str
    stage: str | None
    offset_ms: float
    duration_ms: float


class SpanRow(TypedDict):
    """One span in tree order: the stored span plus where it sits and what its time counts toward."""

    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    service: str
    kind: str
    start_us: int
    duration_us: int
    attributes: dict[str, Any]
    error: bool
    status_message: str | None
    links: list[dict[str, Any]]
    events: list[SpanEvent]
    depth: int
    offset_ms: float
    duration_ms: float
    self_ms: float
    counts_toward: str | None


class TraceTree(TypedDict):
    """:func:`mltrace.analysis.trace_tree`: one trace as plain data."""

    trace_id: str
    name: str
    services: list[str]
    start_us: int
    duration_ms: float
    error: bool
    status: int | None
    stages: dict[str, float]
    dominant_stage: str | None
    spans: list[SpanRow]
    critical_path: list[CriticalSegment]
    critical_path_by_stage: dict[str, float]


class ShowReport(TraceTree):
    """``mltrace show TRACE_ID --json`` / :func:`mltrace.analysis.show_trace`."""

    source: str


# ---------------------------------------------------------------- diff


class DiffStage(TypedDict):
    """One stage: each trace's self time and time on its critical path (ms)."""

    stage: str
    a_ms: float
    b_ms: float
    delta_ms: float
    ratio: float | None  # None when B spends no time in the stage
    a_critical_ms: float
    b_critical_ms: float


class DiffAttribute(TypedDict):
    attribute: str
    a: Any
    b: Any
    differs: bool


class TraceDiff(TypedDict):
    """``a`` beside ``b``: :func:`mltrace.analysis._diff.diff_traces`."""

    a: TraceHeader
    b: TraceHeader
    delta_ms: float
    largest_stage_delta: str | None
    stages: list[DiffStage]
    attributes: list[DiffAttribute]  # those that differ first


class DiffReport(TraceDiff):
    """``mltrace diff TRACE_A [TRACE_B] --json``."""

    source: str
    b_chosen: Literal["given", "typical"]  # TRACE_B named, or the route's typical trace


# ---------------------------------------------------------------- lineage


class StageOutput(TypedDict):
    """One stage's output summary (``outputs``: final first)."""

    stage: str
    span_id: str
    summary: dict[str, Any]


class LineageReport(TraceHeader):
    """``mltrace lineage TRACE_ID --json`` / :func:`mltrace.analysis.lineage`."""

    status: Any
    fingerprint: str | None
    input: dict[str, Any]
    features: list[dict[str, Any]]
    model: dict[str, Any]
    drift: dict[str, Any]
    output: dict[str, Any]
    outputs: list[StageOutput]
    stages: dict[str, float]
    payloads: list[dict[str, Any]]


class PredictionRow(TypedDict):
    """One prediction made on a given input (``lineage --fingerprint``)."""

    trace_id: str
    service: str
    start_us: int
    duration_ms: float
    model_version: Any
    prediction: Any
    confidence: Any
    drift_score: Any
    error: bool


class FingerprintReport(TypedDict):
    """``mltrace lineage --fingerprint F --json`` / :func:`mltrace.analysis.predictions_for_input`."""

    source: str
    fingerprint: str
    count: int
    predictions: list[PredictionRow]


# ---------------------------------------------------------------- drift


class DriftStats(TypedDict):
    """Counts and score statistics of a set of scored requests (all, a bucket, a group)."""

    count: int
    score_p50: float | None
    score_p95: float | None
    window_score_mean: float | None
    window_score_max: float | None
    window_score_last: float | None
    alerts: int


class RankedFeature(TypedDict):
    feature: str
    count: int
    share: float


class DriftBucket(DriftStats):
    start_us: int
    end_us: int


class DriftGroup(DriftStats):
    value: str
    references: list[str]
    top_features: list[RankedFeature]


class DriftReport(DriftStats):
    """``mltrace drift --json`` (from traces) / :func:`mltrace.analysis.drift_history`."""

    source: str
    service: str | None
    since: str | float | None
    by: str | None
    scanned: int
    analysed: int  # traces the figures come from; a uniform sample of the window when `sampled`
    sampled: bool
    sample_weight: float  # the window's traces per analysed trace (scales requests, alert_requests)
    generated_us: int
    requests: float
    alert_requests: float
    first_alert_us: int | None
    last_alert_us: int | None
    references: dict[str, int]
    window_top_features: list[RankedFeature]
    request_top_features: list[RankedFeature]
    buckets: list[DriftBucket]
    groups: list[DriftGroup]


# ---------------------------------------------------------------- accuracy


class Mistake(TypedDict):
    label: str
    prediction: str
    count: int


class Score(TypedDict):
    """Accuracy fields (classification) or MAE fields (regression), by the chosen metric."""

    count: int
    correct: NotRequired[int]
    accuracy: NotRequired[float | None]
    weighted_accuracy: NotRequired[float | None]
    requests: NotRequired[float]
    labels: NotRequired[dict[str, int]]
    mistakes: NotRequired[list[Mistake]]
    mae: NotRequired[float | None]
    rmse: NotRequired[float | None]
    mean_label: NotRequired[float | None]
    mean_prediction: NotRequired[float | None]


class AccuracyGroup(Score):
    value: str


class Unmatched(TypedDict):
    count: int
    examples: list[str]


class AccuracyReport(TypedDict):
    """``mltrace accuracy --json`` / :func:`mltrace.analysis.accuracy`."""

    source: str
    service: str | None
    since: str | float | None
    by: str | None
    metric: str
    feedback: int
    matched: int
    unmatched: Unmatched
    without_prediction: int
    overall: Score
    groups: list[AccuracyGroup]
    delay_s: Percentiles
