"""Real uvicorn serving tests/serving/serving_app.py in a subprocess, and the spans it stored.

- :func:`serve`: uvicorn (``--http h11`` or ``httptools``) on a free loopback port, traced or
  not; the server writes its spans to a local SQLite store the test reads afterwards.
- :func:`stored_spans`: that store's rows, polled until a condition holds.
- :func:`server_spans_by_trace`: SERVER spans grouped by trace id.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

from _servers import ServerProcess, free_port, server_env

HERE = Path(__file__).resolve().parent
HTTP_IMPLS = ("h11", "httptools")


def serve(http: str, tmp: Path, *, traced: bool = True, otlp: str | None = None, name: str = "server") -> ServerProcess:
    """``with serve("h11", tmp_path) as server:`` — ``server.url``, ``server.port``, and
    ``server.db`` (the span store; absent when not traced)."""
    port = free_port()
    env = {
        "SERVING_TRACED": "1" if traced else "0",
        "SERVING_DB": str(tmp / f"{name}.db"),
        # Starlette's 405 lists a route's methods from a set: the same order in every process
        "PYTHONHASHSEED": "0",
    }
    if otlp:
        env["SERVING_OTLP"] = otlp
    argv = [
        sys.executable, "-m", "uvicorn", "serving_app:app", "--host", "127.0.0.1", "--port", str(port),
        "--http", http, "--lifespan", "off", "--no-access-log", "--ws", "auto",
    ]
    server = ServerProcess(
        argv, port=port, env=server_env(env, [HERE]), log=tmp / f"{name}.log", ready_path="/items/ready"
    )
    server.db = tmp / f"{name}.db"  # type: ignore[attr-defined]
    return server


def stored_spans(
    db: Path, until: Callable[[list[dict[str, Any]]], bool], timeout: float = 20.0
) -> list[dict[str, Any]]:
    """Every span row in ``db`` (attributes and events decoded) once ``until(rows)`` holds, or the
    last rows read when ``timeout`` passes first."""
    rows: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        if db.exists():
            try:
                with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
                    conn.row_factory = sqlite3.Row
                    rows = [dict(r) for r in conn.execute(
                        "SELECT trace_id, span_id, parent_span_id, name, kind, status_code, attributes, events"
                        " FROM spans"
                    )]
                for row in rows:
                    row["attributes"] = json.loads(row["attributes"])
                    row["events"] = json.loads(row["events"])
            except sqlite3.OperationalError:
                rows = []
        if until(rows) or time.monotonic() >= deadline:
            return rows
        time.sleep(0.2)


def server_spans_by_trace(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["kind"] == "SERVER":
            found[row["trace_id"]].append(row)
    return found


def spans_of(db: Path, trace_ids: list[str], timeout: float = 20.0) -> dict[str, list[dict[str, Any]]]:
    """All stored spans of each trace in ``trace_ids``, waiting until each has its SERVER span."""
    wanted = set(trace_ids)

    def done(rows: list[dict[str, Any]]) -> bool:
        return wanted <= {r["trace_id"] for r in rows if r["kind"] == "SERVER"}

    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in stored_spans(db, done, timeout):
        if row["trace_id"] in wanted:
            by_trace[row["trace_id"]].append(row)
    return by_trace
