"""The pieces behind the pages that a browser test would see only indirectly: the critical path
of concurrent spans, the condition a cause chart splits on, readable numbers, query options."""

from __future__ import annotations

from pathlib import Path
from time import time_ns

import pytest

from mltrace.analysis._show import trace_tree
from mltrace.query import Span, Trace
from mltrace.ui._charts import number
from mltrace.ui._params import ParameterError, parse
from mltrace.ui._views import _holds, critical_spans


def _span(span_id: str, parent: str | None, start: int, end: int) -> Span:
    return Span("t" * 32, span_id, parent, span_id, "svc", "INTERNAL" if parent else "SERVER", start, end - start)


def test_critical_path_skips_the_shorter_of_two_concurrent_children() -> None:
    """root waits on a (0-40) and b (0-10) at once, then on c (40-50): a and c are critical, b is
    not; a's own child that ends last is."""
    trace = Trace.of("t" * 32, [
        _span("root", None, 0, 50),
        _span("a", "root", 0, 40), _span("b", "root", 0, 10), _span("c", "root", 40, 50),
        _span("a1", "a", 0, 5), _span("a2", "a", 5, 38),
    ])
    assert critical_spans(trace_tree(trace)) == {"root", "a", "c", "a2", "a1"}


def test_critical_path_of_a_sequential_trace_is_every_span() -> None:
    trace = Trace.of("t" * 32, [_span("root", None, 0, 30), _span("x", "root", 1, 10), _span("y", "root", 10, 29)])
    assert critical_spans(trace_tree(trace)) == {"root", "x", "y"}


def test_critical_path_leaves_out_a_sibling_overlapping_the_path() -> None:
    """b (10-90) was still running when the request entered a (50-100): the waterfall marks the
    same spans as `show`'s critical path, Jaeger's definition (the UI's own walk used to mark b)."""
    trace = Trace.of("t" * 32, [_span("root", None, 0, 100), _span("a", "root", 50, 100),
                                _span("b", "root", 10, 90)])
    assert critical_spans(trace_tree(trace)) == {"root", "a"}


@pytest.mark.parametrize(
    ("value", "op", "target", "expected"),
    [(512, ">=", 512.0, True), (511, ">=", 512.0, False), (3, "<", 4.0, True), ("2", "=", "2", True),
     (2, "=", "2", True), (None, "is not set", None, True), (1, "is set", None, True), (None, ">=", 1.0, False),
     ("x", ">=", 1.0, False), (True, ">=", 1.0, False)],
)
def test_cause_conditions_hold_like_slows(value: object, op: str, target: object, expected: bool) -> None:
    assert _holds(value, op, target) is expected


@pytest.mark.parametrize(
    ("value", "text"),
    [(0.0, "0"), (1234.6, "1,235"), (12.3456, "12.3"), (0.012345, "0.0123"), (1.5e-7, "1.5e-07"), (42, "42"),
     (True, "true"), (None, "-"), ("<b>", "<b>")],
)
def test_numbers_are_rounded_for_reading(value: object, text: str) -> None:
    assert number(value) == text


def test_query_options_are_the_commands_own() -> None:
    """Defaults and validation come from the CLI's sub-parsers; the server's default service fills
    in; options that would redirect the source or read files are refused."""
    args = parse("slow", [("min-duration", "5ms")], defaults={"service": "api"})
    assert (args.service, args.since, args.limit, args.scan, args.min_duration) == ("api", "15m", 10, 10_000, "5ms")
    assert parse("drift", [("service", "x")], defaults={"service": "api"}).service == "x"
    assert parse("show", [("all", "1")], positional="--all").trace_id == "--all"
    for bad in ([("source", "jaeger://x")], [("profile", "/etc/passwd")], [("json", "1")], [("limit", "-")]):
        with pytest.raises(ParameterError):
            parse("slow" if bad[0][0] != "profile" else "drift", bad)


def test_values_read_as_shapes_lists_and_rounded_numbers() -> None:
    """Shapes as shapes, other integer lists as lists, floats rounded."""
    from mltrace.ui._views import _readable

    assert _readable([81, 30], "shape") == "81 × 30"
    assert _readable([81, 30], "keys") == "81, 30"
    assert _readable(["a", "b"], "top_features") == "a, b"
    assert _readable(0.9999999999997873, "score") == "1.000"


def test_cached_source_forgets_stale_fetches(tmp_path: Path) -> None:
    """A fetch is reused within the cache's lifetime and dropped after it, not held until evicted."""
    import time

    from mltrace.query import open_source
    from mltrace.ui._data import CachedSource

    _seed_local(tmp_path / "s.db")
    source = CachedSource(open_source(f"local://{tmp_path / 's.db'}"), ttl=0.2)
    try:
        first = source.find_traces(None, None, 10)
        assert first and source.find_traces(None, None, 10) is first
        time.sleep(0.3)
        source.services()  # any later call purges
        assert (None, None, 10, None) not in source._found
        assert source.find_traces(None, None, 10) is not first
    finally:
        source.close()


def _seed_local(path: Path) -> None:
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.trace import SpanContext, SpanKind, TraceFlags

    from mltrace.export import LocalStore

    store = LocalStore(path)
    now = time_ns()
    spans = [ReadableSpan(name="GET /", context=SpanContext(i + 1, i + 1, False, TraceFlags(1)), parent=None,
                          resource=Resource.create({"service.name": "svc"}), kind=SpanKind.SERVER,
                          start_time=now - 1_000_000, end_time=now) for i in range(3)]
    store.write(spans)
    store.close()
