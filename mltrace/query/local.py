"""Read the embedded SQLite store (the ``local`` exporter's file) into the trace model.

The schema is :mod:`mltrace.export._local_store`'s business; this module only turns its rows
(dicts) into :class:`~mltrace.query.Span` objects.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..export import LocalStore
from ._errors import SourceUnavailable, TraceNotFound, UnknownService
from ._model import Link, Span, Trace
from ._protocol import Progress

_CHUNK = 500


def _links(raw: list[dict[str, Any]]) -> tuple[Link, ...]:
    return tuple(Link(str(x.get("trace_id", "")), str(x.get("span_id", "")), x.get("attributes") or {}) for x in raw)


def _events(raw: list[dict[str, Any]]) -> tuple[dict[str, Any], ...]:
    return tuple(
        {"name": str(e.get("name", "")), "time_us": int(e.get("time_ns") or 0) // 1000,
         "attributes": e.get("attributes") or {}}
        for e in raw
    )


def span_from_row(row: dict[str, Any]) -> Span:
    start_ns = row["start_ns"]
    raw_links = row.get("links")
    raw_events = row.get("events")
    return Span(
        row["trace_id"],
        row["span_id"],
        row["parent_span_id"],
        row["name"],
        row["service_name"],
        row["kind"],
        start_ns // 1000,
        max(0, row["end_ns"] - start_ns) // 1000,
        row["attributes"],
        row["status_code"] == "ERROR",
        row["status_message"],
        _links(raw_links) if raw_links else (),
        row.get("resource") or {},
        _events(raw_events) if raw_events else (),
    )


def traces_from_rows(rows: Iterable[dict[str, Any]]) -> dict[str, Trace]:
    grouped: dict[str, list[Span]] = {}
    for row in rows:
        grouped.setdefault(row["trace_id"], []).append(span_from_row(row))
    return {tid: Trace.of(tid, spans) for tid, spans in grouped.items()}


@dataclass
class TraceWindow:
    """Every trace in a window, one entry each: id, start (µs) and duration (ms) of its entry span.

    What a window scan reads from the store's ``spans_entry`` index without decoding a span; the
    analysis then loads the few traces it needs in full (:meth:`LocalSource.load`)."""

    trace_ids: list[str]
    start_us: np.ndarray
    duration_ms: np.ndarray

    def __len__(self) -> int:
        return len(self.trace_ids)


class LocalSource:
    """Traces from a local store file, opened read-only (a server may be writing it)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.url = f"local://{self.path}"
        try:
            self.store = LocalStore(self.path, readonly=True)
        except (FileNotFoundError, sqlite3.Error) as exc:
            why = "" if isinstance(exc, FileNotFoundError) else f" ({exc})"  # the former says just that again
            raise SourceUnavailable(
                f"no local trace store at {self.path}{why}; run a traced app with "
                "mltrace.configure(exporter='local'), or try `mltrace demo`"
            ) from None

    def _guard(self, what: str) -> SourceUnavailable:
        return SourceUnavailable(f"could not read {what} from the local store {self.path}")

    def services(self) -> list[str]:
        try:
            return self.store.services()
        except sqlite3.Error:
            raise self._guard("services") from None

    def _check_service(self, service: str | None) -> None:
        if service:
            try:
                if self.store.has_service(service):  # cheap; the full list only for the error
                    return
            except sqlite3.Error:
                raise self._guard("services") from None
            known = self.services()
            if service not in known:
                raise UnknownService(service, known)

    def _load(self, trace_ids: list[str], progress: Progress | None) -> list[Trace]:
        found: dict[str, Trace] = {}
        try:
            for i in range(0, len(trace_ids), _CHUNK):
                found.update(traces_from_rows(self.store.trace_rows(trace_ids[i : i + _CHUNK])))
                if progress is not None:
                    progress(len(found))
        except sqlite3.Error:
            raise self._guard("traces") from None
        return [found[t] for t in trace_ids if t in found]

    def find_traces(
        self,
        service: str | None,
        since: float | None = None,
        limit: int = 100,
        min_duration: float | None = None,
        *,
        progress: Progress | None = None,
    ) -> list[Trace]:
        self._check_service(service)
        since_ns = time.time_ns() - int(since * 1e9) if since is not None else None
        min_ns = int(min_duration * 1e9) if min_duration is not None else None
        try:
            ids = self.store.trace_ids(service=service, since_ns=since_ns, limit=limit, min_duration_ns=min_ns)
        except sqlite3.Error:
            raise self._guard("trace ids") from None
        return self._load(ids, progress)

    def load(self, trace_ids: list[str], progress: Progress | None = None) -> list[Trace]:
        """These traces in full, in this order (those no longer in the store left out)."""
        return self._load(trace_ids, progress)

    def trace_window(
        self,
        service: str | None,
        since: float | None = None,
        min_duration: float | None = None,
        *,
        progress: Progress | None = None,
    ) -> TraceWindow:
        """Every trace of ``service`` that started in the last ``since`` seconds (see
        :class:`TraceWindow`); a million traces in about 1.5 s."""
        self._check_service(service)
        since_ns = time.time_ns() - int(since * 1e9) if since is not None else None
        ids: list[str] = []
        starts: list[np.ndarray] = []
        durations: list[np.ndarray] = []
        try:
            for rows in self.store.entry_spans(service=service, since_ns=since_ns):
                ids.extend(r[0] for r in rows)
                # numpy per chunk: a million Python ints cost ~36 MB a column, numpy 8 MB
                starts.append(np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows)))
                durations.append(np.fromiter((r[2] for r in rows), dtype=np.int64, count=len(rows)))
                if progress is not None:
                    progress(len(ids))
        except sqlite3.Error:
            raise self._guard("trace ids") from None
        start_ns = np.concatenate(starts) if starts else np.zeros(0, dtype=np.int64)
        dur_ns = np.concatenate(durations) if durations else np.zeros(0, dtype=np.int64)
        if len(set(ids)) != len(ids):  # several entry spans in one trace: keep its longest
            best: dict[str, int] = {}
            for i, tid in enumerate(ids):
                j = best.get(tid)
                if j is None or dur_ns[i] > dur_ns[j]:
                    best[tid] = i
            keep = np.array(sorted(best.values()), dtype=np.int64)
            ids = [ids[i] for i in keep.tolist()]
            start_ns, dur_ns = start_ns[keep], dur_ns[keep]
        start = start_ns // 1000
        duration = dur_ns.astype(np.float64) / 1e6
        if min_duration is not None:
            keep_mask = duration >= min_duration * 1000.0
            ids = [t for t, k in zip(ids, keep_mask.tolist(), strict=True) if k]
            start, duration = start[keep_mask], duration[keep_mask]
        return TraceWindow(ids, start, duration)

    def get_trace(self, trace_id: str) -> Trace:
        try:
            rows = self.store.trace(trace_id.strip())
        except sqlite3.Error:
            raise self._guard(f"trace {trace_id}") from None
        if not rows:
            raise TraceNotFound(f"trace {trace_id} is not in the local store {self.path}")
        return traces_from_rows(rows)[rows[0]["trace_id"]]

    def find_by_attribute(self, key: str, value: str, limit: int = 100) -> list[Trace]:
        try:
            ids = self.store.find_attribute(key, value, limit=limit)
        except sqlite3.Error:
            raise self._guard(f"traces with {key}") from None
        return self._load(ids, None)

    def payloads(self, trace_id: str) -> list[dict[str, Any]]:
        """The captured (redacted) payloads of a trace, where payload capture was on."""
        try:
            return self.store.payloads(trace_id)
        except sqlite3.Error:
            return []

    def close(self) -> None:
        self.store.close()
