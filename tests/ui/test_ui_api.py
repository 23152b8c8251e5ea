"""``/api/...`` of a real ``mltrace ui`` process against the ``--json`` output of the matching
command run on the same store: one source of truth. Also the server's guards (read-only,
loopback Host names, errors as JSON) and ``mltrace demo --ui``."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from _servers import VENV_BIN, ServerProcess, free_port, server_env
from _ui_shared import Store

from mltrace.cli import main


def cli_json(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    code = main([*argv, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    return out


CASES = [
    ("slow", "service=mltrace-demo&since=1d", ["--service", "mltrace-demo", "--since", "1d"]),
    ("slow", "since=1d&stage=inference&limit=3&min_duration=1ms",
     ["--since", "1d", "--stage", "inference", "--limit", "3", "--min-duration", "1ms"]),
    ("slow", "service=hostile&since=1d&scan=20", ["--service", "hostile", "--since", "1d", "--scan", "20"]),
    ("stats", "service=mltrace-demo&since=1d&by=ml.model.version",
     ["--service", "mltrace-demo", "--since", "1d", "--by", "ml.model.version"]),
    ("stats", "since=1d", ["--since", "1d"]),
    ("drift", "service=mltrace-demo&since=1d&buckets=6",
     ["--service", "mltrace-demo", "--since", "1d", "--buckets", "6"]),
]


@pytest.mark.parametrize(("command", "query", "argv"), CASES)
def test_api_prints_what_the_command_prints(
    command: str, query: str, argv: list[str], store: Store, ui_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Same options, same document, byte for byte (drift's generated_us, the time it was made,
    aside). The query is the whole command line: without ?service= the answer covers every
    service, as the command without --service does, whatever service the server's pages show."""
    r = httpx.get(f"{ui_url}/api/{command}?{query}", timeout=60)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    expected = cli_json(capsys, command, "--source", store.url, *argv)
    if command == "drift":
        got, want = json.loads(r.text), json.loads(expected)
        assert got.pop("generated_us") > 0 and want.pop("generated_us") > 0
        assert got == want
    else:
        assert r.text == expected


def test_api_trace_and_lineage_match_show_and_lineage(
    store: Store, ui_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """/api/traces/ID is `mltrace show ID --json`, /api/lineage/ID is `mltrace lineage ID --json`,
    /api/lineage?fingerprint=F is `mltrace lineage --fingerprint F --json`."""
    trace_id = store.demo["show"]["trace_id"]
    picked = store.demo["lineage"]["trace_id"]
    fingerprint = store.demo["same_input"]["fingerprint"]
    pairs = [
        (f"/api/traces/{trace_id}", ["show", trace_id]),
        (f"/api/lineage/{picked}", ["lineage", picked]),
        (f"/api/lineage?fingerprint={fingerprint}&limit=5", ["lineage", "--fingerprint", fingerprint, "-n", "5"]),
    ]
    for path, argv in pairs:
        r = httpx.get(ui_url + path, timeout=60)
        assert r.status_code == 200, (path, r.text)
        assert r.text == cli_json(capsys, argv[0], "--source", store.url, *argv[1:]), path


@pytest.mark.parametrize(
    ("path", "status", "needle"),
    [
        ("/api/slow?bogus=1", 400, "bogus"),
        ("/api/slow?limit=many", 400, "invalid int value"),
        ("/api/slow?since=soon", 400, "not a duration"),
        ("/api/slow?service=nope", 404, "nope"),
        ("/api/drift?profile=/etc/passwd&data=/etc/passwd", 400, "profile"),
        ("/api/slow?source=jaeger://elsewhere:16686", 400, "source"),
        ("/api/traces/0123456789abcdef0123456789abcdef", 404, "0123456789abcdef0123456789abcdef"),
        ("/api/lineage", 400, "fingerprint"),
    ],
)
def test_api_errors_are_json_with_a_status(path: str, status: int, needle: str, ui_url: str) -> None:
    """Bad options are 400, unknown services and traces 404, each one JSON line of explanation;
    options that would point the server at another source or read files are refused."""
    r = httpx.get(ui_url + path, timeout=30)
    assert r.status_code == status, r.text
    assert needle in r.json()["error"]


def test_read_only_loopback_and_security_headers(ui_url: str) -> None:
    """Only GET/HEAD; a Host header that is not a loopback name is refused (DNS rebinding); pages
    carry a CSP that forbids script; an error page escapes the path it echoes."""
    assert httpx.post(f"{ui_url}/api/slow", timeout=10).status_code == 405
    assert httpx.get(f"{ui_url}/", headers={"host": "attacker.example"}, timeout=10).status_code == 400
    page = httpx.get(f"{ui_url}/traces/{quote('<img src=x onerror=alert(1)>', safe='')}", timeout=10)
    assert page.status_code == 404
    assert "<img" not in page.text and "&lt;img src=x onerror=alert(1)&gt;" in page.text
    assert "script-src 'none'" in page.headers["content-security-policy"]
    assert page.headers["x-content-type-options"] == "nosniff"


def test_demo_ui_serves_the_findings_until_interrupted(tmp_path: Path) -> None:
    """`mltrace demo --ui --ui-port 0` prints the findings, then the web view's address; the
    pages answer; Ctrl-C (SIGINT) stops it promptly."""
    db = f"local://{tmp_path}/demo-ui.db"
    proc = subprocess.Popen(
        [str(VENV_BIN / "mltrace"), "demo", "--source", db, "-n", "120", "--ui", "--ui-port", "0"],
        env=server_env({"MLTRACE_EXPORTER": "none"}), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    try:
        lines: list[str] = []
        deadline = time.monotonic() + 180
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.strip().startswith("drift") and "http://" in line:
                break
        links = {p[0]: p[1] for p in (line.split() for line in lines) if len(p) == 2 and p[1].startswith("http://")}
        assert {"overview", "slow", "slowest", "lineage", "drift"} <= set(links), "".join(lines)
        assert links["overview"].startswith("http://127.0.0.1:")
        slow = httpx.get(links["slow"], timeout=60)
        assert slow.status_code == 200
        assert "ml.feature_store" in slow.text and "inference" in slow.text
        assert httpx.get(links["slowest"], timeout=30).status_code == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=20) in (0, 130)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if proc.stdout is not None:
            proc.stdout.close()


def test_import_mltrace_leaves_the_ui_alone() -> None:
    """`import mltrace` (and the CLI's parser) imports neither mltrace.ui nor Jinja2 nor uvicorn."""
    code = (
        "import sys, mltrace, mltrace.cli; mltrace.cli.build_parser(); "
        "print(sorted(m for m in ('mltrace.ui', 'jinja2', 'uvicorn') if m in sys.modules))"
    )
    out = subprocess.run([str(VENV_BIN / "python"), "-c", code], capture_output=True, text=True, check=True,
                         env=server_env({}), timeout=60)
    assert out.stdout.strip() == "[]"


def test_ui_refuses_a_missing_profile(store: Store, capsys: pytest.CaptureFixture[str]) -> None:
    """`mltrace ui --profile` with no such file fails at once with one line, before listening."""
    assert main(["ui", "--source", store.url, "--port", "0", "--profile", "/nonexistent/ref.json"]) == 1
    assert "no such file: /nonexistent/ref.json" in capsys.readouterr().err


def test_ui_json_prints_its_address_as_one_json_line(store: Store, tmp_path: Path) -> None:
    """`mltrace ui --json --port 0`: the first line is {"url", "source", "service"}; SIGTERM stops it."""
    with subprocess.Popen(
        [str(VENV_BIN / "mltrace"), "ui", "--source", store.url, "--port", "0", "--json"],
        env=server_env({}), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=tmp_path,
    ) as proc:
        try:
            assert proc.stdout is not None
            first = json.loads(proc.stdout.readline())
            assert first["source"] == store.url and first["service"] is None
            assert httpx.get(first["url"] + "api/stats?since=1d", timeout=60).json()["count"] > 0
        finally:
            proc.terminate()
            proc.wait(20)


def test_unreachable_backend_is_a_503_not_a_traceback(tmp_path: Path) -> None:
    """Over a Jaeger that is down, the API answers 503 with the reason and the page says so."""
    from _loopback import closed_port

    port, dead = free_port(), closed_port()
    argv = [str(VENV_BIN / "mltrace"), "ui", "--source", f"jaeger://127.0.0.1:{dead}", "--port", str(port),
            "--service", "model-server"]
    with ServerProcess(argv, port=port, env=server_env({}), log=tmp_path / "ui.log", ready_path="/static/ui.css") as ui:
        r = httpx.get(f"{ui.url}/api/slow", timeout=60)
        assert r.status_code == 503
        assert f"127.0.0.1:{dead}" in r.json()["error"]
        page = httpx.get(f"{ui.url}/slow", timeout=60)
        assert page.status_code == 503 and "Source unavailable" in page.text
