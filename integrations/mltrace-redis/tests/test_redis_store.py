"""RedisFeatureStore and AsyncRedisFeatureStore against a real Redis server."""

from __future__ import annotations

from typing import Any

import pytest
import redis
import redis.asyncio
from mltrace_redis import AsyncRedisFeatureStore, RedisFeatureStore
from opentelemetry.trace import StatusCode

import mltrace
from mltrace.testing import CapturedSpans

pytestmark = pytest.mark.e2e


def _counts(attrs: Any) -> tuple[int, int, int]:
    """(keys, hits, misses) of a lookup span."""
    return attrs["ml.feature_store.keys"], attrs["ml.feature_store.hits"], attrs["ml.feature_store.misses"]


def _no_key_text(attrs: Any, prefix: str) -> bool:
    return not any(prefix in str(value) for value in attrs.values())


def test_mget_records_store_keys_hits_and_misses(spans: CapturedSpans, client: redis.Redis, prefix: str) -> None:
    """MGET of five keys, three present: one lookup span with counts and connection facts, no key text."""
    client.mset({f"{prefix}{i}": f"v{i}" for i in range(3)})
    keys = [f"{prefix}{i}" for i in range(5)]
    values = RedisFeatureStore(client, name="user-features").mget(keys)
    assert values == [b"v0", b"v1", b"v2", None, None]
    span = spans.stage("feature_lookup")
    attrs = span.attributes
    assert attrs["ml.feature_store.name"] == "user-features"
    assert _counts(attrs) == (5, 3, 2)
    assert attrs["db.system.name"] == "redis" and attrs["db.operation.name"] == "MGET"
    assert attrs["server.address"] == "127.0.0.1" and isinstance(attrs["server.port"], int)
    assert attrs["db.namespace"] == "0"
    assert span.end_time > span.start_time  # the span's duration is the lookup's latency
    assert _no_key_text(attrs, prefix)


def test_hgetall_hit_then_miss(spans: CapturedSpans, client: redis.Redis, prefix: str) -> None:
    """HGETALL of an existing hash is a hit, of a missing one a miss (an empty dict)."""
    client.hset(f"{prefix}u1", mapping={"age": 31, "country": "NZ"})
    store = RedisFeatureStore(client)
    assert store.hgetall(f"{prefix}u1") == {b"age": b"31", b"country": b"NZ"}
    assert store.hgetall(f"{prefix}nobody") == {}
    hit, miss = spans.stages("feature_lookup")
    assert (hit.attributes["ml.feature_store.hits"], hit.attributes["ml.feature_store.misses"]) == (1, 0)
    assert (miss.attributes["ml.feature_store.hits"], miss.attributes["ml.feature_store.misses"]) == (0, 1)
    assert hit.attributes["ml.feature_store.name"] == "redis"


def test_hgetall_many_is_one_pipelined_lookup(spans: CapturedSpans, client: redis.Redis, prefix: str) -> None:
    """Many hashes in one round trip make one span named BATCH HGETALL with the batch size."""
    for i in range(4):
        client.hset(f"{prefix}u{i}", mapping={"score": i})
    keys = [f"{prefix}u{i}" for i in range(6)]
    rows = RedisFeatureStore(client).hgetall_many(keys)
    assert rows[:4] == [{b"score": str(i).encode()} for i in range(4)] and rows[4:] == [{}, {}]
    attrs = spans.stage("feature_lookup").attributes
    assert attrs["db.operation.name"] == "BATCH HGETALL" and attrs["db.operation.batch.size"] == 6
    assert _counts(attrs) == (6, 4, 2)


def test_execute_runs_the_callers_pipeline(spans: CapturedSpans, client: redis.Redis, prefix: str) -> None:
    """A mixed pipeline counts every key it read (MGET per key) and is named BATCH."""
    client.set(f"{prefix}a", "1")
    client.hset(f"{prefix}h", mapping={"x": 1})
    pipe = client.pipeline(transaction=False)
    pipe.get(f"{prefix}a")
    pipe.mget([f"{prefix}a", f"{prefix}missing"])
    pipe.hgetall(f"{prefix}h")
    results = RedisFeatureStore(client).execute(pipe)
    assert results == [b"1", [b"1", None], {b"x": b"1"}]
    attrs = spans.stage("feature_lookup").attributes
    assert attrs["db.operation.name"] == "BATCH" and attrs["db.operation.batch.size"] == 3
    assert _counts(attrs) == (4, 3, 1)


def test_execute_names_a_single_command_batch(spans: CapturedSpans, client: redis.Redis, prefix: str) -> None:
    """A pipeline of GETs is named BATCH GET."""
    pipe = client.pipeline(transaction=False)
    for i in range(3):
        pipe.get(f"{prefix}{i}")
    RedisFeatureStore(client).execute(pipe)
    assert spans.stage("feature_lookup").attributes["db.operation.name"] == "BATCH GET"


def test_key_values_only_when_allowed(spans: CapturedSpans, client: redis.Redis, prefix: str) -> None:
    """record_keys=True records the first 16 key values, each cut to 128 characters."""
    keys = [f"{prefix}{i}" for i in range(20)] + [prefix + "k" * 300]
    RedisFeatureStore(client, record_keys=True).mget(keys)
    recorded = spans.stage("feature_lookup").attributes["ml.feature_store.key_values"]
    assert list(recorded) == keys[:16]
    RedisFeatureStore(client, record_keys=True).hgetall(prefix + "k" * 300)
    assert all(len(k) <= 128 for k in spans.stages("feature_lookup")[1].attributes["ml.feature_store.key_values"])


def test_no_keys_means_no_round_trip(spans: CapturedSpans, client: redis.Redis) -> None:
    """mget([]) returns [] without asking the server and records zero keys."""
    assert RedisFeatureStore(client).mget([]) == []
    assert spans.stage("feature_lookup").attributes["ml.feature_store.keys"] == 0


def test_lookup_is_a_child_of_the_current_span(spans: CapturedSpans, client: redis.Redis, prefix: str) -> None:
    """Inside a request's stage the lookup span is its child."""
    with mltrace.stage("handler"):
        RedisFeatureStore(client).mget([f"{prefix}x"])
    lookup, outer = spans.stage("feature_lookup"), spans.stage("handler")
    assert lookup.parent is not None and lookup.parent.span_id == outer.context.span_id


def test_connection_errors_are_recorded_and_reraised(spans: CapturedSpans) -> None:
    """A server that is not there raises redis's own error; the span is marked ERROR."""
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=None)
    with pytest.raises(redis.ConnectionError):
        RedisFeatureStore(dead).mget(["a"])
    span = spans.stage("feature_lookup")
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes["error.type"].startswith("redis.exceptions.")
    dead.close()


def test_rejects_an_empty_name(client: redis.Redis) -> None:
    """The store name is required text."""
    with pytest.raises(TypeError, match="name"):
        RedisFeatureStore(client, name="")


async def test_async_mget_and_hgetall(spans: CapturedSpans, aclient: redis.asyncio.Redis, prefix: str) -> None:
    """The asyncio store makes the same spans as the sync one."""
    await aclient.set(f"{prefix}a", "1")
    await aclient.hset(f"{prefix}h", mapping={"f": "v"})
    store = AsyncRedisFeatureStore(aclient, name="async-features")
    assert await store.mget([f"{prefix}a", f"{prefix}b"]) == [b"1", None]
    assert await store.hgetall(f"{prefix}h") == {b"f": b"v"}
    mget, hgetall = spans.stages("feature_lookup")
    assert mget.attributes["ml.feature_store.name"] == "async-features"
    assert (mget.attributes["ml.feature_store.hits"], mget.attributes["ml.feature_store.misses"]) == (1, 1)
    assert hgetall.attributes["db.operation.name"] == "HGETALL" and hgetall.attributes["ml.feature_store.hits"] == 1


async def test_async_pipelines(spans: CapturedSpans, aclient: redis.asyncio.Redis, prefix: str) -> None:
    """hgetall_many and execute work over redis.asyncio pipelines."""
    await aclient.hset(f"{prefix}u0", mapping={"s": 1})
    store = AsyncRedisFeatureStore(aclient)
    assert await store.hgetall_many([f"{prefix}u0", f"{prefix}u1"]) == [{b"s": b"1"}, {}]
    pipe = aclient.pipeline(transaction=False)
    pipe.hgetall(f"{prefix}u0")
    assert await store.execute(pipe) == [{b"s": b"1"}]
    many, executed = spans.stages("feature_lookup")
    assert (many.attributes["ml.feature_store.hits"], many.attributes["ml.feature_store.misses"]) == (1, 1)
    assert executed.attributes["db.operation.name"] == "BATCH HGETALL"
    assert _no_key_text(many.attributes, prefix) and _no_key_text(executed.attributes, prefix)


async def test_async_connection_error(spans: CapturedSpans) -> None:
    """An asyncio connection failure is raised unchanged and marks the span ERROR."""
    dead = redis.asyncio.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=None)
    with pytest.raises(redis.ConnectionError):
        await AsyncRedisFeatureStore(dead).hgetall("a")
    assert spans.stage("feature_lookup").status.status_code is StatusCode.ERROR
    await dead.aclose()


def test_spans_equal_the_public_api_worked_by_hand(spans: CapturedSpans, client: redis.Redis, prefix: str) -> None:
    """With its attributes prebuilt per operation, a lookup span holds exactly, in order, what
    ``mltrace.stage(store=...)`` and ``mltrace.record_lookup`` give; a renamed store is seen."""
    from mltrace_redis._lookup import connection_attributes

    client.mset({f"{prefix}{i}": f"v{i}" for i in range(2)})
    keys = [f"{prefix}{i}" for i in range(3)]
    store = RedisFeatureStore(client, name="before", record_keys=True)
    store.mget(keys)
    store.name = "after"
    store.mget(keys)
    for name in ("before", "after"):
        with mltrace.stage("feature_lookup", store=name, attributes={
            **connection_attributes(client), "db.operation.name": "MGET",
        }):
            values = client.mget(keys)
            misses = sum(v is None for v in values)
            mltrace.record_lookup(keys=len(keys), hits=len(keys) - misses, misses=misses)
            mltrace.current_stage().set_attribute("ml.feature_store.key_values", keys)
    got = [list(s.attributes.items()) for s in spans.stages("feature_lookup")]
    assert got[0] == got[2] and got[1] == got[3] and got[0] != got[1]
