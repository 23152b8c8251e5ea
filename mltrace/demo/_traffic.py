"""A realistic mix of demo traffic, sent in-process through ``httpx.ASGITransport`` (no server).

Most requests are small batches from warm customers; some are large batches, some come from the
cold customers whose features miss the cache, some carry drifted inputs, and one input is sent
three times (a client retrying) so that ``lineage --fingerprint`` has something to find.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import numpy as np

from ._app import COLD_CUSTOMERS, LARGE_BATCH
from ._model import DemoModel

LARGE_SHARE = 0.1
COLD_SHARE = 0.1
DRIFT_SHARE = 0.1
DRIFTED_FEATURES = 4


@dataclass
class Planned:
    body: dict[str, Any]
    large: bool
    cold: bool
    drifted: bool


@dataclass
class Sent:
    """What was sent, with the trace id each response reported."""

    trace_ids: list[str] = field(default_factory=list)
    large: list[str] = field(default_factory=list)
    cold: list[str] = field(default_factory=list)
    drifted: list[str] = field(default_factory=list)
    repeated: list[str] = field(default_factory=list)
    failed: int = 0


def plan(model: DemoModel, n: int, seed: int = 0) -> list[Planned]:
    """``n`` requests (deterministic for a seed); the first input is repeated twice later on."""
    rng = np.random.default_rng(seed)
    warm = [f"c-{i:02d}" for i in range(40) if f"c-{i:02d}" not in COLD_CUSTOMERS]
    cold = sorted(COLD_CUSTOMERS)
    X = model.training
    spread = X.std(axis=0)
    out: list[Planned] = []
    for _ in range(n):
        large = rng.random() < LARGE_SHARE
        is_cold = rng.random() < COLD_SHARE
        drifted = rng.random() < DRIFT_SHARE
        rows = int(rng.integers(LARGE_BATCH, 2 * LARGE_BATCH + 1)) if large else int(rng.integers(1, 9))
        x = X[rng.integers(0, len(X), size=rows)] + rng.normal(scale=0.05, size=(rows, X.shape[1])) * spread
        if drifted:
            cols = rng.choice(X.shape[1], size=DRIFTED_FEATURES, replace=False)
            x[:, cols] = x[:, cols] * rng.uniform(2.5, 4.0) + 3 * spread[cols]
        customer = str(rng.choice(cold if is_cold else warm))
        body = {"customer_id": customer, "rows": np.round(x, 4).tolist()}
        out.append(Planned(body, large, is_cold, drifted))
    if n >= 10:
        for i in (n // 3, 2 * n // 3):
            out[i] = Planned(out[0].body, out[0].large, out[0].cold, out[0].drifted)
    return out


async def _send(app: Any, requests: list[Planned], on_sent: Callable[[int], None] | None) -> Sent:
    sent = Sent()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://demo.local") as client:
        for i, p in enumerate(requests):
            response = await client.post("/predict", json=p.body)
            trace_id = response.headers.get("x-trace-id")
            if response.status_code != 200 or not trace_id:
                sent.failed += 1
                continue
            sent.trace_ids.append(trace_id)
            for flag, bucket in ((p.large, sent.large), (p.cold, sent.cold), (p.drifted, sent.drifted)):
                if flag:
                    bucket.append(trace_id)
            if p.body is requests[0].body:
                sent.repeated.append(trace_id)
            if on_sent is not None:
                on_sent(i + 1)
    return sent


def send(app: Any, requests: list[Planned], on_sent: Callable[[int], None] | None = None) -> Sent:
    """Send every planned request to ``app`` in order; returns the trace ids by kind."""
    return asyncio.run(_send(app, requests, on_sent))
