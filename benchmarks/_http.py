"""Over-HTTP measurement: four uvicorn servers (one per case), a load generator hitting them in
interleaved rounds. Uses ``wrk`` when installed (``apt-get install wrk``), else a Python
keep-alive client in a separate process."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

from _asgi import bodies

CASES = ("a_none", "b_otel_fastapi", "c_mltrace", "d_mltrace_sampled_out", "e_mltrace_deferred",
         "e0_mltrace_deferred_sampled_out")
CPU: dict[str, list[float]] = {}  # per round: the server process's CPU µs per request (/proc)
PACED: dict[str, list[float]] = {}  # per request: µs to the last byte at moderate load

# Moderate load: one request every PERIOD seconds on a keep-alive connection (open loop, ~30% of
# what one connection sustains here), so work a server does after a response is not charged to
# the next request, as it is when the client sends back to back.
PERIOD = 0.002
PACED_CLIENT = r"""
import http.client, json, sys, time
port, n, period = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
bodies = [b.encode() for b in json.loads(sys.argv[4])]
c = http.client.HTTPConnection("127.0.0.1", port)
h = {"content-type": "application/json"}
out = []
due = time.perf_counter()
for i in range(n):
    due += period
    t = time.perf_counter()
    c.request("POST", "/predict", bodies[i % len(bodies)], h)
    r = c.getresponse(); r.read()
    out.append((time.perf_counter() - t) * 1e6)
    assert r.status == 200, r.status
    pause = due - time.perf_counter()
    if pause > 0:
        time.sleep(pause)
print(json.dumps(out))
"""


def _cpu_seconds(pid: int) -> float:
    """utime + stime of a process (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
HERE = Path(__file__).parent

CLIENT = r"""
import http.client, json, sys, time
port, n, bodies = int(sys.argv[1]), int(sys.argv[2]), [b.encode() for b in json.loads(sys.argv[3])]
c = http.client.HTTPConnection("127.0.0.1", port)
h = {"content-type": "application/json"}
t0 = time.perf_counter()
for i in range(n):
    c.request("POST", "/predict", bodies[i % len(bodies)], h)
    r = c.getresponse(); r.read()
    assert r.status == 200, r.status
print((time.perf_counter() - t0) / n * 1e6)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"server on {port} did not start")


def _wrk(port: int, seconds: int, prefix: list[str]) -> float:
    script = HERE / "_wrk_post.lua"
    out = subprocess.run(
        [*prefix, "wrk", "-t1", "-c1", f"-d{seconds}s", "-s", str(script), "--latency", f"http://127.0.0.1:{port}/predict"],
        capture_output=True, text=True, check=True,
    ).stdout
    for line in out.splitlines():
        if line.strip().startswith("Requests/sec:"):
            return 1e6 / float(line.split()[1])
    raise RuntimeError(out)


def _pinned(cpu: int | None) -> list[str]:
    """``taskset -c CPU`` before a command, or nothing (no pinning, or no ``taskset``)."""
    if cpu is None or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", str(cpu)]


def http_cases(rounds: int = 5, n: int = 1000, *, pin: bool = False) -> dict[str, list[float]]:
    """``pin``: servers on CPU 0, load generators on CPU 1 (two CPUs or more), so work a server
    does after a response cannot take the CPU the client needs to read it, as it cannot when the
    client is another machine."""
    ports = {c: _free_port() for c in CASES}
    env = {**os.environ, "MLTRACE_EXPORTER": "none"}
    pin_ok = pin and (os.cpu_count() or 1) >= 2
    server_cpu, client_cpu = (_pinned(0), _pinned(1)) if pin_ok else ([], [])
    procs = [
        subprocess.Popen([*server_cpu, sys.executable, str(HERE / "_serve.py"), c, str(p)], env=env)
        for c, p in ports.items()
    ]
    body = json.dumps([b.decode() for b in bodies(256)])  # distinct bodies, cycled
    use_wrk = shutil.which("wrk") is not None
    results: dict[str, list[float]] = {c: [] for c in CASES}
    try:
        for p in ports.values():
            _wait(p)
        for p in ports.values():  # warm up
            warm = [*client_cpu, sys.executable, "-c", CLIENT, str(p), "200", body]
            subprocess.run(warm, check=True, capture_output=True)
        for _ in range(rounds):
            for (c, p), proc in zip(ports.items(), procs, strict=True):
                cpu0 = _cpu_seconds(proc.pid)
                if use_wrk:
                    results[c].append(_wrk(p, 3, client_cpu))
                else:
                    out = subprocess.run(
                        [*client_cpu, sys.executable, "-c", CLIENT, str(p), str(n), body],
                        check=True, capture_output=True, text=True,
                    ).stdout
                    results[c].append(float(out.strip()))
                if not use_wrk:
                    CPU.setdefault(c, []).append((_cpu_seconds(proc.pid) - cpu0) / n * 1e6)
                out = subprocess.run(
                    [*client_cpu, sys.executable, "-c", PACED_CLIENT, str(p), str(n // 2), str(PERIOD), body],
                    check=True, capture_output=True, text=True,
                ).stdout
                PACED.setdefault(c, []).extend(json.loads(out))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(timeout=10)
    return results
