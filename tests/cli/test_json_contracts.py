"""The ``--json`` contracts of stats, show, lineage, drift and accuracy are TypedDicts
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
    DriftReport,
    FingerprintReport,
    LineageReport,
    ShowReport,
    StatsReport,
    accuracy,
    drift_history,
    lineage,
    predictions_for_input,
    show_trace,
    trace_stats,
)
from mltrace.query import TraceSource, open_source

DOC = Path(mltrace.__file__).parent.parent / "docs" / "cli.md"
SERVICE = "contracts"

# section heading in docs/cli.md -> the report types its `--json` sentences describe
SECTIONS: dict[str, tuple[type, ...]] = {
    "## `mltrace stats`": (StatsReport,),
    "## `mltrace show TRACE_ID`": (ShowReport,),
    "## `mltrace lineage TRACE_ID` and `--fingerprint F`": (LineageReport, FingerprintReport),
    "## `mltrace drift`": (DriftReport,),
    "## `mltrace accuracy`": (AccuracyReport,),
}


def _typeddicts(tp: Any) -> Iterator[Any]:
    """The TypedDicts inside a type (through list[...], dict[..., ...], X | None)."""
    if is_typeddict(tp):
        yield tp
        return
    for arg in typing.get_args(tp):
        yield from _typeddicts(arg)


def _all_fields(tp: Any, seen: set[Any] | None = None) -> set[str]:
    """Every field name in a TypedDict and the TypedDicts nested in it."""
    seen = set() if seen is None else seen
    if tp in seen:
        return set()
    seen.add(tp)
    names = set(typing.get_type_hints(tp))
    for hint in typing.get_type_hints(tp).values():
        for inner in _typeddicts(hint):
            names |= _all_fields(inner, seen)
    return names


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
    written after a slash (```window_score_mean`/`_max``` names ``window_score_max``)."""
    names: set[str] = set()
    last = ""
    for chunk in re.findall(r"`([^`]+)`", sentence):
        if chunk.startswith("--"):
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
    out = {}
    for heading in SECTIONS:
        start = text.index(heading + "\n")
        end = text.find("\n## ", start + 1)
        out[heading] = text[start : end if end != -1 else None]
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
    sentence = '`--json` has `outputs` (`[{"stage", "span_id"}]`), `score_p50`/`score_p95`, `window_score_mean`/`_max`.'
    assert _documented_fields(sentence) == {
        "outputs", "stage", "span_id", "score_p50", "score_p95", "window_score_mean", "window_score_max",
    }
