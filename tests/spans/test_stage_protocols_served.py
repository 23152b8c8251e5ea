"""Decorated methods in an app shaped like a public model-serving skeleton, under real uvicorn.

The skeleton people copy: pydantic payloads, an API-key dependency, a service class whose
``_pre_process``/``_predict``/``_post_process`` methods are decorated, a model object with
``async def __call__``, and a streamed answer from a generator that delegates with ``yield from``.
Served by uvicorn on loopback and driven over one keep-alive connection, sampled (every span to
the local store) and sampled out (``MLTRACE_SAMPLE_RATIO=0``): the responses must be identical,
and when sampled each request is one trace whose stages record the payload, not the service.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from _servers import ServerProcess, free_port, read_spans, server_env

pytestmark = pytest.mark.slow

APP = '''
import asyncio
import os

import mltrace
from fastapi import Depends, FastAPI, Header, HTTPException
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

mltrace.configure(service_name="skeleton", exporter="local", local_path=os.environ["APP_DB"])


class HousePredictionPayload(BaseModel):
    median_income: float
    house_age: float
    rooms: float


class HousePredictionResult(BaseModel):
    median_house_value: int
    currency: str = "USD"


def validate_api_key(token: str = Header(...)) -> None:
    if token != "secret":
        raise HTTPException(status_code=401, detail="no api key")


class LinearModel:
    """A model object with async __call__ (wrapped as async by @inference)."""

    def __init__(self, weights: list[float]) -> None:
        self.weights = weights

    async def __call__(self, features: list[float]) -> float:
        await asyncio.sleep(0.03)
        if features[0] < 0:
            raise ValueError("negative income")
        return sum(w * f for w, f in zip(self.weights, features))


class HousePriceModel:
    def __init__(self) -> None:
        self.model = mltrace.inference(model="house", version="2")(LinearModel([50_000.0, 1_000.0, 2_000.0]))

    @mltrace.preprocess
    def _pre_process(self, payload: HousePredictionPayload) -> list[float]:
        return [payload.median_income, payload.house_age, payload.rooms]

    async def _predict(self, features: list[float]) -> float:
        return await self.model(features)

    @mltrace.postprocess
    def _post_process(self, prediction: float) -> HousePredictionResult:
        return HousePredictionResult(median_house_value=int(prediction))

    async def predict(self, payload: HousePredictionPayload) -> HousePredictionResult:
        features = self._pre_process(payload)
        return self._post_process(await self._predict(features))

    @mltrace.postprocess(name="render")
    def _lines(self, values: list[int]):
        sent = yield "start\\n"
        total = yield from self._numbers(values)
        yield f"total={total} sent={sent}\\n"

    @mltrace.inference(model="counter", version="1")
    def _numbers(self, values: list[int]):
        total = 0
        for v in values:
            total += v
            yield f"{v}\\n"
        return total


app = FastAPI()
app.add_middleware(mltrace.MLTraceMiddleware)
service = HousePriceModel()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/predict", response_model=HousePredictionResult, dependencies=[Depends(validate_api_key)])
async def predict(payload: HousePredictionPayload) -> HousePredictionResult:
    try:
        return await service.predict(payload)
    except ValueError as exc:
        raise HTTPException(status_code=422, detail=str(exc))


@app.get("/stream")
async def stream(n: int = 3) -> StreamingResponse:
    return StreamingResponse(service._lines(list(range(1, n + 1))), media_type="text/plain")
'''


def _drive(url: str) -> list[tuple[int, str, str]]:
    """The same requests over one keep-alive connection: (status, body, trace id) each."""
    payloads: list[dict[str, Any]] = [
        {"median_income": 3.5, "house_age": 20, "rooms": 5},
        {"median_income": -1.0, "house_age": 20, "rooms": 5},
        {"median_income": 8.0, "house_age": 2, "rooms": 9},
    ]
    out: list[tuple[int, str, str]] = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for body in payloads:
            r = client.post("/predict", json=body, headers={"token": "secret"})
            out.append((r.status_code, r.text, r.headers.get("x-trace-id", "")))
        r = client.post("/predict", json=payloads[0], headers={"token": "wrong"})
        out.append((r.status_code, r.text, r.headers.get("x-trace-id", "")))
        r = client.get("/stream", params={"n": 4})
        out.append((r.status_code, r.text, r.headers.get("x-trace-id", "")))
    return out


def _serve(tmp_path: Path, env: dict[str, str]) -> ServerProcess:
    (tmp_path / "skeleton_app.py").write_text(APP)
    port = free_port()
    return ServerProcess(
        ["uvicorn", "skeleton_app:app", "--host", "127.0.0.1", "--port", str(port)],
        port=port,
        env=server_env({"OTEL_BSP_SCHEDULE_DELAY": "100", **env}, pythonpath=[tmp_path]),
        log=tmp_path / "server.log",
        cwd=tmp_path,
    )


def test_skeleton_app_under_uvicorn_sampled_and_sampled_out(tmp_path: Path) -> None:
    runs: dict[str, list[tuple[int, str, str]]] = {}
    for mode, ratio in (("sampled", "1"), ("sampled_out", "0")):
        db = tmp_path / f"{mode}.db"
        with _serve(tmp_path, {"APP_DB": str(db), "MLTRACE_SAMPLE_RATIO": ratio}) as server:
            runs[mode] = _drive(server.url)
    # identical responses, sampled or not
    assert [(s, b) for s, b, _ in runs["sampled"]] == [(s, b) for s, b, _ in runs["sampled_out"]]
    statuses = [s for s, _, _ in runs["sampled"]]
    assert statuses == [200, 422, 200, 401, 200]
    assert runs["sampled"][4][1] == "start\n1\n2\n3\n4\ntotal=10 sent=None\n"

    trace_ids = [t for _, _, t in runs["sampled"]]
    assert len(set(trace_ids)) == 5, "one trace per request on the keep-alive connection"
    db = tmp_path / "sampled.db"
    rows = read_spans(db, until=lambda rows: set(trace_ids) <= {r["trace_id"] for r in rows} and len(rows) >= 17)
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_trace.setdefault(r["trace_id"], []).append(r)

    ok = {r["name"]: r for r in by_trace[trace_ids[0]]}
    assert set(ok) == {"POST /predict", "preprocess", "inference", "postprocess"}
    server_id = ok["POST /predict"]["span_id"]
    assert {ok[n]["parent_span_id"] for n in ("preprocess", "inference", "postprocess")} == {server_id}
    pre = ok["preprocess"]["attributes"]
    assert pre["ml.input.kind"] == "pydantic", "the payload, not the service instance"
    # the payload's fields (single-row feature values themselves are off by default: docs/privacy.md)
    assert any(k.startswith("ml.input.feature.median_income") for k in pre) or "ml.input.n_features" in pre
    assert ok["postprocess"]["attributes"]["ml.input.kind"] == "scalar"
    inf = ok["inference"]["attributes"]
    assert inf["ml.output.kind"] == "scalar", "the awaited result, not a coroutine"
    assert inf["ml.input.length"] == 3

    failed = {r["name"]: r for r in by_trace[trace_ids[1]]}
    assert failed["inference"]["attributes"]["error.type"] == "ValueError"

    streamed = {r["name"]: r for r in by_trace[trace_ids[4]]}
    assert set(streamed) == {"GET /stream", "render", "inference"}
    assert streamed["inference"]["parent_span_id"] == streamed["render"]["span_id"]
    assert streamed["inference"]["attributes"]["ml.output.stream.items"] == 4
    assert streamed["render"]["attributes"]["ml.output.stream.items"] == 6
    assert streamed["render"]["attributes"]["ml.input.kind"] == "list"

    assert not (tmp_path / "sampled_out.db").exists() or not read_spans(
        tmp_path / "sampled_out.db", until=lambda rows: False, timeout=0
    ), "sampled out: nothing stored"
