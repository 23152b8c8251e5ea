"""``RedisFeatureStore`` (redis-py) and ``AsyncRedisFeatureStore`` (``redis.asyncio``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._lookup import (
    connection_attributes,
    lookup_stage,
    pipeline_operation,
    record_mget,
    record_outcome,
    stage_attributes,
)

_MAX_OPERATIONS = 64  # distinct (name, operation) pairs cached per store; execute() names vary a little


class _Base:
    __slots__ = ("_attrs", "_stage_attrs", "client", "name", "record_keys")

    def __init__(self, client: Any, *, name: str = "redis", record_keys: bool = False) -> None:
        if not isinstance(name, str) or not name:
            raise TypeError("name must be a non-empty string")
        self.client = client
        self.name = name
        self.record_keys = record_keys
        self._attrs = connection_attributes(client)
        self._stage_attrs: dict[tuple[str, str], dict[str, Any]] = {}

    def _lookup(self, operation: str, batch: int | None = None) -> Any:
        """The lookup's stage span, its static attributes built once per (name, operation)."""
        key = (self.name, operation)
        attrs = self._stage_attrs.get(key)
        if attrs is None:
            attrs = stage_attributes(self.name, self._attrs, operation)
            if len(self._stage_attrs) < _MAX_OPERATIONS:
                self._stage_attrs[key] = attrs
        return lookup_stage(attrs, batch)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.client!r}, name={self.name!r})"


class RedisFeatureStore(_Base):
    """Feature lookups over a ``redis.Redis`` client, each one ``feature_lookup`` stage span.

    The span carries ``ml.feature_store.name`` (``name``), ``.keys``, ``.hits`` and ``.misses``,
    ``db.system.name="redis"``, ``db.operation.name``, ``server.address``/``port`` and
    ``db.namespace``; its duration is the lookup's latency. Key values are recorded only with
    ``record_keys=True`` (the first 16, as ``ml.feature_store.key_values``).
    """

    __slots__ = ()

    def mget(self, keys: Sequence[Any]) -> list[Any]:
        """``MGET``: one value (or ``None``) per key."""
        with self._lookup("MGET") as stage:
            values: list[Any] = self.client.mget(keys) if keys else []
            record_mget(stage, values, keys, self.record_keys)
            return values

    def hgetall(self, key: Any) -> dict[Any, Any]:
        """``HGETALL`` of one hash; an empty dict (a miss) when the key does not exist."""
        with self._lookup("HGETALL") as stage:
            row: dict[Any, Any] = self.client.hgetall(key)
            record_outcome(stage, [row], [key], self.record_keys)
            return row

    def hgetall_many(self, keys: Sequence[Any]) -> list[dict[Any, Any]]:
        """``HGETALL`` of many hashes in one round trip (a non-transactional pipeline)."""
        with self._lookup("BATCH HGETALL", batch=len(keys)) as stage:
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(key)
            rows: list[dict[Any, Any]] = pipe.execute()
            record_outcome(stage, rows, keys, self.record_keys)
            return rows

    def execute(self, pipeline: Any) -> list[Any]:
        """Run a pipeline the caller filled with read commands, as one lookup span."""
        operation, keys = pipeline_operation(pipeline.command_stack)
        with self._lookup(operation, batch=len(pipeline.command_stack)) as stage:
            results: list[Any] = pipeline.execute()
            record_outcome(stage, results, keys, self.record_keys)
            return results


class AsyncRedisFeatureStore(_Base):
    """:class:`RedisFeatureStore` for a ``redis.asyncio.Redis`` client: the same spans, awaited."""

    __slots__ = ()

    async def mget(self, keys: Sequence[Any]) -> list[Any]:
        """``MGET``: one value (or ``None``) per key."""
        async with self._lookup("MGET") as stage:
            values: list[Any] = await self.client.mget(keys) if keys else []
            record_mget(stage, values, keys, self.record_keys)
            return values

    async def hgetall(self, key: Any) -> dict[Any, Any]:
        """``HGETALL`` of one hash; an empty dict (a miss) when the key does not exist."""
        async with self._lookup("HGETALL") as stage:
            row: dict[Any, Any] = await self.client.hgetall(key)
            record_outcome(stage, [row], [key], self.record_keys)
            return row

    async def hgetall_many(self, keys: Sequence[Any]) -> list[dict[Any, Any]]:
        """``HGETALL`` of many hashes in one round trip (a non-transactional pipeline)."""
        async with self._lookup("BATCH HGETALL", batch=len(keys)) as stage:
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.hgetall(key)
            rows: list[dict[Any, Any]] = await pipe.execute()
            record_outcome(stage, rows, keys, self.record_keys)
            return rows

    async def execute(self, pipeline: Any) -> list[Any]:
        """Run a pipeline the caller filled with read commands, as one lookup span."""
        operation, keys = pipeline_operation(pipeline.command_stack)
        async with self._lookup(operation, batch=len(pipeline.command_stack)) as stage:
            results: list[Any] = await pipeline.execute()
            record_outcome(stage, results, keys, self.record_keys)
            return results
