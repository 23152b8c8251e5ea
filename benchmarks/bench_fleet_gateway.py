"""The collector gateway (deploy/gateway.yaml): throughput in spans/s, and tail_sampling memory per
10,000 in-flight traces. Results in benchmarks/README.md ("Fleet gateway").

    python benchmarks/bench_fleet_gateway.py [--traces 20000] [--spans 5] [--senders 2]

Starts its own fleet (scripts/fleet.sh up, a temporary state directory, free ports) and stops it.
OTLP export requests are built and serialised before the clock starts (distinct trace ids, 5 spans
per trace like a two-service mltrace request, mltrace's attributes), then sent over gRPC by
``--senders`` threads as fast as the gateway accepts them. Reported: wall-clock spans/s until the
gateway's receiver counted them all, and spans per CPU-second of the gateway process (steadier on a
shared machine). Memory: the gateway is restarted with a 120 s decision_wait so nothing is decided,
10,000 traces are sent, and its Go heap (``otelcol_process_runtime_heap_alloc_bytes``) and RSS are
read before and after. Both tail_sampling pipelines (kept, ratio) buffer every trace.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import grpc
import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, ScopeSpans, Span

ROOT = Path(__file__).resolve().parents[1]
FLEET = ROOT / "scripts" / "fleet.sh"
EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"


def kv(key: str, value: str | float | bool) -> KeyValue:
    if isinstance(value, bool):
        return KeyValue(key=key, value=AnyValue(bool_value=value))
    if isinstance(value, float):
        return KeyValue(key=key, value=AnyValue(double_value=value))
    return KeyValue(key=key, value=AnyValue(string_value=value))


def build(n_traces: int, spans: int, per_request: int, rng: random.Random) -> list[bytes]:
    """Serialised export requests of ``per_request`` traces each (one resource per trace)."""
    out: list[bytes] = []
    now = time.time_ns()
    names = ["POST /score", "POST", "POST /predict", "preprocess", "inference", "postprocess", "feature_lookup"]
    for start in range(0, n_traces, per_request):
        req = ExportTraceServiceRequest()
        for _ in range(min(per_request, n_traces - start)):
            tid = rng.getrandbits(128).to_bytes(16, "big")
            rs = ResourceSpans(resource=Resource(attributes=[kv("service.name", "bench")]))
            ss = ScopeSpans()
            parent = b""
            for k in range(spans):
                sid = rng.getrandbits(64).to_bytes(8, "big")
                ss.spans.append(Span(
                    trace_id=tid, span_id=sid, parent_span_id=parent, name=names[k % len(names)], kind=2,
                    start_time_unix_nano=now + k * 1000, end_time_unix_nano=now + 5_000_000 - k * 1000,
                    attributes=[kv("ml.stage", names[k % len(names)]), kv("ml.drift.score", 0.12),
                                kv("ml.drift.alert", False), kv("ml.input.fingerprint", "3f2a9c0d1e4b5a6c"),
                                kv("ml.model.name", "bench-model")],
                ))
                parent = sid
            rs.scope_spans.append(ss)
            req.resource_spans.append(rs)
        out.append(req.SerializeToString())
    return out


def fleet(state: Path, *args: str, **env: str) -> str:
    full = {**os.environ, "MLTRACE_FLEET_STATE": str(state), **env}
    return subprocess.run([str(FLEET), *args], env=full, check=True, capture_output=True, text=True).stdout


def endpoints(state: Path) -> dict[str, str]:
    out = {}
    for line in fleet(state, "env").splitlines():
        key, _, value = line.removeprefix("export ").partition("=")
        out[key] = value
    return out


def metric(url: str, name: str) -> float:
    text = httpx.get(url, timeout=5).text
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total += float(line.rsplit(" ", 1)[1])
    return total


def gateway_pid(state: Path) -> int:
    return int((state / "gateway.pid").read_text())


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) / 1024 if match else float("nan")


def send(target: str, payloads: list[bytes], senders: int) -> None:
    channel = grpc.insecure_channel(target)
    call = channel.unary_unary(EXPORT, request_serializer=None, response_deserializer=None)
    parts = [payloads[i::senders] for i in range(senders)]

    def run(part: list[bytes]) -> None:
        for p in part:
            call(p, timeout=30)

    threads = [threading.Thread(target=run, args=(part,)) for part in parts]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    channel.close()


DECIDED = "otelcol_processor_tail_sampling_global_count_traces_sampled"


def wait_accepted(url: str, want: float, timeout: float = 120) -> None:
    wait_for(url, "otelcol_receiver_accepted_spans", want, timeout)


def wait_for(url: str, name: str, want: float, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while metric(url, name) < want:
        if time.monotonic() > deadline:
            raise SystemExit("the gateway did not accept every span in time")
        time.sleep(0.05)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--traces", type=int, default=20_000)
    ap.add_argument("--spans", type=int, default=5)
    ap.add_argument("--senders", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    rng = random.Random(1)
    with tempfile.TemporaryDirectory() as tmp:
        state = Path(tmp)
        fleet(state, "up", FLEET_DECISION_WAIT="2s")
        try:
            ep = endpoints(state)
            target = ep["MLTRACE_FLEET_OTLP_ENDPOINT"].removeprefix("http://")
            murl = ep["MLTRACE_FLEET_GATEWAY_METRICS_URL"]
            for r in range(args.rounds):
                payloads = build(args.traces, args.spans, 100, rng)
                base = metric(murl, "otelcol_receiver_accepted_spans")
                pid = gateway_pid(state)
                cpu0, t0 = cpu_seconds(pid), time.monotonic()
                decided = metric(murl, DECIDED)
                send(target, payloads, args.senders)
                wait_accepted(murl, base + args.traces * args.spans)
                wall = time.monotonic() - t0
                # then every trace decided by both pipelines (after decision_wait) and the kept ones sent
                wait_for(murl, DECIDED, decided + 2 * args.traces)
                time.sleep(1.5)
                cpu = cpu_seconds(pid) - cpu0
                n = args.traces * args.spans
                print(f"round {r}: {n} spans accepted in {wall:.2f} s = {n / wall:,.0f} spans/s wall; gateway CPU to "
                      f"receive, decide (x2) and forward: {cpu:.2f} s = {n / cpu:,.0f} spans per CPU-second; "
                      f"load {os.getloadavg()[0]:.2f}")
            fleet(state, "restart", "gateway", FLEET_DECISION_WAIT="120s")
            time.sleep(2)
            pid = gateway_pid(state)
            heap0, rss0 = metric(murl, "otelcol_process_runtime_heap_alloc_bytes"), rss_mib(pid)
            payloads = build(10_000, args.spans, 100, rng)
            base = metric(murl, "otelcol_receiver_accepted_spans")
            send(target, payloads, args.senders)
            wait_accepted(murl, base + 10_000 * args.spans)
            time.sleep(1)
            heap1, rss1 = metric(murl, "otelcol_process_runtime_heap_alloc_bytes"), rss_mib(pid)
            print(f"10,000 in-flight traces x {args.spans} spans (two tail_sampling buffers): heap "
                  f"{heap0 / 2**20:.1f} -> {heap1 / 2**20:.1f} MiB (+{(heap1 - heap0) / 2**20:.1f}), RSS "
                  f"{rss0:.1f} -> {rss1:.1f} MiB (+{rss1 - rss0:.1f})")
        finally:
            fleet(state, "down")


if __name__ == "__main__":
    main()
