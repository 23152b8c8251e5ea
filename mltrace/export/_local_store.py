"""The embedded SQLite trace store: the ``local`` exporter writes it, ``mltrace.query`` reads it.

This module is the only place that knows the store's schema. One row per span; attributes,
events, links and resource are JSON text. WAL mode lets the CLI read while a server writes.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

from .._settings import ENV
from ._counters import COUNTERS

_log = logging.getLogger("mltrace.export")

SCHEMA_VERSION = 1
DEFAULT_PATH = "mltrace-traces.db"
DEFAULT_MAX_SPANS = 1_000_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS spans (
    trace_id       TEXT    NOT NULL,
    span_id        TEXT    NOT NULL,
    parent_span_id TEXT,
    name           TEXT    NOT NULL,
    kind           TEXT    NOT NULL,
    service_name   TEXT    NOT NULL,
    start_ns       INTEGER NOT NULL,
    end_ns         INTEGER NOT NULL,
    status_code    TEXT    NOT NULL,
    status_message TEXT,
    attributes     TEXT    NOT NULL,
    events         TEXT    NOT NULL,
    links          TEXT    NOT NULL,
    resource       TEXT    NOT NULL,
    PRIMARY KEY (trace_id, span_id)
);
CREATE INDEX IF NOT EXISTS spans_service_start ON spans (service_name, start_ns);
CREATE INDEX IF NOT EXISTS spans_start ON spans (start_ns);
CREATE TABLE IF NOT EXISTS payloads (
    trace_id   TEXT    NOT NULL,
    span_id    TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    created_ns INTEGER NOT NULL,
    body       TEXT    NOT NULL,
    PRIMARY KEY (trace_id, span_id, kind)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
"""

_COLUMNS = (
    "trace_id, span_id, parent_span_id, name, kind, service_name, start_ns, end_ns, "
    "status_code, status_message, attributes, events, links, resource"
)


def resolve_path(path: str | os.PathLike[str] | None) -> Path:
    """``configure(local_path=...)``, else ``$MLTRACE_LOCAL_PATH``, else ``./mltrace-traces.db``."""
    if path is not None:
        return Path(path)
    return Path(ENV.LOCAL_PATH.get() or DEFAULT_PATH)


def _json_value(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return list(value)
    return value


def _attrs(attributes: Any) -> str:
    if not attributes:
        return "{}"
    return json.dumps({k: _json_value(v) for k, v in attributes.items()}, separators=(",", ":"))


def _row(span: ReadableSpan) -> tuple[Any, ...]:
    ctx = span.context
    parent = span.parent
    resource = span.resource.attributes if span.resource is not None else {}
    events = [
        {"name": e.name, "time_ns": e.timestamp, "attributes": json.loads(_attrs(e.attributes))}
        for e in span.events
    ]
    links = [
        {
            "trace_id": format(link.context.trace_id, "032x"),
            "span_id": format(link.context.span_id, "016x"),
            "attributes": json.loads(_attrs(link.attributes)),
        }
        for link in span.links
    ]
    start = span.start_time or 0
    return (
        format(ctx.trace_id, "032x") if ctx else "",
        format(ctx.span_id, "016x") if ctx else "",
        format(parent.span_id, "016x") if parent is not None else None,
        span.name,
        span.kind.name,
        str(resource.get("service.name", "unknown_service")),
        start,
        span.end_time or start,
        span.status.status_code.name,
        span.status.description,
        _attrs(span.attributes),
        json.dumps(events, separators=(",", ":")),
        json.dumps(links, separators=(",", ":")),
        _attrs(resource),
    )


class LocalStore:
    """A SQLite file of spans. Thread-safe; one connection guarded by a lock."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, readonly: bool = False) -> None:
        self.path = resolve_path(path)
        self._lock = threading.Lock()
        self._readonly = readonly
        self._open()

    def _open(self) -> None:
        self._pid = os.getpid()
        if self._readonly:
            if not self.path.exists():
                raise FileNotFoundError(f"no local trace store at {self.path}")
            uri = f"file:{self.path.resolve()}?mode=ro"
            self._conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=10)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)
            self._conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
            self._conn.commit()
        self._conn.row_factory = sqlite3.Row

    def _check_fork(self) -> None:
        # A SQLite connection must not cross fork(): a forked worker (gunicorn, uvicorn
        # --workers) opens its own on first use.
        if os.getpid() != self._pid:
            self._lock = threading.Lock()
            self._open()

    # -- writing ------------------------------------------------------------------------------
    def write(self, spans: Sequence[ReadableSpan]) -> None:
        rows = [_row(s) for s in spans]
        self._check_fork()
        with self._lock:
            self._conn.executemany(
                f"INSERT OR REPLACE INTO spans ({_COLUMNS}) VALUES ({','.join('?' * 14)})", rows
            )
            self._conn.commit()

    def put_payload(self, trace_id: str, span_id: str, kind: str, body: str, created_ns: int) -> None:
        self._check_fork()
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO payloads (trace_id, span_id, kind, created_ns, body) "
                "VALUES (?, ?, ?, ?, ?)",
                (trace_id, span_id, kind, created_ns, body),
            )
            self._conn.commit()

    def prune(self, max_spans: int) -> int:
        """Delete the oldest spans beyond ``max_spans``; returns how many went."""
        with self._lock:
            (count,) = self._conn.execute("SELECT COUNT(*) FROM spans").fetchone()
            excess = int(count) - max_spans
            if excess <= 0:
                return 0
            self._conn.execute(
                "DELETE FROM spans WHERE rowid IN (SELECT rowid FROM spans ORDER BY start_ns LIMIT ?)",
                (excess,),
            )
            self._conn.execute(
                "DELETE FROM payloads WHERE trace_id NOT IN (SELECT DISTINCT trace_id FROM spans)"
            )
            self._conn.commit()
            return excess

    # -- reading (mltrace.query.local turns rows into its span model) ---------------------------
    def _select(self, where: str, params: Iterable[Any]) -> list[dict[str, Any]]:
        with self._lock:
            cur = self._conn.execute(f"SELECT {_COLUMNS} FROM spans {where}", tuple(params))
            rows = cur.fetchall()
        out = []
        for r in rows:
            d = dict(r)
            for key in ("attributes", "events", "links", "resource"):
                d[key] = json.loads(d[key])
            out.append(d)
        return out

    def trace(self, trace_id: str) -> list[dict[str, Any]]:
        return self._select("WHERE trace_id = ? ORDER BY start_ns", (trace_id.lower(),))

    def traces(self, trace_ids: Sequence[str]) -> list[dict[str, Any]]:
        if not trace_ids:
            return []
        marks = ",".join("?" * len(trace_ids))
        return self._select(f"WHERE trace_id IN ({marks}) ORDER BY trace_id, start_ns", trace_ids)

    def trace_rows(self, trace_ids: Sequence[str]) -> list[dict[str, Any]]:
        """Rows of many traces for bulk analysis: like :meth:`traces` but without events, and
        each distinct resource parsed once (a process writes the same resource on every span)."""
        if not trace_ids:
            return []
        marks = ",".join("?" * len(trace_ids))
        names = [c.strip() for c in _COLUMNS.split(",") if c.strip() != "events"]
        with self._lock:
            cur = self._conn.cursor()
            cur.row_factory = None  # plain tuples: building sqlite3.Row objects costs more than zip
            rows = cur.execute(f"SELECT {', '.join(names)} FROM spans WHERE trace_id IN ({marks})", tuple(trace_ids))
            fetched = rows.fetchall()
        i_attrs, i_links, i_res = names.index("attributes"), names.index("links"), names.index("resource")
        # One json.loads over all attribute objects is about twice as fast as one call per row.
        attributes = json.loads("[" + ",".join(r[i_attrs] for r in fetched) + "]")
        resources: dict[str, Any] = {}
        loads = json.loads
        out = []
        for r, attrs in zip(fetched, attributes, strict=True):
            d = dict(zip(names, r, strict=True))
            d["attributes"] = attrs
            d["links"] = loads(r[i_links]) if r[i_links] != "[]" else []
            raw = r[i_res]
            res = resources.get(raw)
            if res is None:
                res = resources[raw] = loads(raw)
            d["resource"] = res
            out.append(d)
        return out

    def trace_ids(
        self,
        *,
        service: str | None = None,
        since_ns: int | None = None,
        limit: int | None = None,
        min_duration_ns: int | None = None,
    ) -> list[str]:
        """Trace ids with a root or entry span in ``service``, newest first."""
        clauses: list[str] = []
        params: list[Any] = []
        if service:
            clauses.append("service_name = ?")
            params.append(service)
        if since_ns is not None:
            clauses.append("start_ns >= ?")
            params.append(since_ns)
        if min_duration_ns is not None:
            clauses.append("end_ns - start_ns >= ?")
            params.append(min_duration_ns)
        clauses.append("(parent_span_id IS NULL OR kind = 'SERVER')")
        where = "WHERE " + " AND ".join(clauses)
        sql = f"SELECT trace_id, MAX(start_ns) AS t FROM spans {where} GROUP BY trace_id ORDER BY t DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._lock:
            return [r[0] for r in self._conn.execute(sql, tuple(params)).fetchall()]

    def services(self) -> list[str]:
        with self._lock:
            rows = self._conn.execute("SELECT DISTINCT service_name FROM spans ORDER BY 1").fetchall()
        return [r[0] for r in rows]

    def find_attribute(self, key: str, value: str, limit: int = 100) -> list[str]:
        """Trace ids whose spans carry ``key == value`` (e.g. an input fingerprint)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT DISTINCT trace_id FROM spans WHERE json_extract(attributes, ?) = ? "
                "ORDER BY start_ns DESC LIMIT ?",
                (f'$."{key}"', value, limit),
            ).fetchall()
        return [r[0] for r in rows]

    def payloads(self, trace_id: str) -> list[dict[str, Any]]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT trace_id, span_id, kind, created_ns, body FROM payloads WHERE trace_id = ?",
                (trace_id.lower(),),
            ).fetchall()
        return [dict(r) for r in rows]

    def close(self) -> None:
        with self._lock:
            self._conn.close()


class LocalStoreExporter(SpanExporter):
    """Writes finished spans into a :class:`LocalStore`; the ``local`` exporter."""

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        max_spans: int | None = None,
    ) -> None:
        self.store = LocalStore(path)
        self.max_spans = max_spans or ENV.LOCAL_MAX_SPANS.get()
        self._since_prune = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        try:
            self.store.write(spans)
            self._since_prune += len(spans)
            if self._since_prune >= max(1000, self.max_spans // 100):
                self._since_prune = 0
                pruned = self.store.prune(self.max_spans)
                if pruned:
                    COUNTERS.add("spans_pruned_local", pruned)
        except sqlite3.Error:
            _log.warning("mltrace: could not write %d spans to %s", len(spans), self.store.path, exc_info=True)
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        self.store.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def iter_rows(store: LocalStore, trace_ids: Sequence[str], chunk: int = 500) -> Iterator[list[dict[str, Any]]]:
    """Rows for many traces, fetched ``chunk`` traces at a time (keeps SQL variables bounded)."""
    for i in range(0, len(trace_ids), chunk):
        yield store.traces(trace_ids[i : i + chunk])
