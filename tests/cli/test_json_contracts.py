"""The ``--json`` contracts of slow, stats, show, diff, lineage, drift and accuracy are TypedDicts
(``mltrace/analysis/_reports.py``): real outputs carry exactly their fields, and every field
docs/cli.md names in a ``--json`` sentence is one of them."""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any, is_typeddict

import pytest
from _cli_traffic import Sent, seed_local

import mltrace
from mltrace.analysis import (
    AccuracyReport,
    DiffReport,
    DriftReport,
    FingerprintReport,
    LineageReport,
    ShowReport,
    SlowReport,
    StatsReport,
    accuracy,
    drift_history,
    lineage,
    predictions_for_input,
    show_trace,
    slow_traces,
    trace_stats,
)
from mltrace.analysis._diff import diff
from mltrace.analysis._reports import SlowAnalysis
from mltrace.query import TraceSource, open_source

DOC = Path(mltrace.__file__).parent.parent / "docs" / "cli.md"
SERVICE = "contracts"

# section heading in docs/cli.md (or the start of a paragraph that describes other commands than
# its section's, checked apart from it) -> the report types its `--json` sentences describe
SECTIONS: dict[str, tuple[type, ...]] = {
    "## `mltrace slow`": (SlowReport,),
    "## `mltrace stats`": (StatsReport,),
    "## `mltrace show TRACE_ID`": (ShowReport,),
    "## `mltrace diff TRACE_A [TRACE_B]`": (DiffReport,),
    "## `mltrace lineage TRACE_ID` and `--fingerprint F`": (LineageReport, FingerprintReport),
    "## `mltrace drift`": (DriftReport,),
    "## `mltrace accuracy`": (AccuracyReport,),
    "`stats` (with `--by`) and `drift` (from traces) take the same path": (StatsReport, DriftReport),  # in slow's
}
# subsections whose `--json` is another function's report, left out of the check
UNTYPED = ("### `slow --by ttft`",)  # the generation report (analysis._generation), a plain dict


def _typeddicts(tp: Any) -> Iterator[Any]:
    """The TypedDicts inside a type (through list[...], dict[..., ...], X | None)."""
    if is_typeddict(tp):
        yield tp
        return
    for arg in typing.get_args(tp):
        yield from _typeddicts(arg)


def _all_fields(tp: Any, seen: set[Any] | None = None) -> set[str]:
    """Every field name in a TypedDict and the TypedDicts nested in it, and the values of its
    ``Literal`` fields (docs/cli.md names ``b_chosen``'s ``given`` and ``typical``)."""
    seen = set() if seen is None else seen
    if tp in seen:
        return set()
    seen.add(tp)
    names = set(typing.get_type_hints(tp))
    for hint in typing.get_type_hints(tp).values():
        for inner in _typeddicts(hint):
            names |= _all_fields(inner, seen)
        names |= {v for v in _literal_values(hint) if isinstance(v, str)}
    return names


def _literal_values(tp: Any) -> set[Any]:
    """The values a ``Literal`` type (or one inside it) allows."""
    if typing.get_origin(tp) is typing.Literal:
        return set(typing.get_args(tp))
    return set().union(*(_literal_values(a) for a in typing.get_args(tp)))


def _check(value: Any, tp: Any, where: str) -> None:
    """``value`` has exactly the fields of TypedDict ``tp`` (required ones present, no others), recursively."""
    origin = typing.get_origin(tp)
    if is_typeddict(tp):
        assert isinstance(value, dict), where
        keys = set(value)
        assert tp.__required_keys__ <= keys, f"{where}: missing {sorted(tp.__required_keys__ - keys)}"
        extra = keys - tp.__required_keys__ - tp.__optional_keys__
        assert not extra, f"{where}: fields not in {tp.__name__}: {sorted(extra)}"
        hints = typing.get_type_hints(tp)
        for key in keys:
            _check(value[key], hints[key], f"{where}.{key}")
    elif origin is typing.Literal:
        assert value in typing.get_args(tp), f"{where}: {value!r} not one of {typing.get_args(tp)}"
    elif origin is list and isinstance(value, list):
        for i, item in enumerate(value):
            _check(item, typing.get_args(tp)[0], f"{where}[{i}]")
    elif origin is dict and isinstance(value, dict):
        for k, item in value.items():
            _check(item, typing.get_args(tp)[1], f"{where}[{k!r}]")
    elif origin in (typing.Union, types.UnionType) and value is not None:
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(inner) == 1:
            _check(value, inner[0], where)


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TraceSource, Sent]]:
    path = tmp_path_factory.mktemp("contracts") / "traces.db"
    sent = seed_local(path, SERVICE, n=60)
    source = open_source(f"local://{path}")
    yield source, sent
    source.close()


def test_real_outputs_have_exactly_the_typed_fields(seeded: tuple[TraceSource, Sent]) -> None:
    source, sent = seeded
    tid = sent.trace_ids[3]
    record = lineage(source, tid)
    _check(trace_stats(source, service=SERVICE, since="10m", by="app.drifted"), StatsReport, "stats")
    _check(show_trace(source, tid), ShowReport, "show")
    _check(record, LineageReport, "lineage")
    assert record["fingerprint"]
    _check(predictions_for_input(source, str(record["fingerprint"])), FingerprintReport, "fingerprint")
    drift = drift_history(source, service=SERVICE, since="10m", buckets=3)
    assert drift["count"] > 0 and drift["buckets"]
    _check(drift, DriftReport, "drift")
    _check(accuracy(source, since="10m"), AccuracyReport, "accuracy")
    slow = slow_traces(source, service=SERVICE, since="10m")
    assert slow["traces"] and slow["causes"] and slow["stages"]
    _check(slow, SlowReport, "slow")
    _check(slow_traces(source, service=SERVICE, since="10m", scan=20), SlowReport, "slow --scan 20")  # sampled
    empty = slow_traces(source, service=SERVICE, since="10m", min_duration="1h")
    assert empty["scanned"] == 0 and "slow_count" not in empty
    _check(empty, SlowReport, "slow (no traces)")
    _check(diff(source, tid, sent.trace_ids[4]), DiffReport, "diff")
    _check(diff(source, tid), DiffReport, "diff (typical)")


def test_slow_without_a_window_listing_has_the_same_fields(seeded: tuple[TraceSource, Sent]) -> None:
    """A source without ``trace_window`` (the newest ``scan`` traces) answers with the same fields."""
    source, _ = seeded

    class Newest:  # hides trace_window
        url = source.url

        def find_traces(self, *args: Any, **kwargs: Any) -> Any:
            return source.find_traces(*args, **kwargs)

    report = slow_traces(Newest(), service=SERVICE, since="10m")  # type: ignore[arg-type]
    assert report["causes"]
    _check(report, SlowReport, "slow (newest)")
    assert set(report) == set(slow_traces(source, service=SERVICE, since="10m"))
    assert set(SlowReport.__required_keys__) - set(SlowAnalysis.__required_keys__) == {
        "source", "service", "since", "analysed", "sampled", "sample_weight",
    }


def _json_sentences(section: str) -> list[str]:
    """The sentences of a docs section that say what ``--json`` holds (a period inside backticks,
    as in ``ml.model.version``, does not end one)."""
    out = []
    for m in re.finditer(r"`--json`", section):
        i, ticks = m.start(), 0
        while i < len(section):
            ch = section[i]
            ticks += ch == "`"
            if ch == "." and ticks % 2 == 0 and (i + 1 == len(section) or section[i + 1].isspace()):
                break
            i += 1
        out.append(section[m.start() : i])
    return out


def _documented_fields(sentence: str) -> set[str]:
    """Field names in backticks: ``count``, ``"stage"`` inside ``[{"stage", ...}]``, and suffixes
    written after a slash (```window_score_mean`/`_max``` names ``window_score_max``); an owner
    (```drift`'s``, a command) is not a field."""
    names: set[str] = set()
    last = ""
    for m in re.finditer(r"`([^`]+)`", sentence):
        chunk = m.group(1)
        if chunk.startswith("--") or sentence.startswith("'s", m.end()):
            continue
        if re.fullmatch(r"_[a-z0-9_]+", chunk) and last:
            names.add(last.rsplit("_", 1)[0] + chunk)
            continue
        for name in re.findall(r'"([A-Za-z0-9_]+)"', chunk) or [chunk]:
            if re.fullmatch(r"[a-z0-9_]+", name) and not name.isdigit():
                names.add(name)
                last = name
    return names


def _sections() -> dict[str, str]:
    text = DOC.read_text()
    asides = {}
    for key in SECTIONS:
        if not key.startswith("## "):
            start = text.index("\n\n" + key) + 2
            asides[key] = text[start : text.index("\n\n", start)]
    out = dict(asides)
    for heading in SECTIONS:
        if heading in asides:
            continue
        start = text.index(heading + "\n")
        end = text.find("\n## ", start + 1)
        section = text[start : end if end != -1 else None]
        for sub in UNTYPED:
            section = section.split("\n" + sub)[0] if sub in section else section
        for aside in asides.values():
            section = section.replace(aside, "")
        out[heading] = section
    return out


@pytest.mark.parametrize("heading", list(SECTIONS))
def test_documented_json_fields_are_typed(heading: str) -> None:
    section = _sections()[heading]
    # the offline `drift --profile --data` report is the drift monitor's own (docs/drift.md), not drift_history
    sentences = [s for s in _json_sentences(section) if "`report()`" not in s]
    documented = set().union(*(_documented_fields(s) for s in sentences))
    assert documented, f"{heading}: no --json fields found in the docs"
    typed = set().union(*(_all_fields(tp) for tp in SECTIONS[heading]))
    typed |= {"2xx", "3xx", "4xx", "5xx"}  # StatusCounts' keys are not identifiers
    assert documented - typed == set(), f"{heading}: documented but not in the TypedDicts"


def test_field_parser_reads_the_doc_forms() -> None:
    sentence = (
        '`--json` has `outputs` (`[{"stage", "span_id"}]`), `score_p50`/`score_p95`, `window_score_mean`/`_max`; '
        "`drift`'s `alert_requests`."
    )
    assert _documented_fields(sentence) == {
        "outputs", "stage", "span_id", "score_p50", "score_p95", "window_score_mean", "window_score_max",
        "alert_requests",
    }
