"""Fixtures for tests/serving: one traced uvicorn per HTTP implementation, shared by the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from _servers import ServerProcess
from _serving import HTTP_IMPLS, serve


@pytest.fixture(scope="session", params=HTTP_IMPLS)
def traced(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """Real uvicorn (h11, then httptools) serving tests/serving/serving_app.py with mltrace."""
    tmp = tmp_path_factory.mktemp(f"traced-{request.param}")
    with serve(request.param, tmp) as server:
        yield server
