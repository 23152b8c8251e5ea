"""How long ``mltrace slow`` takes over 10,000 traces: from the local store, and over Jaeger's API.

    python benchmarks/bench_cli.py local              # seeds a temporary store, times `slow`
    python benchmarks/bench_cli.py jaeger             # seeds Jaeger over OTLP (scripts/backends.sh up jaeger)
    python benchmarks/bench_cli.py jaeger --traces 10000 --repeat 3 --v1
    python benchmarks/bench_cli.py jaeger --traces 100000 --repeat 2 --otlp http://127.0.0.1:PORT \
        --query http://127.0.0.1:PORT   # a Jaeger of your own: see benchmarks/README.md
    python benchmarks/bench_cli.py local --traces 10000 --repeat 5
    python benchmarks/bench_cli.py scale --sizes 10000 100000 1000000 --keep /tmp/mltrace-scale
    python benchmarks/bench_cli.py window --sizes 10000 100000 1000000 --keep /tmp/mltrace-scale

Traces are synthetic but shaped like the demo's (server span, feature_lookup, preprocess,
inference, postprocess) with two planted causes: inference is slow for large inputs, feature
lookups miss the cache for a few customers. Spans are built as SDK ``ReadableSpan`` objects and
written through the real ``LocalStore.write`` / OTLP exporter, so the store holds exactly what a
served app would have written. Each run checks that `slow` still names both planted causes.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.trace import SpanContext, SpanKind, TraceFlags
from opentelemetry.trace.status import Status, StatusCode

from mltrace.analysis import analyze_slow, slow_traces
from mltrace.query import open_source

COLD = {"c-3", "c-7"}


def synthetic_spans(n_traces: int, service: str, seed: int = 0) -> Iterator[list[ReadableSpan]]:
    """Yields the spans of one trace at a time, newest trace last, all within the last ~10 minutes."""
    rng = random.Random(seed)
    # Trace ids differ per service: the same seed would give every run the same ids, and a backend
    # that still holds an earlier run (Jaeger's memory store) would merge both into traces twice
    # the size (a third run on one Jaeger read 15-span traces and took 12 s instead of 1.4 s).
    salt = int.from_bytes(hashlib.sha256(service.encode()).digest()[:16], "big")
    resource = Resource.create({"service.name": service, "ml.model.name": "bench", "ml.model.version": "1"})
    now = time.time_ns()
    step = 600_000_000_000 // max(1, n_traces)
    for i in range(n_traces):
        trace_id = (rng.getrandbits(128) ^ salt) or 1
        customer = f"c-{rng.randrange(40)}"
        size = rng.choice((2048, 4096)) if rng.random() < 0.08 else rng.choice((30, 60, 120, 240))
        miss = customer in COLD
        t0 = now - (n_traces - i) * step
        parts = [
            ("feature_lookup", (20_000_000 if miss else 300_000) + rng.randrange(100_000),
             {"ml.feature_store.name": "redis", "ml.feature_store.hits": int(not miss),
              "ml.feature_store.misses": int(miss), "app.customer.id": customer}),
            ("preprocess", 200_000 + rng.randrange(100_000), {"ml.input.size": size, "ml.input.mean": rng.random(),
                                                              "ml.input.fingerprint": f"fp-{i // 4:08x}"}),
            ("inference", (40_000_000 if size > 1000 else 1_500_000) + rng.randrange(500_000),
             {"ml.model.name": "bench", "ml.model.version": rng.choice(("1", "2")), "ml.input.size": size,
              "ml.drift.score": rng.random() * 0.3, "ml.output.confidence": rng.random()}),
            ("postprocess", 100_000 + rng.randrange(50_000), {"ml.output.prediction": rng.choice(("yes", "no"))}),
        ]
        root_id = rng.getrandbits(64) or 1
        root_ctx = SpanContext(trace_id, root_id, False, TraceFlags(1))
        cursor = t0 + 100_000
        spans: list[ReadableSpan] = []
        for name, dur, attrs in parts:
            ctx = SpanContext(trace_id, rng.getrandbits(64) or 1, False, TraceFlags(1))
            spans.append(ReadableSpan(name=name, context=ctx, parent=root_ctx, resource=resource,
                                      attributes={"ml.stage": name, **attrs}, kind=SpanKind.INTERNAL,
                                      status=Status(StatusCode.UNSET), start_time=cursor, end_time=cursor + dur))
            cursor += dur
        spans.append(ReadableSpan(name="POST /predict", context=root_ctx, parent=None, resource=resource,
                                  attributes={"http.route": "/predict", "http.response.status_code": 200},
                                  kind=SpanKind.SERVER, status=Status(StatusCode.UNSET), start_time=t0,
                                  end_time=cursor + 150_000))
        yield spans


def seed_direct(path: str, n_traces: int, *, planted: bool = True, seed: int = 0, span_hours: float = 12.0) -> None:
    """The same traces as :func:`synthetic_spans` (same attributes, same planted causes), written
    straight into the store's table with ``executemany`` instead of through the SDK: a million
    traces (five million rows) in about a minute rather than ten. ``planted=False`` keeps every
    attribute but no attribute changes any stage's time (for the false-cause rate). Traces are
    spread evenly over the last ``span_hours``."""
    import json

    import numpy as np

    from mltrace.export import LocalStore

    rng = np.random.default_rng(seed)
    store = LocalStore(path)
    resource = json.dumps({"service.name": "bench", "ml.model.name": "bench", "ml.model.version": "1"},
                          separators=(",", ":"))
    now = time.time_ns()
    step = int(span_hours * 3600e9) // max(1, n_traces)
    cols = ("trace_id, span_id, parent_span_id, name, kind, service_name, start_ns, end_ns, status_code, "
            "status_message, attributes, events, links, resource")
    sql = f"INSERT INTO spans ({cols}) VALUES ({','.join('?' * 14)})"
    chunk = 50_000
    conn = store._conn
    for lo in range(0, n_traces, chunk):
        n = min(chunk, n_traces - lo)
        ids = rng.integers(0, 2**63, size=(n, 6), dtype=np.int64)
        customer = rng.integers(0, 40, n)
        large = rng.random(n) < 0.08
        size = np.where(large, rng.choice((2048, 4096), n), rng.choice((30, 60, 120, 240), n))
        miss = np.isin(customer, (3, 7))
        slow_fl = miss if planted else np.zeros(n, dtype=bool)
        slow_inf = large if planted else np.zeros(n, dtype=bool)
        d_fl = np.where(slow_fl, 20_000_000, 300_000) + rng.integers(0, 100_000, n)
        d_pre = 200_000 + rng.integers(0, 100_000, n)
        d_inf = np.where(slow_inf, 40_000_000, 1_500_000) + rng.integers(0, 500_000, n)
        d_post = 100_000 + rng.integers(0, 50_000, n)
        version = rng.integers(1, 3, n)
        mean, drift, conf, pred = rng.random(n), rng.random(n) * 0.3, rng.random(n), rng.random(n) < 0.5
        # ~4 requests per distinct input, so `lineage --fingerprint` finds a few predictions each
        fingerprint = rng.integers(0, max(1, n_traces // 4), n)
        rows = []
        for j in range(n):
            i = lo + j
            tid = f"{int(ids[j, 0]):016x}{int(ids[j, 1]):016x}"
            root = f"{int(ids[j, 2]):016x}"
            t0 = now - (n_traces - i) * step
            c, sz, m = int(customer[j]), int(size[j]), int(miss[j])
            cur = t0 + 100_000
            parts = (
                ("feature_lookup", int(d_fl[j]), f'{{"ml.stage":"feature_lookup","ml.feature_store.name":"redis",'
                 f'"ml.feature_store.hits":{1 - m},"ml.feature_store.misses":{m},"app.customer.id":"c-{c}"}}'),
                ("preprocess", int(d_pre[j]), f'{{"ml.stage":"preprocess","ml.input.size":{sz},'
                 f'"ml.input.mean":{float(mean[j])!r},"ml.input.fingerprint":"fp-{int(fingerprint[j]):08x}"}}'),
                ("inference", int(d_inf[j]), f'{{"ml.stage":"inference","ml.model.name":"bench",'
                 f'"ml.model.version":"{int(version[j])}","ml.input.size":{sz},"ml.drift.score":{float(drift[j])!r},'
                 f'"ml.output.confidence":{float(conf[j])!r}}}'),
                ("postprocess", int(d_post[j]), f'{{"ml.stage":"postprocess","ml.output.prediction":'
                 f'"{"yes" if pred[j] else "no"}"}}'),
            )
            for k, (name, dur, attrs) in enumerate(parts):
                rows.append((tid, f"{int(ids[j, 3 + k % 3]) + k:016x}", root, name, "INTERNAL", "bench", cur,
                             cur + dur, "UNSET", None, attrs, "[]", "[]", resource))
                cur += dur
            rows.append((tid, root, None, "POST /predict", "SERVER", "bench", t0, cur + 150_000, "UNSET", None,
                         '{"http.route":"/predict","http.response.status_code":200}', "[]", "[]", resource))
        conn.execute("BEGIN")
        conn.executemany(sql, rows)
        conn.execute("COMMIT")
    store.close()


def _batches(n_traces: int, service: str, size: int) -> Iterator[list[ReadableSpan]]:
    batch: list[ReadableSpan] = []
    for spans in synthetic_spans(n_traces, service):
        batch.extend(spans)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _check(report: dict[str, Any]) -> str:
    found = {(c["stage"], c["attribute"]) for c in report["causes"]}
    ok = ("inference", "ml.input.size") in found and ("feature_lookup", "ml.feature_store.misses") in found
    return "both planted causes named" if ok else f"MISSED planted causes: {sorted(found)}"


def _time(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    """Wall times of ``repeat`` runs (and the last result); CPU times go to ``_CPU``."""
    times, result = [], None
    _CPU.clear()
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        result = fn()
        times.append(time.perf_counter() - t)
        _CPU.append(time.process_time() - c)
    return times, result


_CPU: list[float] = []  # process CPU seconds of the last _time() runs: steadier than wall time on a busy box


def bench_local(n_traces: int, repeat: int) -> None:
    from mltrace.export import LocalStore

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bench.db")
        store = LocalStore(path)
        t = time.perf_counter()
        for batch in _batches(n_traces, "bench", 5000):
            store.write(batch)
        store.close()
        print(f"seeded {n_traces:,} traces ({n_traces * 5:,} spans) in {time.perf_counter() - t:.1f} s")
        source = open_source(f"local://{path}")
        rows = []
        fetch_times, traces = _time(lambda: source.find_traces("bench", 3600.0, n_traces), repeat)
        rows.append(("read + decode (find_traces)", fetch_times, list(_CPU)))
        analyze_times, report = _time(lambda: analyze_slow(traces, limit=10), repeat)
        rows.append(("analysis (analyze_slow)", analyze_times, list(_CPU)))
        total_times, report = _time(
            lambda: slow_traces(source, service="bench", since="1h", limit=10, scan=n_traces), repeat
        )
        rows.append(("slow_traces end to end", total_times, list(_CPU)))
        source.close()
    print(f"local store, {len(traces):,} traces, {repeat} runs (load average {os.getloadavg()[0]:.1f}, "
          f"{os.cpu_count()} CPUs):")
    for label, wall, cpu in rows:
        print(f"  {label:<28} wall best {min(wall):.3f} s, median {statistics.median(wall):.3f} s;"
              f" CPU best {min(cpu):.3f} s")
    print(f"  {_check(report)}")


def _seed_jaeger(n_traces: int, otlp: str, query: str) -> str:
    """``n_traces`` bench traces sent to Jaeger over OTLP as a fresh service, once all are readable."""
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    from mltrace.query.jaeger import JaegerSource

    service = f"bench-{uuid.uuid4().hex[:8]}"
    exporter = OTLPSpanExporter(endpoint=otlp, insecure=True, timeout=60)  # no retry, hence no duplicate spans
    t = time.perf_counter()
    for batch in _batches(n_traces, service, 500):  # the SDK's batch size; well under gRPC's 4 MiB limit
        result = exporter.export(batch)
        if result.name != "SUCCESS":
            raise SystemExit(f"OTLP export to {otlp} failed: {result}")
    exporter.shutdown()
    print(f"seeded {n_traces:,} traces into Jaeger as {service} in {time.perf_counter() - t:.1f} s "
          f"(reuse them within the hour: --service {service})", flush=True)
    source = JaegerSource(query)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # ingestion is asynchronous
        if service in source.services() and len(source.trace_window(service, 3600.0)) >= n_traces:
            break
        time.sleep(2)
    else:
        raise SystemExit(f"Jaeger did not return all {n_traces} traces of {service} within 300 s")
    source.close()
    return service


def bench_jaeger(
    n_traces: int, repeat: int, otlp: str, query: str, service: str | None, v1: bool, one: bool
) -> None:
    """``mltrace slow`` over Jaeger end to end, as a user runs it, and where its time goes: the
    window read in slices (what the CLI does) beside the same window in one api_v3 request (the
    previous path) and, with ``--v1``, over the v1 API; analysis time on its own."""
    from mltrace.analysis._gc import paused_gc
    from mltrace.query import jaeger
    from mltrace.query.jaeger import JaegerSource

    service = service or _seed_jaeger(n_traces, otlp, query)
    argv = ["slow", "--source", "jaeger://" + query.split("://", 1)[1], "--service", service, "--since", "1h"]
    print(f"command: mltrace {' '.join(argv)} --json; {repeat} rounds, side by side "
          f"(load average {os.getloadavg()[0]:.1f}, {os.cpu_count()} CPUs)", flush=True)
    probe = jaeger._PROBE
    # "one request": the window in one api_v3 answer, as before the slices (a first page of the
    # window's size + 1; Jaeger refuses a search depth above its memory store's max_traces)
    # (above 20,000 traces only with --one-request: ~300 MB of JSON at 100,000, 2.6 GB peak)
    reads: dict[str, int | None] = {"sliced": probe, **({"one request": n_traces + 1} if one else {}),
                                    **({"v1 API": None} if v1 else {})}
    rows: dict[str, list[tuple[float, int]]] = {k: [] for k in reads}
    cli: list[tuple[float, float]] = []
    analysis: list[float] = []
    report: dict[str, Any] = {}
    traces: list[Any] = []
    for _ in range(repeat):
        wall, rss, report = _cli(argv)
        cli.append((wall, rss))
        for label, first in reads.items():
            source = JaegerSource(query, timeout=300.0)  # one request of a large window takes long
            jaeger._PROBE = first if first is not None else probe
            source._v3 = False if first is None else None
            traces = []  # the previous round's traces freed before this read
            with paused_gc():  # as `slow` reads
                t = time.perf_counter()
                traces = source.find_traces(service, 3600.0, sys.maxsize)
                rows[label].append((time.perf_counter() - t, source.api.requests - 1))  # less the service check
            source.close()
        jaeger._PROBE = probe
        with paused_gc():
            t = time.perf_counter()
            analyze_slow(traces, limit=10)
            analysis.append(time.perf_counter() - t)
    walls = [w for w, _ in cli]
    print(f"Jaeger, {len(traces):,} traces in the window (load average now {os.getloadavg()[0]:.1f}):")
    print(f"  mltrace slow end to end      median {statistics.median(walls):.2f} s, fastest {min(walls):.2f} s, "
          f"peak RSS {max(r for _, r in cli):.0f} MB; scanned {report['scanned']:,}, analysed "
          f"{report['analysed']:,}, sampled {report['sampled']}; {_check(report)}")
    for label, runs in rows.items():
        times = [t for t, _ in runs]
        print(f"  read ({label + ')':<13}          median {statistics.median(times):.2f} s, fastest {min(times):.2f} s "
              f"in {runs[0][1]} requests")
    print(f"  analysis of all (analyze_slow) median {statistics.median(analysis):.2f} s, "
          f"fastest {min(analysis):.2f} s")


class _NewestOnly:
    """A source without ``trace_window``: ``slow`` then takes the previous commit's path (the
    newest ``--scan`` traces, each decoded into Python objects). For side-by-side runs only."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.url = inner.url

    def find_traces(self, *args: Any, **kwargs: Any) -> Any:
        return self._inner.find_traces(*args, **kwargs)


def _cli(argv: list[str]) -> tuple[float, float, dict[str, Any]]:
    """``mltrace ARGV --json`` as a user runs it: wall seconds, peak RSS (MB), the report."""
    import json
    import subprocess

    # Peak RSS from the child's own /proc/PID/status VmHWM, polled: wait4's ru_maxrss also counts
    # the parent's pages at fork, so a bench process holding 10,000 traces made a 180 MB command
    # read 403 MB.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "mltrace"), *argv, "--json"],
                                stdout=out, stderr=err)
        peak_kb = 0
        while proc.poll() is None:
            try:
                with open(f"/proc/{proc.pid}/status") as status_file:
                    for line in status_file:
                        if line.startswith("VmHWM:"):
                            peak_kb = max(peak_kb, int(line.split()[1]))
            except (OSError, ValueError):
                pass
            time.sleep(0.02)
        wall = time.perf_counter() - t
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise SystemExit(f"mltrace {argv[0]} failed: {err.read()!r}")
        return wall, peak_kb / 1024, json.loads(out.read())


def _cli_slow(path: str, scan: int | None) -> tuple[float, float, dict[str, Any]]:
    """``mltrace slow --json`` as a user runs it: wall seconds, peak RSS (MB), the report."""
    argv = ["slow", "--source", f"local://{path}", "--service", "bench", "--since", "24h"]
    return _cli(argv + (["--scan", str(scan)] if scan is not None else []))


def _store(workdir: str, n: int) -> str:
    path = os.path.join(workdir, f"planted-{n}.db")
    if not os.path.exists(path):
        t = time.perf_counter()
        seed_direct(path, n)
        print(f"  seeded {n:,} traces in {time.perf_counter() - t:.0f} s", flush=True)
    return path


def _agreement(sample: dict[str, Any], full: dict[str, Any]) -> str:
    """How far the sampled `stats` is from the full decode of the same window."""
    shares = {r["stage"]: r["share_of_time"] for r in full["stages"]}
    share_err = max(abs(r["share_of_time"] - shares.get(r["stage"], 0.0)) for r in sample["stages"])
    rel = {p: abs(sample["duration_ms"][p] - full["duration_ms"][p]) / full["duration_ms"][p] for p in ("p50", "p95")}
    group = {g["value"]: g["count"] / full["analysed"] for g in full["by"]["groups"]}
    group_err = max(abs(g["count"] / sample["analysed"] - group.get(g["value"], 0.0)) for g in sample["by"]["groups"])
    return (f"p50 {rel['p50']:.1%} off, p95 {rel['p95']:.1%} off, stage shares within {share_err:.3f}, "
            f"--by group shares within {group_err:.3f}, requests {sample['requests']:,.0f} vs {full['requests']:,.0f}")


def bench_window(sizes: list[int], repeat: int, keep: str | None, full_up_to: int) -> None:
    """`stats --by`, `drift` and `lineage --fingerprint` end to end over 10k..1M traces (the
    stores of :func:`bench_scale`); the sampled `stats` beside the full decode up to ``full_up_to``."""
    workdir = keep or tempfile.mkdtemp()
    os.makedirs(workdir, exist_ok=True)
    print(f"mltrace CMD --since 24h --json, {repeat} runs each (load average {os.getloadavg()[0]:.1f}, "
          f"{os.cpu_count()} CPUs); data in {workdir}")
    for n in sizes:
        path = _store(workdir, n)
        base = ["--source", f"local://{path}", "--service", "bench", "--since", "24h"]
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
            fingerprint = conn.execute(
                "SELECT json_extract(attributes, '$.\"ml.input.fingerprint\"') FROM spans WHERE name = 'preprocess' "
                "LIMIT 1 OFFSET ?", (n // 2,)).fetchone()[0]
        commands = {
            "stats --by ml.model.version": ["stats", *base, "--by", "ml.model.version"],
            "drift": ["drift", *base],
            "lineage --fingerprint": ["lineage", "--fingerprint", fingerprint, "--source", f"local://{path}"],
        }
        for name, argv in commands.items():
            runs = [_cli(argv) for _ in range(repeat)]
            walls, rss, report = [r[0] for r in runs], max(r[1] for r in runs), runs[-1][2]
            what = (f"{report['count']} predictions" if name.startswith("lineage") else
                    f"scanned {report['scanned']:,}, analysed {report['analysed']:,}, sampled {report['sampled']}, "
                    f"requests {report['requests']:,.0f}")
            print(f"  {n:>9,} traces, {name}: {statistics.median(walls):.2f} s median, {min(walls):.2f} s fastest, "
                  f"peak RSS {rss:.0f} MB; {what}", flush=True)
        if 10_000 < n <= full_up_to:
            sample = _cli(commands["stats --by ml.model.version"])[2]
            wall, rss, full = _cli(commands["stats --by ml.model.version"] + ["--scan", str(n)])
            print(f"  {n:>9,} traces, stats sampled vs full decode (--scan {n}: {wall:.1f} s, {rss:.0f} MB): "
                  f"{_agreement(sample, full)}", flush=True)


def bench_scale(sizes: list[int], repeat: int, null_seeds: int, keep: str | None, old_up_to: int) -> None:
    """`slow` end to end over 10k..1M traces written straight into SQLite (:func:`seed_direct`),
    planted causes and no-cause data; the previous path beside it up to ``old_up_to`` traces."""
    workdir = keep or tempfile.mkdtemp()
    os.makedirs(workdir, exist_ok=True)
    print(f"mltrace slow --since 24h --json, {repeat} runs each (load average {os.getloadavg()[0]:.1f}, "
          f"{os.cpu_count()} CPUs); data in {workdir}")
    for n in sizes:
        path = _store(workdir, n)
        runs = [_cli_slow(path, None) for _ in range(repeat)]
        walls, rss = [r[0] for r in runs], max(r[1] for r in runs)
        report = runs[-1][2]
        print(f"  {n:>9,} traces: slow {statistics.median(walls):.2f} s median, {min(walls):.2f} s fastest, "
              f"peak RSS {rss:.0f} MB; analysed {report['analysed']:,}; {_check(report)}", flush=True)
        if n <= old_up_to:
            source = open_source(f"local://{path}")
            old_walls, old_report = _time(
                lambda src=source, k=n: slow_traces(_NewestOnly(src), service="bench", since="24h", limit=10, scan=k),
                1,
            )
            source.close()
            print(f"  {n:>9,} traces, previous path (--scan {n}, in-process): {min(old_walls):.2f} s; "
                  f"{_check(old_report)}", flush=True)
        false = []
        for seed in range(null_seeds):
            null = os.path.join(workdir, f"null-{n}-{seed}.db")
            if not os.path.exists(null):
                seed_direct(null, n, planted=False, seed=100 + seed)
            false.append(len(_cli_slow(null, None)[2]["causes"]))
        if false:
            print(f"  {n:>9,} traces, no planted cause: {sum(false)} causes named over {len(false)} data sets "
                  f"({sum(1 for f in false if f)} of {len(false)} with any)", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("target", choices=("local", "jaeger", "scale", "window"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--null-seeds", type=int, default=3, help="scale: no-cause data sets per size")
    parser.add_argument("--keep", help="scale: keep the generated stores in this folder (reused next run)")
    parser.add_argument("--old-up-to", type=int, default=100_000, help="scale: time the previous path up to here")
    parser.add_argument("--full-up-to", type=int, default=100_000, help="window: full decode beside, up to here")
    parser.add_argument("--traces", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--service", help="jaeger: time this already seeded service (seeded within the hour)")
    parser.add_argument("--v1", action="store_true", help="jaeger: time the v1 API's read beside")
    parser.add_argument("--one-request", action="store_true",
                        help="jaeger: time the window in one api_v3 request beside (default up to 20,000 traces)")
    parser.add_argument("--otlp", default=os.environ.get("MLTRACE_E2E_OTLP_ENDPOINT", "http://127.0.0.1:4317"))
    parser.add_argument("--query", default=os.environ.get("MLTRACE_E2E_JAEGER_QUERY_URL", "http://127.0.0.1:16686"))
    args = parser.parse_args(argv)
    if args.target == "local":
        bench_local(args.traces, args.repeat)
    elif args.target == "scale":
        bench_scale(args.sizes, args.repeat, args.null_seeds, args.keep, args.old_up_to)
    elif args.target == "window":
        bench_window(args.sizes, args.repeat, args.keep, args.full_up_to)
    else:
        bench_jaeger(args.traces, args.repeat, args.otlp, args.query, args.service, args.v1,
                     args.one_request or args.traces <= 20_000)
    return 0


if __name__ == "__main__":
    sys.exit(main())
