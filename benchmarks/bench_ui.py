"""How long ``mltrace ui``'s pages take over a local store of 100,000 traces.

    python benchmarks/bench_ui.py                      # 100,000 traces, pages at the CLI's default scan
    python benchmarks/bench_ui.py --traces 100000 --scan 100000 --repeat 3
    python benchmarks/bench_ui.py --keep /tmp/ui.db; python benchmarks/bench_ui.py --store /tmp/ui.db --scan 100000
    python benchmarks/bench_ui.py --store /tmp/mltrace-scale/planted-100000.db --since 24h --pages /

Seeds a temporary store with bench_cli.py's synthetic traces (the demo's shape, two planted
causes), starts ``mltrace ui`` as a real process on a free loopback port, and times each page and
API answer over HTTP: "cold" is the first request for a window (the store is read), "warm" a
repeat within the server's 10 s cache of fetched traces (rendering and analysis only, no read).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from bench_cli import _batches

PAGES = ("/", "/slow", "/drift", "/api/slow", "/api/stats", "/api/drift")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far (/proc: steadier than wall time on a busy box)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", type=int, default=100_000)
    parser.add_argument("--scan", type=int, default=None, help="?scan= for every page (default: the CLI's 10,000)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--store", help="reuse this store (seeded by an earlier run with --keep) instead of seeding")
    parser.add_argument("--keep", help="seed into this path and keep it")
    parser.add_argument("--since", default="1h", help="?since= for every page (24h for bench_cli.py's 12 h stores)")
    parser.add_argument("--pages", nargs="+", help="time only these (default: every page; / is the overview)")
    args = parser.parse_args()
    from mltrace.export import LocalStore

    with tempfile.TemporaryDirectory() as tmp:
        path = args.store or args.keep or os.path.join(tmp, "bench.db")
        if not args.store:
            store = LocalStore(path)
            t = time.perf_counter()
            for batch in _batches(args.traces, "bench", 5000):
                store.write(batch)
            store.close()
            print(f"seeded {args.traces:,} traces ({args.traces * 5:,} spans) in {time.perf_counter() - t:.1f} s")
        port = _port()
        mltrace = Path(sys.executable).parent / "mltrace"
        proc = subprocess.Popen([str(mltrace), "ui", "--source", f"local://{path}", "--port", str(port),
                                 "--service", "bench"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(100):
                try:
                    httpx.get(base + "/static/ui.css", timeout=1)
                    break
                except httpx.HTTPError:
                    time.sleep(0.1)
            query = {"since": args.since, **({"scan": str(args.scan)} if args.scan else {})}
            trace_id = httpx.get(base + "/api/slow", params=query, timeout=600).json()["traces"][0]["trace_id"]
            pages = args.pages or [*PAGES, f"/traces/{trace_id}", f"/lineage/{trace_id}"]
            print(f"mltrace ui over {args.traces:,} traces, scan {args.scan or 10_000:,}, "
                  f"{args.repeat} rounds (load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs)")
            for page in pages:
                cold, warm, cpu = [], [], []
                for _ in range(args.repeat):
                    time.sleep(10.5)  # let the server's cache of fetched traces expire: a cold request
                    for bucket in (cold, warm):
                        c0, t0 = _cpu_s(proc.pid), time.perf_counter()
                        r = httpx.get(base + page, params=query, timeout=600)
                        bucket.append(time.perf_counter() - t0)
                        if bucket is cold:
                            cpu.append(_cpu_s(proc.pid) - c0)
                        r.raise_for_status()
                print(f"  {page:<44} cold: wall best {min(cold):.2f} s, median {statistics.median(cold):.2f} s, "
                      f"server CPU best {min(cpu):.2f} s; warm best {min(warm):.2f} s", flush=True)
        finally:
            proc.terminate()
            proc.wait(20)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
