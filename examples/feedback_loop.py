"""Drift and late ground truth, end to end: two model versions served, drift arriving, labels coming back.

    pip install -e ".[serve]"
    python examples/feedback_loop.py          # writes train.csv, recent.csv and churn-traces.db here
    mltrace profile build train.csv -o reference.json --target churned
    mltrace drift --profile reference.json --data recent.csv
    mltrace drift --service churn-model --source local://churn-traces.db
    mltrace accuracy --service churn-model --source local://churn-traces.db

A churn model (two versions: one sees every feature, one only tenure and plan) is served with a
drift monitor on each version. The first half of the traffic looks like the training data; in the
second half customers are older and 10% are on a plan the model never saw. Each response carries
a ``traceresponse`` header; once every prediction is made, the true outcome of 80% of them is
posted to ``/feedback``, which records it with ``mltrace.feedback``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from sklearn.linear_model import LogisticRegression
from starlette.testclient import TestClient

import mltrace
from mltrace.drift import DriftMonitor, ReferenceProfile

PLANS = ["basic", "plus", "pro"]
FEATURES = ["age", "income", "plan", "tenure_months"]


def customers(n: int, rng: np.random.Generator, *, older: float = 0.0, new_plan: float = 0.0) -> pd.DataFrame:
    """Synthetic customers and whether they churned (young, short-tenure, basic-plan customers churn)."""
    plan = rng.choice(PLANS, n, p=[0.5, 0.3, 0.2]).astype(object)
    plan[rng.random(n) < new_plan] = "enterprise"
    frame = pd.DataFrame({
        "age": rng.normal(41 + older, 12, n).round(1),
        "income": rng.lognormal(10, 0.5, n).round(0),
        "plan": plan,
        "tenure_months": rng.integers(0, 60, n),
    })
    logit = 1.5 - 0.06 * frame["tenure_months"] - 0.03 * (frame["age"] - 41) + 1.2 * (frame["plan"] == "basic")
    frame["churned"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return frame


def encode(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    out = [frame[c].to_numpy(dtype=float) for c in columns if c != "plan"]
    if "plan" in columns:
        out += [(frame["plan"] == p).to_numpy(dtype=float) for p in PLANS]
    return np.column_stack(out)


class Feedback(BaseModel):
    trace: str  # the prediction's traceresponse (or X-Trace-Id) header
    churned: int


def create_app(train: pd.DataFrame, profile: ReferenceProfile) -> FastAPI:
    versions = {"1": FEATURES, "2": ["tenure_months", "plan"]}
    models = {v: LogisticRegression(max_iter=1000).fit(encode(train, c), train["churned"]) for v, c in versions.items()}

    def serve(version: str) -> Any:
        @mltrace.inference(model="churn", version=version, framework="sklearn",
                           drift=DriftMonitor(profile, window=200, model="churn"))
        def predict(row: dict[str, Any]) -> int:
            label = int(models[version].predict(encode(pd.DataFrame([row]), versions[version]))[0])
            mltrace.current_stage().set_attribute("ml.output.prediction", label)
            return label

        return predict

    predictors = {v: serve(v) for v in versions}
    app = FastAPI()
    app.add_middleware(mltrace.MLTraceMiddleware)

    @app.post("/predict/{version}")
    def predict(version: str, row: dict[str, Any]) -> dict[str, int]:
        return {"churned": predictors[version](row)}

    @app.post("/feedback", status_code=202)
    def feedback(body: Feedback) -> dict[str, str | None]:
        try:
            return {"recorded": mltrace.feedback(body.trace, body.churned)}
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None

    return app


def main(folder: Path) -> None:
    handle = mltrace.configure(service_name="churn-model", exporter="local", local_path=folder / "churn-traces.db")
    rng = np.random.default_rng(7)
    train = customers(20_000, rng)
    train.to_csv(folder / "train.csv", index=False)
    # the same profile `mltrace profile build train.csv --target churned` builds (same content, same id)
    profile = ReferenceProfile.from_file(folder / "train.csv", target="churned")
    served = pd.concat([customers(300, rng), customers(300, rng, older=8.0, new_plan=0.1)], ignore_index=True)
    served.iloc[300:].to_csv(folder / "recent.csv", index=False)
    client = TestClient(create_app(train, profile))
    sent = []
    for i, row in enumerate(served[FEATURES].to_dict("records")):
        response = client.post(f"/predict/{1 + i % 2}", json=row)
        sent.append((response.headers["traceresponse"], int(served["churned"][i])))
    for trace, truth in sent:
        if rng.random() < 0.8:  # some outcomes never come back
            client.post("/feedback", json={"trace": trace, "churned": truth})
    handle.shutdown()
    where = "" if folder.resolve() == Path.cwd() else f" in {folder}"
    print(f"served {len(sent)} predictions; wrote train.csv, recent.csv and churn-traces.db{where}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path.cwd())
