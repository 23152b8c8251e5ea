"""Ctrl-C during a long read stops the command cleanly: ``interrupted``, exit status 130, no
traceback (docs/cli.md). Run as a user runs it: the installed ``mltrace`` in a child process,
reading from a backend that accepts the connection and then never answers (a wedged query
service), interrupted with a real SIGINT once the read is under way."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from tests._loopback import HangServer


@pytest.mark.parametrize("scheme", ["jaeger", "zipkin"])
@pytest.mark.parametrize("command", [["slow", "--since", "1h"], ["stats", "--since", "1h"]])
def test_ctrl_c_during_a_read_exits_130_without_a_traceback(scheme: str, command: list[str]) -> None:
    with HangServer() as server:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mltrace.cli", *command, "--service", "svc",
             "--source", f"{scheme}://127.0.0.1:{server.port}"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "NO_COLOR": "1"},
        )
        try:
            deadline = time.monotonic() + 30  # importing numpy and friends on a loaded machine
            while server.connections == 0 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.02)
            assert server.connections > 0, f"the command never connected: {proc.poll()=}"
            time.sleep(0.2)  # the request is written and the client waits for the answer
            started = time.monotonic()
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=8)
            took = time.monotonic() - started
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 130, (proc.returncode, out, err)
    assert "interrupted" in err
    assert "Traceback" not in err and "Traceback" not in out, err
    assert took < 5, f"{took:.1f} s from Ctrl-C to exit: the read did not stop"
