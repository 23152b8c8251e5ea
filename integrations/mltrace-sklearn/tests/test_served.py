"""traced_model() inside a served app, the way users run it: real uvicorn on loopback, a keep-alive
client, mltrace's middleware with deferred spans (the default), spans read back from the local
store; and a differential: the same requests against the same app without mltrace answer alike."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx")  # with mltrace[test], as fastapi and uvicorn below
ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT / "tests"))
from _servers import ServerProcess, free_port, read_spans, server_env  # noqa: E402

APP = '''
import os
import numpy as np
from fastapi import FastAPI
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

TRACED = os.environ["APP_TRACED"] == "1"
rng = np.random.default_rng(0)
X = rng.normal(size=(300, 6))
y = (X[:, 0] + X[:, 1] > 0).astype(int)
pipe = make_pipeline(StandardScaler(), PCA(n_components=4), LogisticRegression()).fit(X, y)
app = FastAPI()
if TRACED:
    import mltrace
    from mltrace_sklearn import traced_model

    mltrace.configure(service_name="served-sklearn", exporter="local", local_path=os.environ["DB"])
    app.add_middleware(mltrace.MLTraceMiddleware)
    model = traced_model(pipe, name="churn", version="3")
else:
    model = pipe


@app.post("/predict")
async def predict(body: dict) -> dict:
    x = np.asarray(body["features"], dtype=np.float64).reshape(1, -1)
    proba = model.predict_proba(x)[0]
    return {"proba": [float(p) for p in proba], "label": int(model.predict(x)[0])}


@app.get("/health")
async def health() -> dict:
    return {"ok": True}
'''

BODIES = [{"features": [((i * 7 + j * 3) % 11 - 5) / 2.5 for j in range(6)]} for i in range(12)]


def _serve(tmp: Path, traced: bool) -> ServerProcess:
    name = "traced" if traced else "plain"
    folder = tmp / name
    folder.mkdir()
    (folder / "app.py").write_text(APP)
    port = free_port()
    env = server_env({"APP_TRACED": "1" if traced else "0", "DB": str(folder / "traces.db"),
                      "OTEL_BSP_SCHEDULE_DELAY": "100"}, pythonpath=[folder])
    argv = [sys.executable, "-m", "uvicorn", "app:app", "--host", "127.0.0.1", "--port", str(port)]
    return ServerProcess(argv, port=port, env=env, log=folder / "server.log", cwd=folder)


def _answers(url: str) -> list[Any]:
    with httpx.Client(base_url=url, timeout=30) as client:  # one keep-alive connection
        return [(r.status_code, r.json()) for r in (client.post("/predict", json=b) for b in BODIES)]


def test_served_pipeline_spans_and_identical_answers(tmp_path: Path) -> None:
    """Each request's trace holds the server span, two inference stage spans (predict_proba,
    predict) under it and three step spans under each; the answers equal the app's without mltrace."""
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    with _serve(tmp_path, traced=False) as plain:
        expected = _answers(plain.url)
    with _serve(tmp_path, traced=True) as served:
        got = _answers(served.url)
        db = tmp_path / "traced" / "traces.db"
        rows = read_spans(db, lambda rows: sum(r["name"] == "inference" for r in rows) >= 2 * len(BODIES))
    assert got == expected
    by_trace: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        by_trace.setdefault(row["trace_id"], []).append(row)
    traces = [spans for spans in by_trace.values() if any(s["name"] == "inference" for s in spans)]
    assert len(traces) == len(BODIES)
    for spans in traces:
        server = [s for s in spans if s["kind"] in ("SERVER", "SpanKind.SERVER", 2, "2")]
        assert len(server) == 1, [(s["name"], s["kind"]) for s in spans]
        stages = [s for s in spans if s["name"] == "inference"]
        assert len(stages) == 2 and all(s["parent_span_id"] == server[0]["span_id"] for s in stages)
        assert {s["attributes"]["ml.model.method"] for s in stages} == {"predict_proba", "predict"}
        for stage in stages:
            assert stage["attributes"]["ml.model.name"] == "churn"
            assert stage["attributes"]["ml.input.n_features"] == 6
            steps = sorted((s for s in spans if s["parent_span_id"] == stage["span_id"]),
                           key=lambda s: s["attributes"]["ml.pipeline.step.index"])
            assert [s["name"] for s in steps] == [
                "sklearn.standardscaler", "sklearn.pca", "sklearn.logisticregression",
            ]
