"""A real Redis server (MLTRACE_E2E_REDIS_URL, default redis://127.0.0.1:6379/0) and span capture.

Without a server the Redis tests skip, except under MLTRACE_E2E=1 (CI), where they fail loudly.
Every test writes under its own random key prefix and deletes it afterwards.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import redis.asyncio

from mltrace.testing import CapturedSpans, capture_spans

os.environ.setdefault("MLTRACE_EXPORTER", "none")  # never write a local trace store from tests

REDIS_URL = os.environ.get("MLTRACE_E2E_REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def spans() -> Iterator[CapturedSpans]:
    """Every span that ends during the test."""
    with capture_spans() as captured:
        yield captured


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The server's URL once it answers PING."""
    probe = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2, socket_timeout=2)
    try:
        probe.ping()
    except redis.RedisError as exc:
        message = f"Redis is not reachable at {REDIS_URL} ({exc}); start it with scripts/backends.sh up redis"
        if os.environ.get("MLTRACE_E2E") == "1":
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    finally:
        probe.close()
    return REDIS_URL


@pytest.fixture
def prefix() -> str:
    """A key prefix no other test (or person) uses."""
    return f"mltrace-test:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def client(redis_url: str, prefix: str) -> Iterator[redis.Redis]:
    """A sync client; the test's keys are deleted afterwards."""
    conn = redis.Redis.from_url(redis_url)
    yield conn
    for key in conn.scan_iter(match=prefix + "*"):
        conn.delete(key)
    conn.close()


@pytest.fixture
async def aclient(redis_url: str, prefix: str) -> AsyncIterator[redis.asyncio.Redis]:
    """An asyncio client; the test's keys are deleted afterwards."""
    conn = redis.asyncio.Redis.from_url(redis_url)
    yield conn
    async for key in conn.scan_iter(match=prefix + "*"):
        await conn.delete(key)
    await conn.aclose()
