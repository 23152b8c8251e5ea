"""Fixtures for the end-to-end tests against the real backends (scripts/backends.sh up).

- ``jaeger_server``, ``zipkin_server``, ``redis_server``: the backend, once it answers its health
  check (waited for, bounded, since another test may be restarting it). One that stays down
  fails the test under ``MLTRACE_E2E=1`` (scripts/test.sh, CI) and skips it otherwise.
- ``serve``: starts ``python <script>`` (each example runs uvicorn itself) on free ports with the
  given environment, all at once, waits until each answers, and stops them after the test.

Endpoints: ``MLTRACE_E2E_*`` (scripts/test.sh exports them), else scripts/backends.env; see
``_e2e_backends.py``. This directory is not a package: its modules import each other by name
(``from _e2e_backends import ...``), as the CLI and soak tests beside them do.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path
from typing import Protocol

import pytest
from _e2e_backends import BASE_ENV, ROOT, App, Jaeger, Redis, Zipkin
from _servers import ServerProcess, server_env

HEALTH_WAIT_S = 30.0  # under MLTRACE_E2E=1: another test may be restarting the backend
_seen_down: set[str] = set()  # without it: a backend found down once is skipped at once afterwards


class _Healthy(Protocol):
    name: str

    def healthy(self) -> bool: ...


def require(backend: _Healthy, hint: str) -> None:
    """Wait (bounded) for ``backend`` to be healthy; else fail under MLTRACE_E2E=1, skip otherwise."""
    strict = os.environ.get("MLTRACE_E2E") == "1"
    wait = HEALTH_WAIT_S if strict else 2.0
    deadline = time.monotonic() + wait
    while backend.name in _seen_down or not backend.healthy():
        if backend.name in _seen_down or time.monotonic() >= deadline:
            message = f"{backend.name} is not reachable ({hint}) after {wait:.0f} s"
            message += "; start it with scripts/backends.sh up"
            if strict:
                pytest.fail(message)
            _seen_down.add(backend.name)
            pytest.skip(message + " (MLTRACE_E2E=1 makes this a failure)")
        time.sleep(0.5)


@pytest.fixture
def jaeger_server() -> Jaeger:
    """The real Jaeger (OTLP gRPC/HTTP in, query API out), healthy."""
    jaeger = Jaeger()
    require(jaeger, jaeger.query_url)
    return jaeger


@pytest.fixture
def zipkin_server() -> Zipkin:
    """The real Zipkin server, healthy."""
    zipkin = Zipkin()
    require(zipkin, zipkin.url)
    return zipkin


@pytest.fixture
def redis_server() -> Redis:
    """The real Redis, answering PING."""
    redis = Redis()
    require(redis, redis.url)
    return redis


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., list[ServerProcess]]]:
    """``serve(App(...), App(...))``: start the servers together, wait until ready; stopped after the test."""
    stack = ExitStack()
    lock = threading.Lock()

    def start(app: App) -> ServerProcess:
        name = Path(app.script).stem
        env = server_env({**BASE_ENV, "HOST": "127.0.0.1", "PORT": str(app.port), **app.env}, [ROOT])
        server = ServerProcess(
            [sys.executable, str(ROOT / app.script)],
            port=app.port,
            env=env,
            log=tmp_path / f"{name}-{app.port}.log",
            ready_path=app.ready_path,
            cwd=tmp_path,  # a stray local store lands here, never in the checkout
        )
        with lock:
            stack.callback(server.stop)
        server.__enter__()
        return server

    def run(*apps: App) -> list[ServerProcess]:
        with ThreadPoolExecutor(len(apps)) as pool:
            return list(pool.map(start, apps))

    with stack:
        yield run
