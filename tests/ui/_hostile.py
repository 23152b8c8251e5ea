"""Traffic whose spans carry hostile strings, written to a local store (run as a script, in its own
process, because ``mltrace.configure`` sets the process's tracer provider).

    python tests/ui/_hostile.py STORE.db SERVICE N

Span attributes are client-controlled: a header, a customer id, a model version read from a
request. Each payload below must show up in ``mltrace ui`` as text, never as markup.
"""

from __future__ import annotations

import asyncio
import sys

import httpx
from fastapi import FastAPI

import mltrace

SCRIPT = "<script>window.__pwned = 1; alert('xss')</script>"
ONERROR = '"onerror=alert(1) x="'
IMG = "<img src=x onerror=alert(2)>"
PAYLOADS = (SCRIPT, ONERROR, IMG)


def build_app() -> FastAPI:
    @mltrace.inference(model="m<b>odel", version=ONERROR)
    def predict(values: dict[str, float]) -> str:
        return SCRIPT

    app = FastAPI()
    app.add_middleware(mltrace.MLTraceMiddleware)

    @app.post("/predict")
    async def handle(body: dict[str, object]) -> dict[str, str]:
        with mltrace.stage(IMG) as s:  # a user's own stage, named by a hostile string
            s.set_attribute("app.note", SCRIPT)
            s.set_attribute(f"app.{IMG}", ONERROR)
            await asyncio.sleep(0.002 if body.get("slow") else 0)
        label = predict({"a": 1.0, "b": 2.0})
        mltrace.current_stage().set_attribute("app.customer", str(body.get("customer")))
        return {"label": label}

    return app


async def send(n: int) -> None:
    transport = httpx.ASGITransport(app=build_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://hostile.local") as client:
        for i in range(n):
            r = await client.post("/predict", json={"customer": SCRIPT, "slow": i % 5 == 0})
            r.raise_for_status()


def main() -> None:
    path, service, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    handle = mltrace.configure(service_name=service, exporter="local", local_path=path)
    asyncio.run(send(n))
    if not handle.force_flush(10.0):
        raise SystemExit("spans not flushed")


if __name__ == "__main__":
    main()
