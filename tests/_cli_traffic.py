"""Known traffic with planted slowness, for the investigation tests (local store and e2e).

The app is traced the way a user traces theirs (middleware and stage decorators). Planted:
- inference sleeps 20 ms when the input has 512 values or more (``ml.input.size``);
- feature lookups miss the cache, and sleep 15 ms, for the cold users u-3 and u-7
  (``ml.feature_store.misses``).
One input is sent three times (same ``ml.input.fingerprint``); drifted requests carry a high
``ml.drift.score``.

In-process: :func:`seed_local` writes the captured spans into a local store under a chosen
service name. As a script it sends the traffic with a real exporter and prints what it sent:

    python tests/_cli_traffic.py --exporter jaeger --endpoint http://127.0.0.1:4317 --service S
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from fastapi import FastAPI

import mltrace

COLD_USERS = frozenset({"u-3", "u-7"})
LARGE = 512
INFERENCE_SLOW_S = 0.02
CACHE_MISS_S = 0.015


@dataclass
class Sent:
    trace_ids: list[str] = field(default_factory=list)
    large: list[str] = field(default_factory=list)
    cold: list[str] = field(default_factory=list)
    repeated: list[str] = field(default_factory=list)
    drifted: list[str] = field(default_factory=list)


def build_app() -> FastAPI:
    @mltrace.feature_lookup(store="redis")
    async def fetch(user: str) -> list[float]:
        miss = user in COLD_USERS
        await asyncio.sleep(CACHE_MISS_S if miss else 0)
        mltrace.record_lookup(hits=int(not miss), misses=int(miss), keys=1)
        return [1.0]

    @mltrace.preprocess
    def prepare(values: list[float]) -> np.ndarray:
        return np.asarray(values, dtype=np.float64)

    @mltrace.inference(model="toy", version="3")
    def predict(x: np.ndarray) -> float:
        if x.size >= LARGE:
            time.sleep(INFERENCE_SLOW_S)
        return float(x.mean())

    app = FastAPI()
    app.add_middleware(mltrace.MLTraceMiddleware)

    @app.post("/predict")
    async def endpoint(body: dict[str, Any]) -> dict[str, Any]:
        await fetch(body["user"])
        x = prepare(body["values"])
        if body.get("drifted"):
            mltrace.current_stage().set_attribute("app.drifted", True)
        score = predict(x)
        with mltrace.stage("postprocess") as s:
            label = "high" if score > 0.5 else "low"
            s.set_attributes({"ml.output.prediction": label, "ml.output.confidence": round(abs(score - 0.5) + 0.5, 3)})
            s.set_attribute("ml.drift.score", 0.9 if body.get("drifted") else 0.05)
        return {"label": label}

    return app


def plan(n: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        size = rng.choice((600, 800)) if rng.random() < 0.12 else rng.choice((8, 16, 32, 64))
        out.append(
            {
                "user": f"u-{rng.randrange(10)}",
                "values": [round(rng.random(), 4) for _ in range(size)],
                "drifted": rng.random() < 0.1,
            }
        )
    for i in (n // 3, 2 * n // 3):
        out[i] = out[0]
    return out


async def _send(app: FastAPI, bodies: list[dict[str, Any]]) -> Sent:
    sent = Sent()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        for body in bodies:
            response = await client.post("/predict", json=body)
            response.raise_for_status()
            tid = response.headers["x-trace-id"]
            sent.trace_ids.append(tid)
            if len(body["values"]) >= LARGE:
                sent.large.append(tid)
            if body["user"] in COLD_USERS:
                sent.cold.append(tid)
            if body is bodies[0]:
                sent.repeated.append(tid)
            if body["drifted"]:
                sent.drifted.append(tid)
    return sent


def send(n: int = 150, seed: int = 7) -> Sent:
    return asyncio.run(_send(build_app(), plan(n, seed)))


def seed_local(path: Path, service: str, n: int = 150) -> Sent:
    """Drive the app in this process and write its spans to a local store as ``service``."""
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import ReadableSpan

    from mltrace.export import LocalStore
    from mltrace.testing import capture_spans

    with capture_spans() as captured:
        sent = send(n)
    resource = Resource.create({"service.name": service, "ml.model.name": "toy"})
    ours = set(sent.trace_ids)
    spans = [
        ReadableSpan(
            name=s.name, context=s.context, parent=s.parent, resource=resource, attributes=s.attributes,
            events=s.events, links=s.links, kind=s.kind, instrumentation_scope=s.instrumentation_scope,
            status=s.status, start_time=s.start_time, end_time=s.end_time,
        )
        for s in captured.spans
        if s.context is not None and format(s.context.trace_id, "032x") in ours
    ]
    store = LocalStore(path)
    store.write(spans)
    store.close()
    return sent


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--exporter", required=True)
    parser.add_argument("--endpoint")
    parser.add_argument("--service", required=True)
    parser.add_argument("--requests", type=int, default=150)
    args = parser.parse_args()
    handle = mltrace.configure(service_name=args.service, exporter=args.exporter, endpoint=args.endpoint)
    sent = send(args.requests)
    ok = handle.shutdown(timeout_s=30)
    json.dump({**asdict(sent), "flushed": ok}, sys.stdout)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
