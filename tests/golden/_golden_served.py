"""The golden app served by uvicorn: spans to a local store at ``$APP_DB``
(``uvicorn _golden_served:app``)."""

from __future__ import annotations

import os

from _golden_app import build

import mltrace

mltrace.configure(service_name="golden", exporter="local", local_path=os.environ["APP_DB"])
app = build()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"ok": "yes"}
