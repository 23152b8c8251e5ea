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
from ..semconv import ML_INPUT_PREFIX
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

# (spans_service_start, on every span, was dropped from new stores: window queries read spans_entry,
# and each index costs the writer; without it the writer did 5-30% more spans/s. Older stores keep
# theirs, harmless.)
# Entry spans (a root, or a SERVER span) of every trace, with what a window scan reads, so that
# `slow` over a million traces reads this index alone instead of five million rows (issue 14).
# Partial: only entry spans (a fifth of a served trace's spans) pay for it at write time. The WHERE
# must stay textually the one in entry_durations() and trace_ids(): SQLite uses a partial index
# only for queries whose WHERE implies it.
_ENTRY = "(parent_span_id IS NULL OR kind = 'SERVER')"
_ENTRY_INDEX = (
    "CREATE INDEX IF NOT EXISTS spans_entry ON spans (service_name, start_ns, end_ns, trace_id) "
    f"WHERE {_ENTRY}"
)

# `lineage --fingerprint` looks an input fingerprint up among every span's attributes; without an
# index that parses every span's JSON (a million traces: seconds). Partial on the spans whose JSON
# holds the key (instr: a substring test, no parse, on each insert), so only those pay for the
# index. Query and index must match textually (FINGERPRINT_WHERE / FINGERPRINT_EXPR), see above.
FINGERPRINT_KEY = ML_INPUT_PREFIX + "fingerprint"  # the summaries' `fingerprint` under ml.input.*
FINGERPRINT_EXPR = f"json_extract(attributes, '$.\"{FINGERPRINT_KEY}\"')"
FINGERPRINT_WHERE = f"instr(attributes, '\"{FINGERPRINT_KEY}\"') > 0"
_FINGERPRINT_INDEX = (
    f"CREATE INDEX IF NOT EXISTS spans_fingerprint ON spans ({FINGERPRINT_EXPR}) WHERE {FINGERPRINT_WHERE}"
)

_COLUMNS = (
    "trace_id, span_id, parent_span_id, name, kind, service_name, start_ns, end_ns, "
    "status_code, status_message, attributes, events, links, resource"
)


def resolve_path(path: str | os.PathLike[str] | None) -> Path:
    """``configure(local_path=...)``, else ``$MLTRACE_LOCAL_PATH``, else ``./mltrace-traces.db``."""
    if path is not None:
        return Path(path)
    return Path(ENV.LOCAL_PATH.get() or DEFAULT_PATH)


# One encoder built once: json.dumps with any non-default argument builds a new one per call.
# Tuples encode as arrays, so attribute values need no conversion.
_dumps = json.JSONEncoder(separators=(",", ":")).encode


def _plain(attributes: Any) -> Any:
    """The attributes' own dict when there is one: an SDK span's ``attributes`` is a read-only view
    of a ``BoundedAttributes``, whose Python-level iteration made ``dict(attributes)`` cost 1.4 us a
    span, more than encoding it (0.7 ms of the 3.1 ms a 512-span batch took to encode, measured)."""
    inner = getattr(attributes, "_dict", None)
    return inner if type(inner) is dict else attributes


def _attrs(attributes: Any) -> str:
    if not attributes:
        return "{}"
    if type(attributes) is not dict:
        attributes = _plain(attributes)
        if type(attributes) is not dict:
            attributes = dict(attributes)
    return _dumps(attributes)


def _events(span: ReadableSpan) -> str:
    raw = getattr(span, "_events", None)  # the public property copies it into a tuple per access
    events = span.events if raw is None else raw
    if not events:
        return "[]"
    return _dumps([{"name": e.name, "time_ns": e.timestamp, "attributes": _plain_dict(e.attributes)} for e in events])


def _plain_dict(attributes: Any) -> dict[str, Any]:
    if not attributes:
        return {}
    inner = _plain(attributes)
    return inner if type(inner) is dict else dict(inner)


def _links(span: ReadableSpan) -> str:
    # As for events: ``span.links`` builds a tuple through a generator on every access; for spans
    # with neither, the two properties cost 0.4 ms of a 512-span batch's 2.3 ms (measured).
    raw = getattr(span, "_links", None)
    links = span.links if raw is None else raw
    if not links:
        return "[]"
    return _dumps(
        [
            {
                "trace_id": format(link.context.trace_id, "032x"),
                "span_id": format(link.context.span_id, "016x"),
                "attributes": _plain_dict(link.attributes),
            }
            for link in links
        ]
    )


def _span_attributes(span: ReadableSpan) -> Any:
    # The SDK keeps a span's attributes in ``_attributes`` (a BoundedAttributes, or a dict for a
    # ReadableSpan built by hand); the public ``attributes`` wraps it in a MappingProxyType per
    # access. Anything else (another SpanData implementation) goes through the public property.
    raw = getattr(span, "_attributes", None)
    return span.attributes if raw is None else raw


# One statement per batch: ``INSERT ... VALUES (...), (...), ...`` with every row's values bound
# at once. The sqlite3 module releases the GIL around each sqlite3_step; ``executemany`` steps once
# per row, and with a CPU-bound thread beside the writer every re-acquisition waits for that thread
# to let go (up to the 5 ms switch interval, or a whole C call that never checks): 108 spans/s
# written (issue 11, item 7). One statement is one step, one hand-off per batch. Measured against
# binding the batch as one JSON array unpacked with json_each: the same single step, but SQLite's
# ``value ->> i`` per column cost 17 us a span, more than the insert itself
# (benchmarks/bench_store.py, benchmarks/README.md).
_ROW_MARKS = "(" + ",".join("?" * 14) + ")"
_MAX_ROWS = 512  # 7,168 variables, well under SQLite's 32,766 (3.32+)
# The writer thread joins batches waiting for it into one statement of up to this many rows: when
# it falls behind, each GIL hand-off carries more spans (28,672 variables, see _row_limit()).
_MAX_JOINED_ROWS = 2_048


def _insert_sql(n: int) -> str:
    return f"INSERT OR REPLACE INTO spans ({_COLUMNS}) VALUES " + ",".join([_ROW_MARKS] * n)


def encode_rows(spans: Sequence[ReadableSpan]) -> list[Any]:
    """The values of ``spans`` as one flat parameter list, 14 per span, JSON columns as text.

    A process writes one resource on every span: its text is made once per batch."""
    resources: dict[int, tuple[str, str]] = {}
    flat: list[Any] = []
    extend = flat.extend
    for span in spans:
        ctx = span.context
        parent = span.parent
        res = span.resource
        cached = resources.get(id(res))
        if cached is None:
            attrs = res.attributes if res is not None else {}
            cached = resources[id(res)] = (str(attrs.get("service.name", "unknown_service")), _attrs(attrs))
        start = span.start_time or 0
        status = span.status
        extend((
            # %-formatting: ~0.1 us less than format() per id, 0.15 ms of a 512-span batch
            "%032x" % ctx.trace_id if ctx else "",  # noqa: UP031
            "%016x" % ctx.span_id if ctx else "",  # noqa: UP031
            "%016x" % parent.span_id if parent is not None else None,  # noqa: UP031
            span.name,
            span.kind._name_,  # the member's name (Enum's .name is a slower descriptor)
            cached[0],
            start,
            span.end_time or start,
            status.status_code._name_,
            status.description,
            _attrs(_span_attributes(span)),
            _events(span),
            _links(span),
            cached[1],
        ))
    return flat


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
            # Autocommit: each write is one statement, hence its own transaction, with no BEGIN
            # and COMMIT steps around it (each would be one more GIL hand-off; see write()).
            self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=10, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
            self._conn.executescript(_SCHEMA)
            try:
                self._conn.execute(_ENTRY_INDEX)
                self._conn.execute(_FINGERPRINT_INDEX)
            except sqlite3.OperationalError:
                # A store written by an older mltrace, the index being built by another worker past
                # the busy timeout: serving must start anyway; the next open builds it (reads work
                # without it, slower).
                _log.info("mltrace: the local store's entry index is not built yet", exc_info=True)
            self._conn.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                (str(SCHEMA_VERSION),),
            )
        self._conn.row_factory = sqlite3.Row

    def _check_fork(self) -> None:
        # A SQLite connection must not cross fork(): a forked worker (gunicorn, uvicorn
        # --workers) opens its own on first use.
        if os.getpid() != self._pid:
            self._lock = threading.Lock()
            self._open()

    # -- writing ------------------------------------------------------------------------------
    def write(self, spans: Sequence[ReadableSpan]) -> None:
        """Insert a batch of spans, one statement per (up to) 512 spans; see :func:`_insert_sql`."""
        if not spans:
            return
        chunks = [spans[i : i + _MAX_ROWS] for i in range(0, len(spans), _MAX_ROWS)]
        self.write_rows([(len(chunk), encode_rows(chunk)) for chunk in chunks])

    def write_rows(self, parts: Sequence[tuple[int, list[Any]]]) -> None:
        """Insert already encoded rows (``(n, values)`` pairs from :func:`encode_rows`), one
        statement per part, in one transaction."""
        if not parts:
            return
        self._check_fork()
        with self._lock:
            if len(parts) > 1:
                self._conn.execute("BEGIN IMMEDIATE")
            try:
                for n, values in parts:
                    self._execute_values(_insert_sql(n), values)
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise
            if self._conn.in_transaction:
                self._conn.execute("COMMIT")

    def row_limit(self) -> int:
        """The most rows one statement may bind (SQLite's variable limit / 14, at most 2,048)."""
        try:
            limit = self._conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        except (AttributeError, sqlite3.Error):  # pragma: no cover - Python < 3.11
            limit = 32_766
        return max(1, min(_MAX_JOINED_ROWS, limit // 14))

    def _execute_values(self, sql: str, values: list[Any]) -> None:
        try:
            self._conn.execute(sql, values)
        except UnicodeEncodeError:
            # A lone surrogate (from a client's header, say) cannot be UTF-8: replace it rather
            # than lose the batch.
            fixed = [v.encode("utf-8", "replace").decode("utf-8") if isinstance(v, str) else v for v in values]
            self._conn.execute(sql, fixed)

    def put_payload(self, trace_id: str, span_id: str, kind: str, body: str, created_ns: int) -> None:
        self._check_fork()
        with self._lock:
            self._conn.execute(
                "INSERT OR REPLACE INTO payloads (trace_id, span_id, kind, created_ns, body) "
                "VALUES (?, ?, ?, ?, ?)",
                (trace_id, span_id, kind, created_ns, body),
            )

    def prune(self, max_spans: int) -> int:
        """Delete the oldest spans beyond ``max_spans``; returns how many went."""
        with self._lock:
            (count,) = self._conn.execute("SELECT COUNT(*) FROM spans").fetchone()
            excess = int(count) - max_spans
            if excess <= 0:
                return 0
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                self._conn.execute(
                    "DELETE FROM spans WHERE rowid IN (SELECT rowid FROM spans ORDER BY start_ns LIMIT ?)",
                    (excess,),
                )
                self._conn.execute(
                    "DELETE FROM payloads WHERE trace_id NOT IN (SELECT DISTINCT trace_id FROM spans)"
                )
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
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
        clauses.append(_ENTRY)
        where = "WHERE " + " AND ".join(clauses)
        sql = f"SELECT trace_id, MAX(start_ns) AS t FROM spans {where} GROUP BY trace_id ORDER BY t DESC"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        with self._lock:
            return [r[0] for r in self._conn.execute(sql, tuple(params)).fetchall()]

    def entry_spans(
        self,
        *,
        service: str | None = None,
        since_ns: int | None = None,
        chunk: int = 100_000,
    ) -> Iterator[list[tuple[str, int, int]]]:
        """The entry spans (roots, SERVER spans) in the window as ``(trace_id, start_ns,
        duration_ns)``, in chunks; a trace may appear more than once (a gateway and a backend).

        Reads only the ``spans_entry`` index: 0.13 s for 100,000 traces, where grouping by trace in
        SQL made the planner pick another index and sort (0.68 s, measured)."""
        clauses = [_ENTRY]
        params: list[Any] = []
        if service:
            clauses.append("service_name = ?")
            params.append(service)
        if since_ns is not None:
            clauses.append("start_ns >= ?")
            params.append(since_ns)
        sql = f"SELECT trace_id, start_ns, end_ns - start_ns FROM spans WHERE {' AND '.join(clauses)}"
        with self._lock:
            cur = self._conn.cursor()
            cur.row_factory = None
            cur.execute(sql, tuple(params))
        try:
            while True:
                with self._lock:
                    rows = cur.fetchmany(chunk)
                if not rows:
                    return
                yield rows
        finally:
            cur.close()

    def services(self) -> list[str]:
        with self._lock:
            rows = self._conn.execute("SELECT DISTINCT service_name FROM spans ORDER BY 1").fetchall()
        return [r[0] for r in rows]

    def has_service(self, service: str) -> bool:
        """Whether ``service`` wrote a span: an entry-index lookup when it served a request (a
        million traces: <1 ms, where :meth:`services` scans every span, 0.4 s per 100,000 traces)."""
        with self._lock:
            conn = self._conn
            if conn.execute(f"SELECT 1 FROM spans WHERE service_name = ? AND {_ENTRY} LIMIT 1", (service,)).fetchone():
                return True
            return conn.execute("SELECT 1 FROM spans WHERE service_name = ? LIMIT 1", (service,)).fetchone() is not None

    def find_attribute(self, key: str, value: str, limit: int = 100) -> list[str]:
        """Trace ids whose spans carry ``key == value`` (e.g. an input fingerprint), newest first.

        ``ml.input.fingerprint`` is an index lookup (``spans_fingerprint``; 0.42 s end to end over a
        million traces). Other keys: ``instr`` on the stored JSON text first, ``json_extract`` only
        on the rows that contain the value as written (100,000 traces: 0.30-0.50 s where parsing
        every span's JSON took 0.56-0.86 s). The exact test stays ``json_extract``; the substring is
        skipped for values the encoder would escape (they would not appear verbatim)."""
        path = f'$."{key}"'
        if key == FINGERPRINT_KEY:  # the spans_fingerprint index: a lookup, not a scan
            sql = (f"SELECT trace_id, max(start_ns) FROM spans WHERE {FINGERPRINT_WHERE} AND {FINGERPRINT_EXPR} = ? "
                   "GROUP BY trace_id ORDER BY 2 DESC LIMIT ?")
            params: tuple[Any, ...] = (value, limit)
        elif _dumps(value)[1:-1] == value:
            sql = ("SELECT trace_id, max(start_ns) FROM spans WHERE instr(attributes, ?) > 0 "
                   "AND json_extract(attributes, ?) = ? GROUP BY trace_id ORDER BY 2 DESC LIMIT ?")
            params = (value, path, value, limit)
        else:
            sql = ("SELECT trace_id, max(start_ns) FROM spans WHERE json_extract(attributes, ?) = ? "
                   "GROUP BY trace_id ORDER BY 2 DESC LIMIT ?")
            params = (path, value, limit)
        with self._lock:
            rows = self._conn.execute(sql, params).fetchall()
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


class _Writer:
    """The store's writer thread: executes encoded batches the export thread hands it.

    Two stages, so that their waits overlap: the export thread encodes batch n+1 (Python, under
    the GIL) while this thread's statement for batch n runs in SQLite (which releases the GIL).
    With one thread doing both, each batch paid encoding, then SQLite, then up to a whole switch
    interval (5 ms) or C call to get the GIL back from a busy thread, one after the other
    (benchmarks/bench_store.py write, benchmarks/README.md). Batches that wait here are joined into
    one statement of up to :meth:`LocalStore.row_limit` rows: the further behind, the more spans
    per hand-off.

    The hand-off queue is bounded (``max_batches`` encoded batches): when SQLite cannot keep up,
    ``put`` blocks the export thread, the batch processor's queue fills, and its overflow is
    counted there. Spans are counted exported when their statement commits, failed when it fails.
    """

    # Four 512-span batches: enough to overlap encoding with SQLite and to join a 2,048-row
    # statement when behind, few enough that the batch processor's queue (where overflow is
    # counted) stays the one place spans wait.
    def __init__(self, store: LocalStore, after_write: Any, max_batches: int = 4) -> None:
        self.store = store
        self._after_write = after_write
        self._max_batches = max_batches
        self._row_limit = store.row_limit()
        self._start()

    def _start(self) -> None:
        self._pid = os.getpid()
        self._cond = threading.Condition()
        self._batches: list[tuple[int, list[Any]]] = []
        self._busy = False  # a statement is being executed
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="mltrace-local-store-writer", daemon=True)
        self._thread.start()

    def _check_fork(self) -> None:
        # Threads do not survive fork(): a forked worker starts its own writer. What the parent had
        # waiting here is the parent's to write (the child would write it twice).
        if os.getpid() != self._pid:
            self._start()

    def put(self, n: int, values: list[Any]) -> bool:
        """Hand over one encoded batch; blocks while ``max_batches`` wait. False once closed."""
        self._check_fork()
        with self._cond:
            if not self._thread.is_alive() and not self._closed:  # pragma: no cover - _run catches
                # Exception; only a BaseException could end it. What waits is written by a new one.
                self._thread = threading.Thread(target=self._run, name="mltrace-local-store-writer", daemon=True)
                self._thread.start()
            while len(self._batches) >= self._max_batches and not self._closed:
                self._cond.wait(1.0)
            if self._closed:
                return False
            self._batches.append((n, values))
            self._cond.notify_all()
            return True

    def _take(self) -> list[tuple[int, list[Any]]] | None:
        limit = self._row_limit
        with self._cond:
            while not self._batches:
                if self._closed:
                    return None
                self._cond.wait()
            taken: list[tuple[int, list[Any]]] = []
            rows = 0
            while self._batches and (not taken or rows + self._batches[0][0] <= limit):
                n, values = self._batches.pop(0)
                taken.append((n, values))
                rows += n
            self._busy = True
            self._cond.notify_all()
            return taken

    def _run(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                return
            n = sum(k for k, _ in taken)
            try:
                if len(taken) == 1:
                    self.store.write_rows(taken)
                else:  # one statement: joining the value lists is a list concatenation
                    joined: list[Any] = []
                    for _, values in taken:
                        joined += values
                    self.store.write_rows([(n, joined)])
            except Exception as exc:
                _log.warning("mltrace: could not write %d spans to %s", n, self.store.path, exc_info=True)
                COUNTERS.lost("spans_export_failed", n, f"local: {type(exc).__name__}: {exc}")
            else:
                COUNTERS.add("spans_exported", n)
                try:
                    self._after_write(n)
                except Exception:  # pruning is housekeeping: the spans are written
                    _log.warning("mltrace: could not prune %s", self.store.path, exc_info=True)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()

    def flush(self, timeout_s: float) -> bool:
        """Wait until every batch handed over is written (or failed); False on timeout."""
        if os.getpid() != self._pid:
            return True
        with self._cond:
            return self._cond.wait_for(lambda: not self._batches and not self._busy, timeout_s)

    def close(self, timeout_s: float) -> bool:
        """Write what waits (within ``timeout_s``), then stop the thread."""
        flushed = self.flush(timeout_s)
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if os.getpid() == self._pid:
            self._thread.join(max(0.1, timeout_s))
        return flushed


class LocalStoreExporter(SpanExporter):
    """Writes finished spans into a :class:`LocalStore`; the ``local`` exporter.

    Alone (a SimpleSpanProcessor, ``configure(batch=False)``) ``export`` writes before it returns.
    Under :class:`~mltrace.export._counting.CountingBatchSpanProcessor`, which calls
    :meth:`start_writer_thread`, ``export`` encodes the batch in the calling thread (the batch
    processor's) and hands it to the store's writer thread (:class:`_Writer`), which counts the
    spans exported or failed when it knows (``counts_exports``); ``force_flush`` and ``shutdown``
    wait for it."""

    # The batch size CountingBatchSpanProcessor uses for this exporter unless one is configured.
    # Each batch costs one GIL hand-off; with a busy thread beside the writer that hand-off, not
    # the work, bounds the rate: 17-19k spans/s in batches of 128, 33-44k in batches of 512 on the
    # shared 2-core machine (benchmarks/bench_store.py write). Encoding is Python code the
    # interpreter interrupts at the switch interval, so a larger batch does not stall requests the
    # way a large protobuf encode does (the reason for 128 elsewhere).
    # Fed 2,048-span batches, the two-thread writer did 0.79-1.20x what it did with 512 (side by
    # side, `bench_store.py write --also-batch 2048`): no clear gain; it joins waiting batches anyway.
    preferred_batch_size = 512
    # ... and a deeper queue than the SDK's 2,048 (CountingBatchSpanProcessor), see _counting.py.
    preferred_queue_size = 32_768

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        max_spans: int | None = None,
    ) -> None:
        self.store = LocalStore(path)
        self.max_spans = max_spans or ENV.LOCAL_MAX_SPANS.get()
        self._since_prune = 0
        self._writer: _Writer | None = None

    def start_writer_thread(self) -> None:
        """Write in a thread of the store's own from now on (see :class:`_Writer`)."""
        if self._writer is None:
            self._writer = _Writer(self.store, self._after_write)

    @property
    def counts_exports(self) -> bool:
        """Whether this exporter counts its spans exported or failed itself (its writer thread does,
        when their statement commits or fails)."""
        return self._writer is not None

    def _after_write(self, n: int) -> None:
        # In the writer thread: pruning is SQLite work too.
        self._since_prune += n
        if self._since_prune >= max(1000, self.max_spans // 100):
            self._since_prune = 0
            pruned = self.store.prune(self.max_spans)
            if pruned:
                COUNTERS.add("spans_pruned_local", pruned)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not spans:
            return SpanExportResult.SUCCESS
        writer = self._writer
        if writer is None:
            try:
                self.store.write(spans)
                self._after_write(len(spans))
            except sqlite3.Error:
                _log.warning("mltrace: could not write %d spans to %s", len(spans), self.store.path, exc_info=True)
                return SpanExportResult.FAILURE
            return SpanExportResult.SUCCESS
        # Encoded whole before any hand-off: an encoding error fails the batch, counted once (by
        # CountingExporter), with no part of it written.
        chunks = [spans[i : i + _MAX_ROWS] for i in range(0, len(spans), _MAX_ROWS)]
        encoded = [(len(chunk), encode_rows(chunk)) for chunk in chunks]
        for i, (n, values) in enumerate(encoded):
            if not writer.put(n, values):
                rest = sum(k for k, _ in encoded[i:])
                COUNTERS.lost("spans_dropped_after_shutdown", rest, "local store closed")
                return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self, timeout_millis: float = 30_000) -> None:
        if self._writer is not None:
            self._writer.close(timeout_millis / 1000)
        self.store.close()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True if self._writer is None else self._writer.flush(timeout_millis / 1000)
