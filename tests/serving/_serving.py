"""Real uvicorn serving tests/serving/serving_app.py in a subprocess, and the spans it stored.

- :func:`serve`: uvicorn (``--http h11`` or ``httptools``) on a free loopback port, traced or
  not; the server writes its spans to a local SQLite store the test reads afterwards.
- :func:`stored_spans`, :func:`spans_of`: that store's rows (tests/_servers.py's ``read_spans`` and
  ``spans_of``, under the names these tests use).
- :func:`server_spans_by_trace`: SERVER spans grouped by trace id.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from _servers import ServerProcess, free_port, server_env, spans_of
from _servers import read_spans as stored_spans

__all__ = ["HERE", "HTTP_IMPLS", "serve", "server_spans_by_trace", "spans_of", "stored_spans"]

HERE = Path(__file__).resolve().parent
HTTP_IMPLS = ("h11", "httptools")


def serve(http: str, tmp: Path, *, traced: bool = True, otlp: str | None = None, name: str = "server") -> ServerProcess:
    """``with serve("h11", tmp_path) as server:`` — ``server.url``, ``server.port``, and
    ``server.db`` (the span store; absent when not traced)."""
    port = free_port()
    db = tmp / f"{name}.db"
    env = {
        "SERVING_TRACED": "1" if traced else "0",
        "SERVING_DB": str(db),
        # Starlette's 405 lists a route's methods from a set: the same order in every process
        "PYTHONHASHSEED": "0",
    }
    if otlp:
        env["SERVING_OTLP"] = otlp
    argv = [
        sys.executable, "-m", "uvicorn", "serving_app:app", "--host", "127.0.0.1", "--port", str(port),
        "--http", http, "--lifespan", "off", "--no-access-log", "--ws", "auto",
    ]
    return ServerProcess(
        argv, port=port, env=server_env(env, [HERE]), log=tmp / f"{name}.log", ready_path="/items/ready", db=db
    )


def server_spans_by_trace(rows: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    found: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        if row["kind"] == "SERVER":
            found[row["trace_id"]].append(row)
    return found
