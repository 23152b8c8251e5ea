"""``mltrace ui`` over the real Jaeger and Zipkin servers (scripts/backends.sh): the API equals the
command's ``--json`` output there too, and the trace page links to the same trace in the backend's
own UI. Marked e2e: fails when a backend is down under MLTRACE_E2E=1, skipped otherwise."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx
import pytest
from _servers import VENV_BIN, ServerProcess, free_port, server_env

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "e2e"))  # the CLI e2e tests' seeding helpers
from _cli_e2e import require, seed, wait_until_complete

from mltrace.cli import main

pytestmark = pytest.mark.e2e

BACKENDS = {
    "jaeger": ("MLTRACE_E2E_JAEGER_QUERY_URL", "http://127.0.0.1:16686", "/api/services",
               "MLTRACE_E2E_OTLP_ENDPOINT", "http://127.0.0.1:4317", "/trace/"),
    "zipkin": ("MLTRACE_E2E_ZIPKIN_URL", "http://127.0.0.1:9411", "/api/v2/services",
               "MLTRACE_E2E_ZIPKIN_URL", "http://127.0.0.1:9411", "/zipkin/traces/"),
}


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_ui_over_a_real_backend(
    backend: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Seeded traffic read back through `mltrace ui --source jaeger://…` / `zipkin://…`."""
    query_var, query_default, health, send_var, send_default, ui_path = BACKENDS[backend]
    query = os.environ.get(query_var, query_default).rstrip("/")
    require(query + health, backend.capitalize())
    endpoint = os.environ.get(send_var, send_default).rstrip("/")
    if backend == "zipkin":
        endpoint += "/api/v2/spans"
    service, sent = seed(backend, endpoint, "ui-e2e")
    url = f"{backend}://{query.split('://', 1)[1]}"
    wait_until_complete(url, service, sent).close()
    port = free_port()
    argv = [str(VENV_BIN / "mltrace"), "ui", "--source", url, "--port", str(port), "--service", service]
    with ServerProcess(argv, port=port, env=server_env({}), log=tmp_path / "ui.log", ready_path="/static/ui.css") as ui:
        r = httpx.get(f"{ui.url}/api/slow?service={service}&since=15m&limit=5", timeout=120)
        assert r.status_code == 200, r.text
        assert main(["slow", "--source", url, "--service", service, "--since", "15m", "--limit", "5", "--json"]) == 0
        assert r.text == capsys.readouterr().out
        causes = {(c["stage"], c["attribute"]) for c in r.json()["causes"]}
        assert ("inference", "ml.input.size") in causes
        trace_id = sent["large"][0]
        page = httpx.get(f"{ui.url}/traces/{trace_id}", timeout=60)
        assert page.status_code == 200
        assert f'href="{query}{ui_path}{trace_id}"' in page.text
        overview = httpx.get(f"{ui.url}/?since=15m", timeout=120)
        assert overview.status_code == 200 and "ml.input.size" in overview.text
