"""The feature service of the multi-service example: ``GET /features/{customer_id}`` (port 8002).

Rows live in Redis when ``REDIS_URL`` is set (seeded at start-up with the breast-cancer data set,
keys ``mltrace-example:features:c-<n>``), else in memory. Each lookup is one ``feature_lookup``
stage span (store name, keys asked for, hits, misses, a summary of the row returned) under the
request's server span, which continues the gateway's trace from the incoming headers.

    python examples/multiservice/features.py        # HOST, PORT, REDIS_URL, MLTRACE_EXPORTER, OTEL_*
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from fastapi import FastAPI
from sklearn.datasets import load_breast_cancer

import mltrace
from mltrace import semconv

KEY_PREFIX = "mltrace-example:features:"
SEEDED_ROWS = 100


class FeatureStore:
    """Feature rows by customer id, in Redis (``redis_url``) or in memory; the column means on a miss."""

    def __init__(self, redis_url: str | None) -> None:
        data = load_breast_cancer()
        self.names = [str(n) for n in data.feature_names]
        self.defaults: list[float] = data.data.mean(axis=0).tolist()
        self._seed = {f"c-{i}": data.data[i].tolist() for i in range(SEEDED_ROWS)}
        self._rows: dict[str, list[float]] = {}
        self._redis: Any = None
        self.name = "memory"
        if redis_url:
            try:
                import redis.asyncio as aioredis
            except ImportError:  # pragma: no cover - depends on the environment
                raise SystemExit("REDIS_URL is set but redis-py is missing: pip install redis") from None
            self._redis = aioredis.from_url(redis_url)
            self.name = "redis"

    async def open(self) -> None:
        if self._redis is None:
            self._rows.update(self._seed)
            return
        await self._redis.mset({KEY_PREFIX + k: json.dumps(v) for k, v in self._seed.items()})

    async def close(self) -> None:
        if self._redis is not None:
            await self._redis.aclose()

    async def _get(self, customer_id: str) -> list[float] | None:
        if self._redis is None:
            return self._rows.get(customer_id)
        raw = await self._redis.get(KEY_PREFIX + customer_id)
        return None if raw is None else list(json.loads(raw))

    @mltrace.feature_lookup(store="features")
    async def lookup(self, customer_id: str) -> np.ndarray:
        row = await self._get(customer_id)
        mltrace.record_lookup(hits=int(row is not None), misses=int(row is None), keys=1)
        mltrace.current_stage().set_attributes({semconv.ML_FEATURE_STORE_NAME: self.name})
        return np.asarray(self.defaults if row is None else row, dtype=np.float64)


def create_app(redis_url: str | None = None) -> FastAPI:
    """The app; ``redis_url`` defaults to ``REDIS_URL`` (in-memory rows when neither is set)."""
    mltrace.configure(service_name=os.environ.get("OTEL_SERVICE_NAME") or "features")
    store = FeatureStore(redis_url if redis_url is not None else os.environ.get("REDIS_URL"))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await store.open()
        try:
            yield
        finally:
            await store.close()

    app = FastAPI(title="mltrace example: feature service", lifespan=lifespan)
    app.add_middleware(mltrace.MLTraceMiddleware)

    @app.get("/features/{customer_id}")
    async def features(customer_id: str) -> dict[str, Any]:
        row = await store.lookup(customer_id)
        return {"customer_id": customer_id, "names": store.names, "values": row.tolist(), "store": store.name}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok", "store": store.name}

    return app


if __name__ == "__main__":
    import uvicorn

    uvicorn.run(create_app(), host=os.environ.get("HOST", "127.0.0.1"), port=int(os.environ.get("PORT", "8002")))
