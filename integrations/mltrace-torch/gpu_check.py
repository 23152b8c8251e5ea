#!/usr/bin/env python
"""GPU check for mltrace-torch: what a naive span around ``forward()`` records against the device
time from CUDA events, where the device time of back-to-back requests lands, and what the pooled,
lazily resolved timing costs on the host.

Run from the repository root on a machine with a CUDA GPU (takes well under a minute):

    python integrations/mltrace-torch/gpu_check.py            # 8 x Linear(8192, 8192) fp16, batch 2048
    python integrations/mltrace-torch/gpu_check.py --device cpu --width 256 --batch 8   # smoke test

Needs torch and mltrace's own dependencies; mltrace and mltrace_torch are taken from this checkout
when they are not installed. Prints one table per part; ``--json PATH`` also writes the figures.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

ROOT = pathlib.Path(__file__).resolve().parents[2]
for path in (ROOT, ROOT / "integrations" / "mltrace-torch" / "src"):
    if str(path) not in sys.path:
        sys.path.append(str(path))

import mltrace_torch  # noqa: E402
import torch  # noqa: E402

import mltrace  # noqa: E402 - after the checkout fallback above
from mltrace.testing import capture_spans  # noqa: E402


def build(width: int, layers: int, device: str, dtype: torch.dtype) -> torch.nn.Module:
    blocks: list[torch.nn.Module] = []
    for _ in range(layers):
        blocks += [torch.nn.Linear(width, width), torch.nn.ReLU()]
    return torch.nn.Sequential(*blocks).to(device=device, dtype=dtype).eval()


def ms(ns: int) -> float:
    return ns / 1e6


def span_ms(span: Any) -> float:
    return ms(span.end_time - span.start_time)


class Events:
    """CUDA events around a block, for the reference device time (synchronises: measuring only)."""

    def __init__(self, cuda: bool) -> None:
        self.cuda = cuda
        self.start = torch.cuda.Event(enable_timing=True) if cuda else None
        self.end = torch.cuda.Event(enable_timing=True) if cuda else None

    def __enter__(self) -> Events:
        if self.start is not None:
            self.start.record()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.end is not None:
            self.end.record()

    def elapsed(self) -> float | None:
        if self.start is None or self.end is None:
            return None
        self.end.synchronize()
        return float(self.start.elapsed_time(self.end))


def sync(cuda: bool) -> None:
    if cuda:
        torch.cuda.synchronize()


def fmt(value: float | None, unit: str = "ms") -> str:
    if value is None:
        return "n/a"
    if unit == "us":
        return f"{value:,.1f} µs"
    return f"{value:,.3f} ms"


def table(title: str, rows: list[tuple[str, str]]) -> None:
    width = max(len(name) for name, _ in rows)
    print(f"\n## {title}")
    for name, value in rows:
        print(f"  {name:<{width}}  {value}")


def part_single(model: torch.nn.Module, traced: Any, x: torch.Tensor, cuda: bool, repeats: int) -> dict[str, Any]:
    """One request at a time, device idle before each: naive span, events, mltrace_torch span."""
    naive, events, host, device, wrapped_span = [], [], [], [], []
    for _ in range(repeats):
        sync(cuda)
        with capture_spans() as spans:
            ev = Events(cuda)
            with ev, mltrace.stage("inference"):
                model(x)
            events.append(ev.elapsed())
            naive.append(span_ms(spans.stage("inference")))
        sync(cuda)
        with capture_spans() as spans:
            traced(x)
            mltrace_torch.flush(timeout_s=30)
            attrs = spans.stage("inference").attributes
            host.append(attrs.get("ml.gpu.host_time_ms"))
            device.append(attrs.get("ml.gpu.device_time_ms"))
            wrapped_span.append(span_ms(spans.stage("inference")))
    med = _median
    result = {
        "naive_span_ms": med(naive),
        "cuda_events_ms": med(events),
        "traced_span_ms": med(wrapped_span),
        "traced_host_time_ms": med(host),
        "traced_device_time_ms": med(device),
    }
    under = (result["cuda_events_ms"] / result["naive_span_ms"]) if result["cuda_events_ms"] else None
    table(
        f"1. one request, idle device (median of {repeats})",
        [
            ("naive span around forward()", fmt(result["naive_span_ms"])),
            ("CUDA events around forward()", fmt(result["cuda_events_ms"])),
            ("naive under-reports by", f"{under:.1f}x" if under else "n/a"),
            ("mltrace_torch span duration", fmt(result["traced_span_ms"])),
            ("mltrace_torch ml.gpu.host_time_ms", fmt(result["traced_host_time_ms"])),
            ("mltrace_torch ml.gpu.device_time_ms", fmt(result["traced_device_time_ms"])),
        ],
    )
    return result


def _burst(model: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, requests: int) -> None:
    outs = []
    for _ in range(requests):
        with mltrace.stage("preprocess"):
            pass
        outs.append(model(x))
    with mltrace.stage("postprocess"):  # the first stage that needs the values: it synchronises
        torch.stack([o[:, :16] for o in outs]).float().cpu()


def part_burst(model: torch.nn.Module, traced: Any, x: torch.Tensor, cuda: bool, requests: int) -> dict[str, Any]:
    """``requests`` inferences launched back to back, then one postprocess that reads the results."""

    def naive_model(t: torch.Tensor) -> torch.Tensor:
        with mltrace.stage("inference"):
            return model(t)

    sync(cuda)
    with capture_spans() as spans:
        ev = Events(cuda)
        with ev:
            _burst(naive_model, x, requests)
        total_device = ev.elapsed()
        naive_inf = [span_ms(s) for s in spans.stages("inference")]
        naive_post = span_ms(spans.stage("postprocess"))
    sync(cuda)
    with capture_spans() as spans:
        _burst(traced, x, requests)
        post_span = spans.stage("postprocess")
        mltrace_torch.flush(timeout_s=30)
        inf = spans.stages("inference")
        traced_post = span_ms(post_span)
        traced_inf = [span_ms(s) for s in inf]
        device = [s.attributes.get("ml.gpu.device_time_ms") for s in inf]
    device_sum = sum(d for d in device if d is not None) if all(d is not None for d in device) else None
    result = {
        "requests": requests,
        "device_total_ms": total_device,
        "naive_inference_span_ms_mean": statistics.fmean(naive_inf),
        "naive_inference_span_ms_sum": sum(naive_inf),
        "naive_postprocess_span_ms": naive_post,
        "traced_inference_span_ms_mean": statistics.fmean(traced_inf),
        "traced_postprocess_span_ms": traced_post,
        "traced_device_time_ms_each": device,
        "traced_device_time_ms_sum": device_sum,
    }
    landed = naive_post / total_device if total_device else None
    table(
        f"2. {requests} requests back to back, then one postprocess that reads the results",
        [
            ("device time of the whole burst (events)", fmt(total_device)),
            ("naive inference span, mean of each", fmt(result["naive_inference_span_ms_mean"])),
            ("naive inference spans, sum", fmt(result["naive_inference_span_ms_sum"])),
            ("naive postprocess span (where the device time lands)", fmt(naive_post)),
            ("share of the burst's device time shown as postprocess", f"{landed:.0%}" if landed else "n/a"),
            ("mltrace_torch inference span, mean duration (host)", fmt(result["traced_inference_span_ms_mean"])),
            ("mltrace_torch ml.gpu.device_time_ms, each", ", ".join(fmt(d) for d in device)),
            ("mltrace_torch ml.gpu.device_time_ms, sum", fmt(device_sum)),
            ("device time now attributed to inference", f"{device_sum / total_device:.0%}"
             if device_sum and total_device else "n/a"),
        ],
    )
    return result


def _per_call_us(fn: Callable[[], Any], calls: int, cuda: bool, every: int = 32) -> float:
    """Host microseconds per call; the queue is drained (and timings flushed) every ``every`` calls."""
    total = 0
    for start in range(0, calls, every):
        sync(cuda)
        mltrace_torch.flush(timeout_s=30)
        t0 = time.perf_counter_ns()
        for _ in range(min(every, calls - start)):
            fn()
        total += time.perf_counter_ns() - t0
    sync(cuda)
    mltrace_torch.flush(timeout_s=30)
    return total / calls / 1e3


def part_costs(args: argparse.Namespace, cuda: bool) -> dict[str, Any]:
    """Host cost of the wrapper on a small model, and of the CUDA event operations themselves."""
    small = build(args.small_width, 2, args.device, torch.float16 if cuda else torch.float32)
    x = torch.randn(args.small_batch, args.small_width, device=args.device, dtype=next(small.parameters()).dtype)
    timed = mltrace_torch.traced_module(small, record_input=False, record_output=False)
    untimed = mltrace_torch.traced_module(small, record_input=False, record_output=False, device_timing=False)
    full = mltrace_torch.traced_module(small)
    variants = {
        "raw": lambda: small(x),
        "untimed": lambda: untimed(x),
        "timed": lambda: timed(x),
        "full": lambda: full(x),
    }
    for fn in variants.values():
        _per_call_us(fn, 64, cuda)  # warm-up
    rounds: dict[str, list[float]] = {key: [] for key in variants}
    for _ in range(args.rounds):  # interleaved rounds, median per variant: drift hits all alike
        for key, fn in variants.items():
            rounds[key].append(_per_call_us(fn, args.calls, cuda))
    raw_us, untimed_us, timed_us, full_us = (statistics.median(rounds[key]) for key in variants)
    result: dict[str, Any] = {
        "small_model": f"2 x Linear({args.small_width}), batch {args.small_batch}",
        "raw_call_us": raw_us,
        "span_no_device_timing_us": untimed_us,
        "span_with_device_timing_us": timed_us,
        "span_with_timing_and_summaries_us": full_us,
    }
    rows = [
        ("model", result["small_model"]),
        ("unwrapped call", fmt(raw_us, "us")),
        ("traced, device_timing=False", f"{fmt(untimed_us, 'us')}  ({untimed_us / raw_us:.2f}x)"),
        ("traced, device timing", f"{fmt(timed_us, 'us')}  ({timed_us / raw_us:.2f}x)"),
        ("traced, device timing + summaries", f"{fmt(full_us, 'us')}  ({full_us / raw_us:.2f}x)"),
    ]
    if cuda:
        n = 1000
        t0 = time.perf_counter_ns()
        fresh = []
        for _ in range(n):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            b.record()
            fresh.append((a, b))
        create_us = (time.perf_counter_ns() - t0) / n / 1e3
        sync(cuda)
        a, b = fresh[0]
        t0 = time.perf_counter_ns()
        for _ in range(n):
            a.record()
            b.record()
        rerecord_us = (time.perf_counter_ns() - t0) / n / 1e3
        sync(cuda)
        t0 = time.perf_counter_ns()
        for _ in range(n):
            b.query()
        query_us = (time.perf_counter_ns() - t0) / n / 1e3
        t0 = time.perf_counter_ns()
        for _ in range(n):
            torch.cuda.synchronize()
        idle_sync_us = (time.perf_counter_ns() - t0) / n / 1e3
        pools = mltrace_torch.default_timer()
        device = torch.device(args.device)
        if device.index is None:  # the pools are keyed by the parameters' device, which has an index
            device = torch.device(device.type, torch.cuda.current_device())
        pool = pools.pool(device)
        result.update(
            event_pair_create_and_record_us=create_us,
            event_pair_rerecord_us=rerecord_us,
            event_query_us=query_us,
            idle_synchronize_us=idle_sync_us,
            pool_pairs_created=pool.created,
            pool_exhausted=pool.exhausted,
            resolver_timed_out=pools.resolver.timed_out,
        )
        rows += [
            ("create + record an event pair", fmt(create_us, "us")),
            ("re-record a pooled pair", fmt(rerecord_us, "us")),
            ("event.query()", fmt(query_us, "us")),
            ("idle torch.cuda.synchronize()", fmt(idle_sync_us, "us")),
            ("event pairs the pool created in this whole run", str(pool.created)),
            ("calls left untimed (pool exhausted) / timed out", f"{pool.exhausted} / {pools.resolver.timed_out}"),
        ]
    title = f"3. host cost per call (median of {args.rounds} rounds x {args.calls} calls; spans recorded, not exported)"
    table(title, rows)
    return result


def _median(values: list[Any]) -> Any:
    clean = [v for v in values if v is not None]
    return statistics.median(clean) if clean else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--width", type=int, default=8192)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--batch", type=int, default=2048)
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--small-width", type=int, default=1024)
    parser.add_argument("--small-batch", type=int, default=32)
    parser.add_argument("--calls", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=pathlib.Path, help="also write the figures here")
    args = parser.parse_args()

    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        print("no CUDA device here; run with --device cpu for a smoke test", file=sys.stderr)
        return 2
    # Few per-feature statistics: on CPU (smoke test) input + output summaries of a wide tensor
    # would pass the SDK's 128-attribute limit. CUDA tensors get metadata only either way.
    mltrace.configure(exporter="none", max_features=4)
    dtype = torch.float16 if cuda else torch.float32
    name = torch.cuda.get_device_name() if cuda else "cpu"
    print(f"# mltrace-torch GPU check: torch {torch.__version__}, {name}")
    print(f"# model: {args.layers} x Linear({args.width}, {args.width}) + ReLU, {dtype}, batch {args.batch}")

    model = build(args.width, args.layers, args.device, dtype)
    x = torch.randn(args.batch, args.width, device=args.device, dtype=dtype)
    traced = mltrace_torch.traced_module(model, name="mlp")
    with torch.inference_mode():
        for _ in range(3):  # warm-up: cuBLAS handles, kernels, the event pool
            model(x)
            traced(x)
        sync(cuda)
        mltrace_torch.flush(timeout_s=30)
        figures = {
            "torch": torch.__version__,
            "device": name,
            "model": f"{args.layers} x Linear({args.width}) {dtype} batch {args.batch}",
            "single": part_single(model, traced, x, cuda, args.repeats),
            "burst": part_burst(model, traced, x, cuda, args.requests),
            "costs": part_costs(args, cuda),
        }
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
