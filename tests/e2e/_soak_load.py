"""Closed-loop load for the soak test: ``--concurrency`` requests always in flight for ``--seconds``.

Prints one JSON line: requests sent, 200s, other statuses, client errors, latency percentiles (ms).
Closed loop means the rate found is the highest the server sustains on this machine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections import Counter

import httpx


async def worker(client: httpx.AsyncClient, url: str, until: float, out: Counter[str], lat: list[float]) -> None:
    rng = random.Random()
    while time.monotonic() < until:
        body = {"user": rng.randrange(10_000), "x": [rng.gauss(0, 1) for _ in range(32)]}
        start = time.perf_counter()
        try:
            r = await client.post(url, json=body)
            out["200" if r.status_code == 200 else f"status_{r.status_code}"] += 1
        except httpx.HTTPError as exc:
            out[f"error_{type(exc).__name__}"] += 1
        lat.append((time.perf_counter() - start) * 1000)


async def run(url: str, seconds: float, concurrency: int) -> dict[str, object]:
    out: Counter[str] = Counter()
    lat: list[float] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=4)
    async with httpx.AsyncClient(limits=limits, timeout=30) as client:
        until = time.monotonic() + seconds
        start = time.monotonic()
        await asyncio.gather(*(worker(client, url, until, out, lat) for _ in range(concurrency)))
        took = time.monotonic() - start
    lat.sort()

    def pct(q: float) -> float:
        return round(lat[min(len(lat) - 1, int(q * len(lat)))], 2) if lat else 0.0

    return {"sent": len(lat), "seconds": took, "results": dict(out), "p50_ms": pct(0.5), "p99_ms": pct(0.99)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    print(json.dumps(asyncio.run(run(args.url, args.seconds, args.concurrency))))


if __name__ == "__main__":
    main()
