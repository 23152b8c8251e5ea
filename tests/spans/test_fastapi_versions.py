"""FastAPI is optional, and the FastAPI versions people still run keep working (issue 11 item 10).

scripts/test.sh runs this file twice: in the main venv (current FastAPI) and in a second venv with
the oldest FastAPI we support (FASTAPI_OLDEST in scripts/test.sh, with the Starlette it pins).
Every serving test runs a real uvicorn on loopback and drives it over one keep-alive connection.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from _servers import ROOT, ServerProcess, free_port, read_spans, server_env

TESTS = Path(__file__).resolve().parents[1]  # _fastapi_app.py
# Headers only mltrace adds; every other header and every body must be identical with and without it.
OWN_HEADERS = {"x-trace-id", "traceresponse", "date"}


def _requests(n_large: int = 200_000) -> list[tuple[str, str, dict[str, str], Any]]:
    key = {"X-API-Key": "secret"}
    body = {"customer_id": "c-17", "features": [1.0, 2.0, 3.5]}
    return [
        ("GET", "/healthz", {}, None),
        ("POST", "/predict", key, body),
        ("POST", "/predict", {}, body),  # missing key: 403 from the dependency
        ("POST", "/predict", {"X-API-Key": "wrong"}, body),
        ("POST", "/predict", key, {"customer_id": "c-1", "features": "not a list"}),  # 422
        ("POST", "/predict", key, {"customer_id": "c-big", "features": [0.5] * (n_large // 4)}),  # > 64 KiB
        ("POST", "/predict_async", key, body),
        ("GET", "/missing", {}, None),  # 404
        ("POST", "/predict", key, body),
    ]


def _serve(tmp_path: Path, traced: bool) -> ServerProcess:
    port = free_port()
    env = server_env({"MLTRACE_APP_TRACED": "1" if traced else "0", "MLTRACE_LOCAL_PATH": str(tmp_path / "t.db")},
                     [TESTS, ROOT])
    return ServerProcess(
        [sys.executable, "-m", "uvicorn", "_fastapi_app:app", "--host", "127.0.0.1", "--port", str(port)],
        port=port,
        env=env,
        log=tmp_path / f"uvicorn-{'traced' if traced else 'plain'}.log",
        ready_path="/healthz",
        cwd=tmp_path,
    )


def _drive(url: str) -> list[dict[str, Any]]:
    out = []
    with httpx.Client(base_url=url, timeout=30.0) as client:  # one keep-alive connection for all
        for method, path, headers, body in _requests():
            r = client.request(method, path, headers=headers, json=body)
            out.append({"status": r.status_code, "body": r.text,
                        "headers": {k: v for k, v in r.headers.items() if k.lower() not in OWN_HEADERS},
                        "trace_id": r.headers.get("x-trace-id")})
    return out


def test_served_identically_with_and_without_mltrace_one_server_span_each(tmp_path: Path) -> None:
    """The README-shaped FastAPI app under real uvicorn, with and without mltrace, over one keep-alive
    connection: same statuses, bodies and headers (except mltrace's own); each request is its own trace
    with exactly one SERVER span, and the model's stages are children in that trace."""
    import fastapi

    (tmp_path / "plain").mkdir()
    (tmp_path / "traced").mkdir()
    with _serve(tmp_path / "plain", traced=False) as plain, _serve(tmp_path / "traced", traced=True) as traced:
        without = _drive(plain.url)
        with_ = _drive(traced.url)
    assert [r["status"] for r in without] == [200, 200, 403, 403, 422, 200, 200, 404, 200], fastapi.__version__
    for a, b in zip(without, with_, strict=True):
        assert (a["status"], a["body"], a["headers"]) == (b["status"], b["body"], b["headers"])
    trace_ids = [r["trace_id"] for r in with_]
    assert all(t and re.fullmatch(r"[0-9a-f]{32}", t) for t in trace_ids) and len(set(trace_ids)) == len(trace_ids)

    rows = read_spans(tmp_path / "traced" / "t.db", lambda rs: {r["trace_id"] for r in rs} >= set(trace_ids))
    servers = Counter(r["trace_id"] for r in rows if r["kind"] in ("SERVER", "server", 2, "2"))
    assert {t: servers[t] for t in trace_ids} == {t: 1 for t in trace_ids}
    predicted = [t for t, (_, path, _, _) in zip(trace_ids, _requests(), strict=True) if path.startswith("/predict")]
    ok = [t for t, r in zip(trace_ids, with_, strict=True) if t in predicted and r["status"] == 200]
    assert len(ok) == 4
    for t in ok:
        stages = {r["attributes"]["ml.stage"] for r in rows if r["trace_id"] == t and "ml.stage" in r["attributes"]}
        assert {"preprocess", "inference", "postprocess"} <= stages, stages


def test_core_imports_and_serves_without_fastapi(tmp_path: Path) -> None:
    """With FastAPI impossible to import, mltrace, its CLI and instrumentor import, and a plain Starlette
    app with the middleware serves through real uvicorn with a trace id on the response."""
    app = tmp_path / "starlette_only.py"
    app.write_text(
        "import sys\n"
        "sys.modules['fastapi'] = None  # any 'import fastapi' now raises ImportError\n"
        "import mltrace, mltrace.cli, mltrace.instrumentation\n"
        "from starlette.applications import Starlette\n"
        "from starlette.responses import JSONResponse\n"
        "from starlette.routing import Route\n"
        "mltrace.configure(service_name='no-fastapi', exporter='none')\n"
        "async def health(request):\n"
        "    return JSONResponse({'fastapi': 'fastapi' in sys.modules and sys.modules['fastapi'] is not None})\n"
        "app = Starlette(routes=[Route('/health', health)])\n"
        "app.add_middleware(mltrace.MLTraceMiddleware)\n"
    )
    port = free_port()
    with ServerProcess(
        [sys.executable, "-m", "uvicorn", "starlette_only:app", "--host", "127.0.0.1", "--port", str(port)],
        port=port, env=server_env({}, [tmp_path, ROOT]), log=tmp_path / "uvicorn.log", cwd=tmp_path,
    ) as server:
        r = httpx.get(server.url + "/health", timeout=10)
    assert r.status_code == 200 and r.json() == {"fastapi": False}
    assert re.fullmatch(r"[0-9a-f]{32}", r.headers["x-trace-id"])


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _floor(requirements: list[str], name: str) -> str:
    found = [r for r in requirements if re.match(rf"{name}\s*[><=]", r)]
    assert len(found) == 1, (name, requirements)
    return found[0].split(">=", 1)[1].strip()


def test_fastapi_is_an_extra_and_the_tested_oldest_is_the_floor() -> None:
    """`pip install mltrace-serving` pulls no FastAPI; the `fastapi` and `serve` extras ask for the oldest
    FastAPI scripts/test.sh tests, not a newer one; the README names that version."""
    project = _pyproject()["project"]
    core = [d.split(";")[0] for d in project["dependencies"]]
    assert not [d for d in core if re.match(r"fastapi\b", d)]
    oldest = re.search(r"^FASTAPI_OLDEST=(\S+)$", (ROOT / "scripts/test.sh").read_text(), re.M)
    assert oldest is not None
    series = ".".join(oldest.group(1).split(".")[:2])
    for extra in ("fastapi", "serve"):
        assert _floor(project["optional-dependencies"][extra], "fastapi") == series
    assert f"FastAPI {series}" in (ROOT / "README.md").read_text()


def test_installed_fastapi_is_supported() -> None:
    """The FastAPI this run uses is at or above the floor (the old-FastAPI venv runs exactly the floor)."""
    import fastapi
    import starlette

    floor = _floor(_pyproject()["project"]["optional-dependencies"]["fastapi"], "fastapi")
    version = tuple(int(p) for p in fastapi.__version__.split(".")[:2])
    assert version >= tuple(int(p) for p in floor.split("."))
    print(json.dumps({"fastapi": fastapi.__version__, "starlette": starlette.__version__}))


def test_core_requirements_do_not_pin_a_new_starlette() -> None:
    """The Starlette floor admits the Starlette that the oldest supported FastAPI pins (0.35 for 0.109)."""
    floor = _floor(_pyproject()["project"]["dependencies"], "starlette")
    assert tuple(int(p) for p in floor.split(".")) <= (0, 35)


@pytest.mark.parametrize("module", ["mltrace", "mltrace.cli", "mltrace.instrumentation"])
def test_import_does_not_import_fastapi(module: str) -> None:
    """Importing mltrace's core does not import FastAPI (it is looked up lazily where it is used)."""
    code = f"import sys, {module}; print('fastapi' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"
