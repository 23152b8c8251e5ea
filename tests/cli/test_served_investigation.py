"""A third-party-shaped FastAPI app under real uvicorn, then the real ``mltrace`` CLI on its store.

The app is shaped like the public model-serving skeletons people copy: pydantic payloads, a model
class with ``_pre_process``/``_predict``/``_post_process`` methods, an API-key dependency, a
drift monitor whose profile has no outputs. One keep-alive ``httpx.Client`` sends known traffic
(good requests, a batch, 422s, 401s, a failing request whose message holds an email); the tests
then read the local store the way a user does: the SQLite file's bytes, and ``mltrace show``,
``stats``, ``lineage`` and ``slow`` (in-process through ``tests/_cli_run.py``, and the installed
command piped, for the table width).

Regression tests for issue 11 items 5, 6, 8 and 12 and the newcomer-friction list.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from _cli_run import run, run_json
from _servers import VENV_BIN, ServerProcess, free_port, read_spans, server_env

SSN = "123-45-6789"
EMAIL = "jane.doe@example.com"
SALARY = 85123.5
AGE = 47
PERSON = {"age": AGE, "salary": SALARY, "ssn": SSN, "email": EMAIL, "zip_code": 75011}

APP = """
import os

import numpy as np
from fastapi import Depends, FastAPI, Header, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

import mltrace
from mltrace.drift import DriftMonitor, ReferenceProfile

mltrace.configure(service_name="skeleton", exporter="local", local_path=os.environ["APP_DB"])


class Payload(BaseModel):
    age: int
    salary: float
    ssn: str
    email: str
    zip_code: int


class Result(BaseModel):
    prediction: str
    confidence: float


rng = np.random.default_rng(0)
# built without outputs=: output drift is optional
PROFILE = ReferenceProfile.from_data({"age": rng.normal(45, 10, 4000), "salary": rng.normal(80000, 9000, 4000)})
MONITOR = DriftMonitor(PROFILE, window=200)


class Model:
    @mltrace.preprocess
    def _pre_process(self, payload: dict) -> dict:
        if payload["zip_code"] == 0:
            raise ValueError(f"no customer record for {payload['email']}")
        return {"age": payload["age"], "salary": payload["salary"]}

    @mltrace.inference(model="churn", version="3", drift=MONITOR)
    def _predict(self, features) -> np.ndarray:
        rows = features if isinstance(features, list) else [features]
        p = np.array([[1 / (1 + np.exp((r["age"] - 45) / 10))] for r in rows])
        return np.hstack([p, 1 - p])

    @mltrace.postprocess
    def _post_process(self, probs: np.ndarray) -> Result:
        return Result(prediction="stay" if probs[0, 0] > 0.5 else "churn", confidence=float(probs[0].max()))


MODEL = Model()
app = FastAPI()
app.add_middleware(mltrace.MLTraceMiddleware)


@app.exception_handler(ValueError)
async def failed(request: Request, exc: ValueError) -> JSONResponse:
    return JSONResponse({"error": "prediction failed"}, status_code=500)


def api_key(x_api_key: str | None = Header(default=None)) -> None:
    if x_api_key != "secret-key-1":
        raise HTTPException(status_code=401, detail="bad key")


@app.get("/health")
def health() -> dict:
    return {"ok": True}


@app.post("/predict", dependencies=[Depends(api_key)])
def predict(payload: Payload) -> Result:
    return MODEL._post_process(MODEL._predict(MODEL._pre_process(payload.model_dump())))


@app.post("/predict_batch", dependencies=[Depends(api_key)])
def predict_batch(payloads: list[Payload]) -> Result:
    features = [MODEL._pre_process(p.model_dump()) for p in payloads]
    return MODEL._post_process(MODEL._predict(features))
"""


@dataclass
class Served:
    db: Path
    source: str
    ok: list[str] = field(default_factory=list)
    unprocessable: list[str] = field(default_factory=list)
    unauthorized: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    batch: str = ""


def _serve(tmp: Path, extra_env: dict[str, str]) -> Served:
    """Start the app under uvicorn, send the traffic over one keep-alive client, stop it."""
    (tmp / "skeleton_app.py").write_text(APP)
    db = tmp / "traces.db"
    port = free_port()
    env = server_env({"APP_DB": str(db), **extra_env}, pythonpath=[tmp])
    served = Served(db=db, source=f"local://{db}")
    argv = [str(VENV_BIN / "uvicorn"), "skeleton_app:app", "--host", "127.0.0.1", "--port", str(port)]
    key = {"x-api-key": "secret-key-1"}
    with ServerProcess(argv, port=port, env=env, log=tmp / "server.log", cwd=tmp) as server:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for i in range(12):
                r = client.post("/predict", json={**PERSON, "age": 30 + i}, headers=key)
                assert r.status_code == 200, r.text
                served.ok.append(r.headers["x-trace-id"])
            for _ in range(3):
                r = client.post("/predict", json={"age": "old"}, headers=key)
                assert r.status_code == 422
                served.unprocessable.append(r.headers["x-trace-id"])
            for _ in range(2):
                r = client.post("/predict", json=PERSON)
                assert r.status_code == 401
                served.unauthorized.append(r.headers["x-trace-id"])
            r = client.post("/predict", json={**PERSON, "zip_code": 0}, headers=key)
            assert r.status_code == 500
            batch = [{**PERSON, "age": 35 + (i % 20), "salary": 72000.0 + 800 * i} for i in range(40)]
            r = client.post("/predict_batch", json=batch, headers=key)
            assert r.status_code == 200, r.text
            served.batch = r.headers["x-trace-id"]
        everything = {*served.ok, *served.unprocessable, *served.unauthorized, served.batch}

        def complete(rows: list[dict[str, Any]]) -> bool:
            failed = {r["trace_id"] for r in rows if r["attributes"].get("http.response.status_code") == 500}
            return {r["trace_id"] for r in rows} >= everything and len(failed) == 1

        rows = read_spans(db, complete, timeout=30)
    served.failed = list({r["trace_id"] for r in rows if r["attributes"].get("http.response.status_code") == 500})
    assert len(served.failed) == 1
    return served


@pytest.fixture(scope="module")
def defaults(tmp_path_factory: pytest.TempPathFactory) -> Served:
    """The app with mltrace's defaults: no payload capture, feature values not recorded."""
    return _serve(tmp_path_factory.mktemp("defaults"), {})


@pytest.fixture(scope="module")
def opted_in(tmp_path_factory: pytest.TempPathFactory) -> Served:
    """Feature values opted in, payload capture on, ``**.salary`` denied by the capture rules."""
    return _serve(
        tmp_path_factory.mktemp("opted_in"),
        {"MLTRACE_FEATURE_VALUES": "true", "MLTRACE_CAPTURE_PAYLOADS": "true", "MLTRACE_PAYLOAD_DENY": "**.salary"},
    )


def _rows(db: Path) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        conn.row_factory = sqlite3.Row
        rows = [dict(r) for r in conn.execute("SELECT * FROM spans")]
    for r in rows:
        r["attributes"] = json.loads(r["attributes"])
        r["events"] = json.loads(r["events"])
    return rows


def _store_bytes(db: Path) -> bytes:
    return b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))


# -- item 8: the capture rules cover every attribute mltrace writes -------------------------------
@pytest.mark.parametrize("which", ["defaults", "opted_in"])
def test_denied_and_personal_values_reach_no_span(which: str, request: pytest.FixtureRequest) -> None:
    """No SSN, email or denied salary anywhere in the store's bytes: attributes, events, statuses, payloads."""
    served: Served = request.getfixturevalue(which)
    raw = _store_bytes(served.db)
    assert raw, "empty store"
    for secret in (SSN.encode(), EMAIL.encode(), repr(SALARY).encode(), b"72800.0"):
        assert secret not in raw, (which, secret)
    denied = ["ssn"] if which == "defaults" else ["ssn", "salary"]  # a default key; MLTRACE_PAYLOAD_DENY
    seen = 0
    for row in _rows(served.db):
        for key, value in row["attributes"].items():
            for name in denied:
                if key.endswith(f".feature.{name}"):
                    assert value == "[REDACTED]", (key, value)
                    seen += 1
                assert f".feature.{name}." not in key, key  # no statistics of a denied feature either
    assert seen >= 13  # every preprocess input (and the batch) said it was redacted


def test_feature_values_are_off_by_default(defaults: Served) -> None:
    """With no opt-in, a single row's feature values are not on spans; what describes the row stays."""
    rows = _rows(defaults.db)
    pre = [r for r in rows if r["attributes"].get("ml.stage") == "preprocess" and r["trace_id"] in defaults.ok]
    assert pre
    for r in pre:
        attrs = r["attributes"]
        assert "ml.input.feature.age" not in attrs and "ml.input.feature.zip_code" not in attrs
        assert attrs["ml.input.feature.email.length"] == len(EMAIL)  # a string's length, never its text
        assert attrs["ml.input.n_features"] == 5 and attrs["ml.input.fingerprint"]


def test_opted_in_values_still_obey_the_rules(opted_in: Served) -> None:
    """MLTRACE_FEATURE_VALUES=true records values, except denied ones; batch statistics of a denied column go too."""
    rows = _rows(opted_in.db)
    pre = [r["attributes"] for r in rows if r["attributes"].get("ml.stage") == "preprocess"]
    assert any(a.get("ml.input.feature.age") == AGE for a in pre) or any(
        isinstance(a.get("ml.input.feature.age"), int) for a in pre
    )
    assert all(a.get("ml.input.feature.salary", "[REDACTED]") == "[REDACTED]" for a in pre)
    assert all(a.get("ml.input.feature.ssn", "[REDACTED]") == "[REDACTED]" for a in pre)
    batch = next(
        r["attributes"]
        for r in rows
        if r["trace_id"] == opted_in.batch and r["attributes"].get("ml.stage") == "inference"
    )
    assert "ml.input.feature.age.mean" in batch  # statistics over rows stay
    assert batch["ml.input.feature.salary"] == "[REDACTED]" and "ml.input.feature.salary.mean" not in batch


def test_exception_messages_are_redacted(defaults: Served) -> None:
    """A stage error whose message holds an email records the message with the email redacted."""
    rows = [r for r in _rows(defaults.db) if r["trace_id"] in defaults.failed and r["events"]]
    messages = [e["attributes"].get("exception.message", "") for r in rows for e in r["events"]]
    assert any("no customer record for [REDACTED]" in m for m in messages), messages
    assert all(EMAIL not in (r["status_message"] or "") for r in rows)


# -- item 5: a monitor without outputs records no error -------------------------------------------
def test_drift_without_outputs_records_no_error_event(defaults: Served) -> None:
    """The inference spans carry drift scores and no "drift output" error event."""
    inference = [r for r in _rows(defaults.db) if r["attributes"].get("ml.stage") == "inference"]
    assert len(inference) == 13
    for r in inference:
        assert "ml.drift.score" in r["attributes"]
        assert not [e for e in r["events"] if e["name"] == "mltrace.error"], r["events"]


# -- batches: the drift score of a batch is its mean row, the worst beside it ---------------------
def test_batch_drift_score_does_not_saturate(defaults: Served) -> None:
    """A reference-like batch scores mid-range with ml.drift.max_score and unusual_share beside it."""
    attrs = next(
        r["attributes"]
        for r in _rows(defaults.db)
        if r["trace_id"] == defaults.batch and r["attributes"].get("ml.stage") == "inference"
    )
    assert attrs["ml.input.n_rows"] == 40
    assert 0.1 < attrs["ml.drift.score"] < 0.9 and attrs["ml.drift.max_score"] >= attrs["ml.drift.score"]
    assert 0.0 <= attrs["ml.drift.unusual_share"] < 0.5


# -- item 12: HTTP status in show, 4xx and 5xx apart in stats -------------------------------------
def test_show_gives_the_http_status(capsys: pytest.CaptureFixture[str], defaults: Served) -> None:
    """show prints the status (header and server span), --all too, and --json has ``status``."""
    tid = defaults.unprocessable[0]
    for extra in ((), ("--all",)):
        code, out, err = run(capsys, "show", tid, "--source", defaults.source, *extra)
        assert code == 0, err
        assert "HTTP 422" in out.splitlines()[0] + out.splitlines()[1]
        assert "http.response.status_code=422" in out
    assert run_json(capsys, "show", tid, "--source", defaults.source)["status"] == 422
    assert run_json(capsys, "show", defaults.ok[0], "--source", defaults.source)["status"] == 200


def test_stats_counts_4xx_and_5xx_apart(capsys: pytest.CaptureFixture[str], defaults: Served) -> None:
    """stats counts 4xx (422, 401) and 5xx apart, in --json and on the terminal."""
    data = run_json(capsys, "stats", "--source", defaults.source, "--since", "1h")
    status = data["status"]
    ok = status["2xx"]  # 13 predictions, and the readiness probe's GET /health
    assert status["4xx"] == 5 and status["5xx"] == 1 and ok >= 13
    assert status["codes"] == {"200": ok, "422": 3, "401": 2, "500": 1}
    code, out, err = run(capsys, "stats", "--source", defaults.source, "--since", "1h", "--by", "http.route")
    assert code == 0, err
    text = " ".join(out.split())
    assert f"HTTP status: 2xx {ok} · 4xx 5 (422 ×3, 401 ×2) · 5xx 1 (500 ×1)" in text
    by = run_json(capsys, "stats", "--source", defaults.source, "--since", "1h", "--by", "http.response.status_code")
    groups = {g["value"]: g for g in by["by"]["groups"]}
    assert groups["422"]["status_4xx"] == 3 and groups["500"]["status_5xx"] == 1


# -- item 6: lineage keeps the pydantic result and the array apart --------------------------------
def test_lineage_lists_each_output_on_its_own_line(capsys: pytest.CaptureFixture[str], defaults: Served) -> None:
    """The postprocess result and the inference array are two outputs, two lines, in text and --json."""
    tid = defaults.ok[0]
    data = run_json(capsys, "lineage", tid, "--source", defaults.source)
    stages = [o["stage"] for o in data["outputs"]]
    assert stages == ["postprocess", "inference"]
    post, infer = (o["summary"] for o in data["outputs"])
    assert post["kind"] == "pydantic" and post["type"].endswith("Result") and "shape" not in post
    assert infer["kind"] == "ndarray" and "type" not in infer
    assert data["output"]["kind"] == "pydantic"  # the merged field stays for existing readers
    code, out, err = run(capsys, "lineage", tid, "--source", defaults.source)
    assert code == 0, err
    lines = out.splitlines()
    first = next(i for i, line in enumerate(lines) if "(from postprocess)" in line)
    second = next(i for i, line in enumerate(lines) if "(from inference)" in line)
    assert second > first
    assert "kind=ndarray" not in " ".join(lines[first:second]) and "kind=pydantic" not in " ".join(lines[second:])
    assert "score: how unusual this request is" in " ".join(out.split())  # score vs alert, where shown


# -- newcomer friction ---------------------------------------------------------------------------
def test_slow_never_cuts_a_number_when_piped(defaults: Served) -> None:
    """The installed `mltrace slow`, piped at 80 and 60 columns: whole numbers and ids, whole columns dropped."""
    data = run_slow_json(defaults.source)
    listed = [t["trace_id"] for t in data["traces"]]
    assert listed
    for columns in ("80", "60"):
        env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRACE_")}
        env["COLUMNS"] = columns
        proc = subprocess.run(
            [str(VENV_BIN / "mltrace"), "slow", "--source", defaults.source, "--since", "1h"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        table: dict[str, str] = {}
        for line in proc.stdout.splitlines():  # the first line starting with an id is its row
            if line.split()[:1] and line.split()[0] in listed:
                table.setdefault(line.split()[0], line)
        assert set(table) == set(listed), proc.stdout
        for t in data["traces"]:
            row = table[t["trace_id"]]
            assert "…" not in row and len(row.rstrip()) <= int(columns), row
            total = row.split()[1]  # the total is never dropped, and whole
            assert total in (f"{t['duration_ms']:.1f}", f"{t['duration_ms']:.2f}"), (total, t["duration_ms"])
        if columns == "60":
            assert "left out at 60 columns:" in " ".join(proc.stdout.split())


def run_slow_json(source: str) -> Any:
    proc = subprocess.run(
        [str(VENV_BIN / "mltrace"), "slow", "--source", source, "--since", "1h", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(proc.stdout)


def test_trace_ids_are_explained(capsys: pytest.CaptureFixture[str], defaults: Served) -> None:
    """A shortened id is refused with what an id looks like; an upper-case id or a traceparent is accepted."""
    tid = defaults.ok[0]
    code, _, err = run(capsys, "show", tid[:8], "--source", defaults.source)
    assert code == 1 and "a trace id is 32 hex characters" in " ".join(err.split())
    assert "not in the local store" not in err
    for given in (tid.upper(), f"00-{tid}-00f067aa0ba902b7-01", f" {tid} "):
        assert run_json(capsys, "show", given, "--source", defaults.source)["trace_id"] == tid


def test_no_table_cuts_a_value_at_80_columns(capsys: pytest.CaptureFixture[str], defaults: Served) -> None:
    """stats --by, lineage --fingerprint and drift --service, piped at 80 columns: no "…" anywhere."""
    fingerprint = run_json(capsys, "lineage", defaults.ok[0], "--source", defaults.source)["fingerprint"]
    assert fingerprint
    commands = [
        ["stats", "--since", "1h", "--by", "http.response.status_code"],
        ["lineage", "--fingerprint", fingerprint],
        ["drift", "--service", "skeleton", "--since", "1h"],
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLTRACE_")}
    env["COLUMNS"] = "80"
    for argv in commands:
        proc = subprocess.run(
            [str(VENV_BIN / "mltrace"), *argv, "--source", defaults.source],
            capture_output=True, text=True, env=env, timeout=120, check=False,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        assert "…" not in proc.stdout, proc.stdout
        assert all(len(line.rstrip()) <= 80 for line in proc.stdout.splitlines()), proc.stdout
