"""Real ASGI servers (uvicorn, gunicorn) in subprocesses on 127.0.0.1, always killed afterwards.

- :func:`free_port`: a loopback port that was free a moment ago.
- :class:`ServerProcess`: starts a command in its own process group, waits (bounded) until an
  HTTP path answers, and on exit sends SIGTERM to the whole group, then SIGKILL if needed.
- :func:`hit_until_two_workers`: requests on fresh connections until two worker pids answered.
- :func:`read_spans`: the rows of a local SQLite store, polled until a condition holds.
- :func:`spans_of`: the stored spans of given traces, once each has its SERVER span.

Used by tests/spans/, tests/serving/ (through tests/serving/_serving.py), tests/cli/,
tests/golden/, tests/test_instrumentor.py and tests/export/test_logs.py.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing, suppress
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

VENV_BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_env(extra: Mapping[str, str], pythonpath: Sequence[Path | str] = ()) -> dict[str, str]:
    """The test process's environment plus ``extra``; ``pythonpath`` first on PYTHONPATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MLTRACE_"))}
    env.update(extra)
    paths = [str(p) for p in pythonpath]
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    if paths:
        env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


class ServerProcess:
    """``with ServerProcess([...], port=p, env=e, log=path) as server:`` then ``server.url``;
    ``server.db`` is the local store the server writes its spans to, when the caller names one."""

    def __init__(
        self,
        argv: Sequence[str],
        *,
        port: int,
        env: Mapping[str, str],
        log: Path,
        ready_path: str = "/health",
        ready_timeout: float = 60.0,
        cwd: Path | None = None,
        db: Path | None = None,
    ) -> None:
        self.argv = list(argv)
        self.port = port
        self.db = db
        self.url = f"http://127.0.0.1:{port}"
        self.log = log
        self._env = dict(env)
        self._ready_path = ready_path
        self._ready_timeout = ready_timeout
        self._cwd = cwd
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ServerProcess:
        out = self.log.open("wb")
        self.proc = subprocess.Popen(
            self.argv, env=self._env, stdout=out, stderr=subprocess.STDOUT, cwd=self._cwd, start_new_session=True
        )
        out.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self._ready_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + self._ready_path, timeout=1.0).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"server not ready after {self._ready_timeout}s:\n{self.output()}")

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM the process group (a graceful stop), SIGKILL it after ``timeout`` seconds."""
        proc = self.proc
        if proc is None:
            return None
        if proc.poll() is None:
            with suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                proc.wait(timeout)
        with suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # stragglers: workers left behind by a dead master
        proc.wait(5)
        return proc.returncode

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-6000:]
        except OSError:
            return ""


def hit_until_two_workers(url: str, *, max_requests: int = 400, timeout: float = 60.0) -> list[tuple[int, str]]:
    """GET /pid on fresh connections, 16 at a time, until two pids answered: (pid, trace id) pairs."""

    def one(_: int) -> tuple[int, str]:
        r = httpx.get(f"{url}/pid", headers={"connection": "close"}, timeout=10)
        r.raise_for_status()
        return int(r.json()["pid"]), r.headers["x-trace-id"]

    results: list[tuple[int, str]] = []
    deadline = time.monotonic() + timeout
    with ThreadPoolExecutor(16) as pool:
        while len(results) < max_requests and time.monotonic() < deadline:
            results += pool.map(one, range(16))
            if len({pid for pid, _ in results}) >= 2 and len(results) >= 32:
                break
    return results


SPAN_COLUMNS = "trace_id, span_id, parent_span_id, name, kind, status_code, attributes, resource, events"
JSON_COLUMNS = ("attributes", "resource", "events")


def read_spans(db: Path, until: Callable[[list[dict[str, Any]]], bool], timeout: float = 20.0) -> list[dict[str, Any]]:
    """Rows of the local store at ``db`` (the :data:`SPAN_COLUMNS`; attributes, resource and
    events decoded), once ``until(rows)`` holds; the last rows read if it never does within
    ``timeout``."""
    rows: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while True:
        if db.exists():
            try:
                with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)) as conn:
                    conn.row_factory = sqlite3.Row
                    rows = [dict(r) for r in conn.execute(f"SELECT {SPAN_COLUMNS} FROM spans")]
                for r in rows:
                    for column in JSON_COLUMNS:
                        r[column] = json.loads(r[column])
            except sqlite3.OperationalError:
                rows = []
        if until(rows) or time.monotonic() >= deadline:
            return rows
        time.sleep(0.2)


def spans_of(db: Path, trace_ids: list[str], timeout: float = 20.0) -> dict[str, list[dict[str, Any]]]:
    """All stored spans of each trace in ``trace_ids``, waiting until each has its SERVER span."""
    wanted = set(trace_ids)

    def done(rows: list[dict[str, Any]]) -> bool:
        return wanted <= {r["trace_id"] for r in rows if r["kind"] == "SERVER"}

    by_trace: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in read_spans(db, done, timeout):
        if row["trace_id"] in wanted:
            by_trace[row["trace_id"]].append(row)
    return by_trace
