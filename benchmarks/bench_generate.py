"""TTFT and per-token figures of examples/generate under load, as clients and as spans see them.

    python benchmarks/bench_generate.py [--requests 200] [--concurrency 16] [--slots 4] [--max-tokens 64]

Starts the example under uvicorn (one worker, spans to a local store in a temporary directory),
sends ``--requests`` streamed chat completions from ``--concurrency`` concurrent httpx clients
with prompt lengths drawn from 16 / 256 / 2,048 characters (a long prompt means a long prefill),
and prints:

- client-observed TTFT and time per output token (p50 / p95 / max), and the same from the spans;
- per request, client TTFT minus span TTFT (what the network, uvicorn's parsing and the client
  add: the span cannot see those);
- ``mltrace stats``, ``mltrace slow --by ttft`` and ``mltrace show`` of one streamed request, as
  a user would run them against the store.

Bounded: the default run is 200 requests, about 10 s on a 2-core machine.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from _servers import ServerProcess, free_port, server_env  # noqa: E402

PROMPT = "Tracing a model server starts with the request. "


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def _line(name: str, values_s: list[float]) -> str:
    ms = [v * 1e3 for v in values_s]
    return f"{name:<34} p50 {_pct(ms, 50):8.2f}  p95 {_pct(ms, 95):8.2f}  max {max(ms):8.2f}  (n={len(ms)})"


async def _one(client: httpx.AsyncClient, i: int, length: int, max_tokens: int) -> dict[str, Any]:
    body = {
        "model": "tiny-char", "stream": True, "max_tokens": max_tokens, "seed": i,
        "messages": [{"role": "user", "content": (PROMPT * (length // len(PROMPT) + 1))[:length]}],
    }
    times: list[float] = []
    t0 = time.perf_counter()
    async with client.stream("POST", "/v1/chat/completions", json=body) as r:
        async for line in r.aiter_lines():
            if line.startswith("data: {") and '"content"' in line:
                times.append(time.perf_counter())
        trace_id = r.headers["x-trace-id"]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    return {
        "trace_id": trace_id, "ttft": times[0] - t0, "tokens": len(times), "prompt": length,
        "tpot": (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else None,
        "max_gap": max(gaps) if gaps else None,
    }


async def _load(url: str, n: int, concurrency: int, max_tokens: int) -> list[dict[str, Any]]:
    rng = random.Random(7)
    lengths = [rng.choice((16, 256, 2048)) for _ in range(n)]
    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:

        async def bounded(i: int) -> dict[str, Any]:
            async with sem:
                return await _one(client, i, lengths[i], max_tokens)

        return await asyncio.gather(*(bounded(i) for i in range(n)))


def _span_figures(db: Path, trace_ids: set[str]) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + 30
    while True:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            rows = conn.execute("SELECT trace_id, attributes FROM spans WHERE name = 'inference'").fetchall()
        found = {t: json.loads(a) for t, a in rows if t in trace_ids}
        if len(found) == len(trace_ids) or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def _cli(db: Path, *args: str) -> str:
    env = {**os.environ, "MLTRACE_LOCAL_PATH": str(db), "COLUMNS": "110"}
    cmd = [str(Path(sys.executable).parent / "mltrace"), *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120, check=False)
    return f"$ mltrace {' '.join(args)}\n{done.stdout}{done.stderr}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--slots", type=int, default=4, help="generations at once (the example's semaphore)")
    ap.add_argument("--max-tokens", type=int, default=64)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "traces.db"
        port = free_port()
        env = server_env(
            {"MLTRACE_EXPORTER": "local", "MLTRACE_LOCAL_PATH": str(db), "GENERATE_CONCURRENCY": str(args.slots),
             "OTEL_SERVICE_NAME": "generate-bench"},
            pythonpath=[ROOT / "examples" / "generate"],
        )
        argv = ["uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port), "--no-access-log"]
        with ServerProcess(argv, port=port, env=env, log=Path(tmp) / "server.log"):
            url = f"http://127.0.0.1:{port}"
            asyncio.run(_load(url, 8, 4, 4))  # warm up: imports, first-request set-up
            t0 = time.perf_counter()
            results = asyncio.run(_load(url, args.requests, args.concurrency, args.max_tokens))
            wall = time.perf_counter() - t0
            spans = _span_figures(db, {r["trace_id"] for r in results})
        tokens = sum(r["tokens"] for r in results)
        print(
            f"{args.requests} streams, {args.concurrency} concurrent, {args.slots} generation slots, "
            f"max_tokens {args.max_tokens}: {wall:.1f} s, {tokens / wall:,.0f} tokens/s, load average "
            f"{os.getloadavg()[0]:.2f}\n"
        )
        def span(key: str) -> list[float]:
            return [float(s.get(key, 0.0)) for s in spans.values()]

        print(_line("client TTFT (ms)", [r["ttft"] for r in results]))
        print(_line("span TTFT (ms)", span("ml.generate.time_to_first_token")))
        print(_line("span queue time (ms)", span("ml.generate.queue_time")))
        print(_line("client time per output token (ms)", [r["tpot"] for r in results if r["tpot"] is not None]))
        print(_line("span time per output token (ms)", span("ml.generate.time_per_output_token")))
        print(_line("client longest token gap (ms)", [r["max_gap"] for r in results if r["max_gap"] is not None]))
        print(_line("span longest token gap (ms)", span("ml.generate.time_per_output_token.max")))
        diffs = [
            r["ttft"] - float(spans[r["trace_id"]]["ml.generate.time_to_first_token"])
            for r in results if r["trace_id"] in spans
        ]
        print(_line("client TTFT - span TTFT (ms)", diffs))
        exact = sum(1 for r in results if spans.get(r["trace_id"], {}).get("ml.generate.output_tokens") == r["tokens"])
        print(f"tokens counted exactly on {exact} of {len(results)} spans\n")
        print(_cli(db, "stats", "--service", "generate-bench", "--since", "1h"))
        print(_cli(db, "slow", "--by", "ttft", "--service", "generate-bench", "--since", "1h", "--limit", "5"))
        one = min(results, key=lambda r: abs(r["ttft"] - statistics.median(x["ttft"] for x in results)))
        print(_cli(db, "show", one["trace_id"]))


if __name__ == "__main__":
    main()
