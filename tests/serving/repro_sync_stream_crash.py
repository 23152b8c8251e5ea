"""Reproducer (not a test) for a server crash seen while writing tests/serving: SIGSEGV in CPython.

    python tests/serving/repro_sync_stream_crash.py [--rounds 60] [--http httptools]   # run from a checkout

Six clients at once, each ``rounds`` × 4 apps: ``GET /stream-sync?n=100000`` (a decorated
sync-generator stage that Starlette runs in its thread pool), read the first chunk, walk away;
every third time a 200 KB POST is pipelined behind it. uvicorn ``--http httptools``, traced.
Seen on Python 3.11.7 (2-core machine, loaded): the server died with SIGSEGV in 3 of 5 runs with
this branch's middleware and 3 of 4 with the one before it (8f7c346), in 1 of 3 with the stages
branch's decorators; 0 of 2 untraced and 0 of 3 with the stage decorator removed from that
generator. faulthandler put the crash in ``ContextVar.set`` (OpenTelemetry's ``attach``) on the
event-loop thread. Prints the server's exit status (-11 is the crash).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
from pathlib import Path

sys.path[:0] = [str(Path(__file__).parent), str(Path(__file__).parents[1])]
from _serving import serve  # noqa: E402
from _wire import Wire, request  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=60)
    parser.add_argument("--http", default="httptools")
    args = parser.parse_args()
    failures: list[str] = []

    def client(port: int) -> None:
        for i in range(args.rounds):
            for app in ("starlette", "fastapi-off", "mounted", "fastapi"):
                path = ("/v1" if app == "mounted" else "") + f"/stream-sync?n={100_000 if i % 2 else 50}"
                try:
                    with Wire(port) as wire:
                        wire.send(request("GET", path, [(b"x-app", app.encode())]))
                        wire.head()
                        wire.chunk()
                        if i % 3 == 0:
                            wire.send(request("POST", "/echo", [(b"x-app", app.encode())], b"x" * 200_000))
                except OSError as exc:
                    failures.append(f"round {i}, {app}: {exc!r}")
                    return

    tmp = tempfile.mkdtemp(prefix="mltrace-crash-")
    with serve(args.http, Path(tmp)) as server:
        threads = [threading.Thread(target=client, args=(server.port,)) for _ in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert server.proc is not None
        print("client failures:", failures[:3], "server exit status:", server.proc.poll(), "log:", server.log)


if __name__ == "__main__":
    main()
