"""``mltrace profile build`` and ``mltrace drift``: from traces, and a data file against a profile, offline."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from _cli_run import run, run_json
from fastapi import FastAPI
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from starlette.testclient import TestClient

import mltrace
from mltrace.analysis import drift_history
from mltrace.cli import main
from mltrace.drift import DriftMonitor, ProfileMismatchError, ReferenceProfile, drift_report
from mltrace.export import LocalStore
from mltrace.query import open_source
from mltrace.testing import capture_spans

SERVICE = "scoring"
PLANS = ["basic", "plus", "pro"]


def _frame(n: int, seed: int, shift: float = 0.0, new_plan: float = 0.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    plan = rng.choice(PLANS, n, p=[0.5, 0.3, 0.2]).astype(object)
    plan[rng.random(n) < new_plan] = "enterprise"
    tenure = rng.integers(0, 60, n)
    return pd.DataFrame({
        "age": rng.normal(41 + shift, 12, n).round(1),
        "income": rng.lognormal(10, 0.5, n).round(0),
        "plan": plan,
        "tenure_months": tenure,
        "churned": (rng.random(n) < 1 / (1 + np.exp(0.05 * tenure))).astype(int),
    })


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """train.csv (20,000 rows), recent.csv (age +0.5 std, 10% of a new plan), calm.csv (like training)."""
    folder = tmp_path_factory.mktemp("drift")
    paths = {name: folder / f"{name}.csv" for name in ("train", "recent", "calm")}
    _frame(20_000, 0).to_csv(paths["train"], index=False)
    _frame(2_000, 1, shift=6.0, new_plan=0.1).to_csv(paths["recent"], index=False)
    _frame(2_000, 2).to_csv(paths["calm"], index=False)
    paths["profile"] = folder / "reference.json"
    assert main(["profile", "build", str(paths["train"]), "-o", str(paths["profile"]), "--target", "churned"]) == 0
    return paths


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")


# -- profile build ------------------------------------------------------------------------------
def test_profile_build_summary(capsys: pytest.CaptureFixture[str], files: dict[str, Path], tmp_path: Path) -> None:
    """The summary names the id, rows, features by kind and the output; the file loads back to that id."""
    out_path = tmp_path / "ref.json"
    code, out, err = run(capsys, "profile", "build", str(files["train"]), "-o", str(out_path), "--target", "churned")
    assert code == 0, err
    profile = ReferenceProfile.load(out_path)
    assert f"Built reference profile {profile.id} from {files['train']}: 20,000 rows, 4 features " in out
    assert "(3 numerical, 1 categorical), output: churned" in out
    assert "3 categories: basic 50%, plus 30%, pro 20%" in out
    assert f"Next: mltrace drift --profile {out_path} --data recent.csv" in out


def test_profile_build_json_and_options(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path], tmp_path: Path
) -> None:
    """--json is the summary as data; --categorical and --bins reach ReferenceProfile.from_file."""
    out_path = tmp_path / "ref.json"
    data = run_json(capsys, "profile", "build", str(files["train"]), "-o", str(out_path),
                    "--categorical", "tenure_months", "--bins", "5")
    profile = ReferenceProfile.load(out_path)
    assert (data["id"], data["rows"], data["bins"], data["outputs"]) == (profile.id, 20_000, 5, [])
    kinds = {f["name"]: f["kind"] for f in data["features"]}
    assert kinds == {"age": "numerical", "income": "numerical", "plan": "categorical",
                     "tenure_months": "categorical", "churned": "numerical"}
    assert data["bytes"] == out_path.stat().st_size and data["path"] == str(out_path)


@pytest.mark.parametrize(
    ("make", "argv", "message"),
    [
        (None, ["missing.csv"], "error: no such file: missing.csv"),
        ("train", ["{train}", "--target", "label"], "error: cannot profile train.csv: target column 'label' not found"),
        ("train", ["{train}", "--categorical", "age,city"], "features that are not in the data: ['city']"),
        ("xlsx", ["{xlsx}"], "error: cannot profile data.xlsx: "),
        ("binary", ["{binary}"], "error: cannot profile binary.csv: 'utf-8' codec can't decode"),
        ("empty", ["{empty}"], "error: cannot profile empty.csv: No columns to parse from file"),
        ("train", ["{train}", "--bins", "1"], "bins must be between 2 and 100; got 1"),
        ("train", ["{train}", "-o", "{tmp}/no/such/dir/ref.json"], "cannot save the profile to "),
    ],
)
def test_profile_build_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], files: dict[str, Path], tmp_path: Path, make: str | None,
    argv: list[str], message: str,
) -> None:
    """A missing file, an unknown column, an unreadable format: one clear line on stderr, exit 1."""
    made = {
        "train": files["train"],
        "xlsx": tmp_path / "data.xlsx",
        "binary": tmp_path / "binary.csv",
        "empty": tmp_path / "empty.csv",
    }
    made["xlsx"].write_bytes(b"PK\x03\x04")
    made["binary"].write_bytes(b"\x00\x01age\xff\xfe,\n")
    made["empty"].write_text("")
    args = [a.format(**made, tmp=tmp_path) for a in argv]
    if "-o" not in args:
        args += ["-o", str(tmp_path / "ref.json")]
    code, out, err = run(capsys, "profile", "build", *args)
    assert code == 1 and out == ""
    assert message in " ".join(err.split())
    assert "Traceback" not in err and len(err.strip().splitlines()) <= 3  # one line, wrapped by the terminal


# -- drift, offline ---------------------------------------------------------------------------------
def test_drift_offline_finds_the_planted_drift(capsys: pytest.CaptureFixture[str], files: dict[str, Path]) -> None:
    """recent.csv alerts on age (shifted) and plan (a new category), not on the others; --json has each statistic."""
    data = run_json(capsys, "drift", "--profile", str(files["profile"]), "--data", str(files["recent"]))
    assert data["alert"] is True and data["rows"] == data["n"] == 2_000
    features = data["features"]
    assert {name for name, f in features.items() if f["alert"]} == {"age", "plan"}
    for name in ("age", "income", "tenure_months"):
        assert set(features[name]) >= {"psi", "js", "ks", "wasserstein", "wasserstein_norm", "band", "alert"}
    assert features["income"]["band"] == "ok" and features["plan"]["band"] == "alert"
    assert data["output"]["alert"] is False and list(data["output"]["features"]) == ["churned"]
    assert data["profile"]["id"] == ReferenceProfile.load(files["profile"]).id == data["reference"]
    assert 0 < data["row_score"]["unusual_share"] < 0.5


def test_drift_offline_table(capsys: pytest.CaptureFixture[str], files: dict[str, Path]) -> None:
    """The terminal report: a verdict line, then one row per feature, most drifted first."""
    code, out, err = run(capsys, "drift", "--profile", str(files["profile"]), "--data", str(files["recent"]))
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"Drift of {files['recent']} (2,000 rows) against reference ")
    assert "ALERT · score " in lines[0] and "2 of 4 features drifted · top: " in lines[0]
    header = next(i for i, line in enumerate(lines) if line.split()[:3] == ["feature", "kind", "n"])
    assert lines[header].split() == ["feature", "kind", "n", "psi", "js", "ks", "w1/std", "missing", "band", "alert"]
    rows = [line.split() for line in lines[header + 1 : header + 5]]
    assert {rows[0][0], rows[1][0]} == {"age", "plan"} and all(r[-1] == "yes" for r in rows[:2])
    assert all(r[-1] == "no" for r in rows[2:])


def test_drift_offline_calm_data(files: dict[str, Path]) -> None:
    """Data like the training data: no alert; the library function returns plain JSON-able data."""
    data = drift_report(files["profile"], files["calm"])
    assert data["alert"] is False and all(f["band"] == "ok" for f in data["features"].values())
    json.dumps(data, allow_nan=False)
    frame = pd.read_csv(files["calm"])
    assert drift_report(ReferenceProfile.load(files["profile"]), frame)["features"] == data["features"]
    assert drift_report(files["profile"], frame, window=500)["n"] == 500


def test_drift_offline_errors(capsys: pytest.CaptureFixture[str], files: dict[str, Path], tmp_path: Path) -> None:
    """Missing features, a profile that is not one, half the options: clear errors, no traceback."""
    partial = tmp_path / "partial.csv"
    pd.read_csv(files["recent"])[["age", "income"]].to_csv(partial, index=False)
    code, _, err = run(capsys, "drift", "--profile", str(files["profile"]), "--data", str(partial))
    assert code == 1 and "lacks 2 of the reference's features: ['plan', 'tenure_months']" in " ".join(err.split())
    code, _, err = run(capsys, "drift", "--profile", str(files["train"]), "--data", str(files["recent"]))
    assert code == 1 and "not JSON" in err
    code, _, err = run(capsys, "drift", "--profile", str(files["profile"]))
    assert code == 1 and "--profile and --data go together" in " ".join(err.split())
    code, _, err = run(capsys, "drift", "--service", SERVICE, "--profile", str(files["profile"]))
    assert code == 2 and "not both" in err
    with pytest.raises(ProfileMismatchError):
        drift_report(files["profile"], {"age": []})


# -- drift from traces ------------------------------------------------------------------------------
def _store(tmp_path: Path, profile: ReferenceProfile) -> tuple[str, int]:
    """Traffic through a traced app: version 1 sees 150 calm rows then 150 with age +2 std; version 2 stays calm.

    Returns the source URL and the start time (µs) of the first drifted request.
    """
    monitors = {v: DriftMonitor(profile, window=200, recompute_every=20, model="churn") for v in ("1", "2")}

    @mltrace.inference(model="churn", version="1", drift=monitors["1"])
    def predict_v1(row: dict[str, Any]) -> int:
        return 0

    @mltrace.inference(model="churn", version="2", drift=monitors["2"])
    def predict_v2(row: dict[str, Any]) -> int:
        return 0

    app = FastAPI()
    app.add_middleware(mltrace.MLTraceMiddleware)

    @app.post("/predict")
    def endpoint(body: dict[str, Any]) -> dict[str, Any]:
        predict = predict_v1 if body.pop("version") == "1" else predict_v2
        return {"churned": predict(body)}

    calm = _frame(300, 5).drop(columns="churned").to_dict("records")
    drifted = _frame(150, 6, shift=24.0).drop(columns="churned").to_dict("records")
    client = TestClient(app)
    with capture_spans() as captured:
        for i in range(300):
            row = calm[i] if i < 150 else drifted[i - 150]
            client.post("/predict", json={**row, "version": "1"})
            if i == 150:
                first_drifted = max(s.start_time or 0 for s in captured.spans) // 1000
            client.post("/predict", json={**calm[i], "version": "2"})
    resource = Resource.create({"service.name": SERVICE})
    path = tmp_path / "traces.db"
    store = LocalStore(path)
    store.write([
        ReadableSpan(name=s.name, context=s.context, parent=s.parent, resource=resource, attributes=s.attributes,
                     events=s.events, links=s.links, kind=s.kind, instrumentation_scope=s.instrumentation_scope,
                     status=s.status, start_time=s.start_time, end_time=s.end_time)
        for s in captured.spans
    ])
    store.close()
    return f"local://{path}", first_drifted


@pytest.fixture(scope="module")
def traced(tmp_path_factory: pytest.TempPathFactory, files: dict[str, Path]) -> tuple[str, int]:
    return _store(tmp_path_factory.mktemp("traced"), ReferenceProfile.load(files["profile"]))


def test_drift_history_from_traces(traced: tuple[str, int]) -> None:
    """Window scores over time, alerts after the drift began, the drifted feature named, per model version."""
    url, first_drifted = traced
    source = open_source(url)
    try:
        data = drift_history(source, service=SERVICE, since="1h", buckets=6)
    finally:
        source.close()
    assert data["count"] == 600 and data["scanned"] == 600
    assert data["alerts"] > 0 and data["first_alert_us"] >= first_drifted
    assert data["window_top_features"][0]["feature"] == "age"
    assert len(data["buckets"]) == 6 and sum(b["count"] for b in data["buckets"]) == 600
    assert data["buckets"][0]["alerts"] == 0 and data["buckets"][-1]["window_score_max"] >= 0.5
    groups = {g["value"]: g for g in data["groups"]}
    assert groups["1"]["alerts"] == data["alerts"] and groups["2"]["alerts"] == 0
    assert groups["1"]["window_score_last"] >= 0.5 > groups["2"]["window_score_max"]
    assert groups["1"]["top_features"][0]["feature"] == "age"


def test_drift_from_traces_cli(capsys: pytest.CaptureFixture[str], traced: tuple[str, int]) -> None:
    """The terminal view: the alert line, the time table with a bar per bucket, the per-version table."""
    url, _ = traced
    code, out, err = run(capsys, "drift", "--service", SERVICE, "--source", url, "--buckets", "4")
    assert code == 0, err
    assert out.startswith(f"Drift of service {SERVICE}, last 1h: 600 requests with drift scores")
    assert "Window alert on " in out and "Most often drifted (window): age " in out
    assert "window score over time" in out and "by ml.model.version" in out
    table = out.split("window score over time")[1].split("by ml.model.version")[0]
    rows = [line.split() for line in table.splitlines() if re.match(r"^ ?\d\d:\d\d:\d\d", line)]
    assert len(rows) == 4 and "█" in rows[-1][-1]  # the first bucket is before min_samples: no window score
    assert run_json(capsys, "drift", "--service", SERVICE, "--source", url)["count"] == 600


def test_drift_from_traces_without_monitors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Traces with no ml.drift.* attributes say how to add a monitor."""
    path = tmp_path / "plain.db"
    store = LocalStore(path)
    store.close()
    code, out, err = run(capsys, "drift", "--source", f"local://{path}")
    assert code == 0, err
    assert "0 requests with drift scores" in out and "@mltrace.inference(drift=DriftMonitor(" in " ".join(out.split())


# -- the documented example -------------------------------------------------------------------------
def test_feedback_loop_example(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """examples/feedback_loop.py runs, and every command docs/cli.md shows for it works on what it wrote."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MLTRACE_"))}
    example = Path(__file__).parents[2] / "examples" / "feedback_loop.py"
    proc = subprocess.run([sys.executable, "-W", "error", str(example), str(tmp_path)], env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    source = f"local://{tmp_path / 'churn-traces.db'}"
    built = run_json(capsys, "profile", "build", str(tmp_path / "train.csv"), "-o", str(tmp_path / "ref.json"),
                     "--target", "churned")
    offline = run_json(capsys, "drift", "--profile", str(tmp_path / "ref.json"), "--data", str(tmp_path / "recent.csv"))
    assert offline["alert"] is True and set(offline["top_features"]) == {"plan", "age"}
    history = run_json(capsys, "drift", "--service", "churn-model", "--source", source)
    assert history["references"] == {built["id"]: 600} and history["alerts"] > 0
    scored = run_json(capsys, "accuracy", "--service", "churn-model", "--source", source)
    assert scored["metric"] == "accuracy" and scored["matched"] == scored["feedback"] > 400
    assert {g["value"] for g in scored["groups"]} == {"1", "2"}
    assert all(0.6 < g["accuracy"] < 0.9 for g in scored["groups"])
