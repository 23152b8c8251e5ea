"""Overhead of each integration's wrapper, as a ratio to the unwrapped call in the same run.

    python benchmarks/bench_integrations.py               # every integration that is installed
    python benchmarks/bench_integrations.py --only sklearn redis --rounds 9 --json out.json
    python benchmarks/bench_integrations.py --baseline /path/to/old/checkout   # before/after, one run

For each case the unwrapped call and the wrapped variants run interleaved, round after round, in
one process; each figure is the median over rounds of the mean per-call time within a round (the
fastest round is shown beside it), so machine drift hits every variant alike. "paired" is the
median over rounds of each round's own ratio (the variants of a round run back to back), the
steadiest ratio when the load changes from round to round. Spans are sampled
and go through a BatchSpanProcessor (a queue large enough that none is dropped) to an exporter
that discards them: the hot-path cost (span, attributes, summaries, queueing) is measured without
a backend's network time.

``--baseline DIR`` loads the integrations of another checkout (``DIR/integrations/*/src``, e.g.
``git archive <commit> integrations | tar -x -C DIR``) under other module names and times their
default wrapper too ("before: ..." rows), interleaved with this checkout's in the same rounds.

Three contexts per wrapper:
- "traced" (and "traced, no summaries"): the call on its own, outside any request (a batch job,
  a notebook): its span is an SDK span, made and ended during the call.
- "traced, sampled out": the call inside a request whose trace was sampled out.
- "traced, in a request": the call inside a request that mltrace's middleware records with
  deferred spans (``MLTRACE_DEFERRED_SPANS``, the default), four calls per request (a request's
  stages): the figure is the call's cost on the request's critical path. The spans are handed to
  the SDK when the request ends, after the response: that cost, per span (the server span's
  included), is timed apart and printed as "hand-over after the response" (CPU, off the critical
  path).

Cases: scikit-learn (logistic regression and a 3-step pipeline), PyTorch on the CPU (small MLP,
one thread), ONNX Runtime (a linear + softmax graph) and Redis (MGET/HGETALL/pipelined HGETALL on
the server at MLTRACE_E2E_REDIS_URL, default redis://127.0.0.1:6379/0). A library or server that
is missing skips its cases and says so.
"""

from __future__ import annotations

import argparse
import atexit
import importlib.util
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

Call = Callable[[], Any]


class Discard(SpanExporter):
    """Accepts and drops every batch."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS


class Case:
    """One workload: the unwrapped call first, then the wrapped variants."""

    def __init__(self, integration: str, name: str, variants: dict[str, Call]) -> None:
        self.integration = integration
        self.name = name
        self.variants = variants
        ordered: dict[str, Call] = {k: v for k, v in variants.items() if not k.startswith(BEFORE)}
        for key in ("traced", BEFORE + "traced"):  # the default wrapper again, in the other contexts
            if key in variants:
                ordered[key] = variants[key]
                ordered[key + IN_REQUEST] = variants[key]
                ordered[key + SAMPLED_OUT] = variants[key]
        self.variants = ordered


IN_REQUEST = ", in a request"
SAMPLED_OUT = ", sampled out"
BEFORE = "before: "

# Package name -> the same package from the --baseline checkout, imported as "baseline_<name>".
BASELINE: dict[str, Any] = {}


def load_baseline(root: Path) -> None:
    for init in sorted(root.glob("integrations/*/src/*/__init__.py")):
        package = init.parent.name
        alias = f"baseline_{package}"  # the packages import their own modules relatively
        spec = importlib.util.spec_from_file_location(alias, init, submodule_search_locations=[str(init.parent)])
        if spec is None or spec.loader is None:
            raise RuntimeError(f"cannot load {init}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[alias] = module
        spec.loader.exec_module(module)
        BASELINE[package] = module
    if not BASELINE:
        raise SystemExit(f"--baseline: no integrations/*/src/*/__init__.py under {root}")


def before(package: str, attribute: str) -> Any:
    """``attribute`` of the baseline's ``package`` (None without --baseline)."""
    module = BASELINE.get(package)
    return getattr(module, attribute) if module is not None else None


class SampledOut:
    """A request whose trace was sampled out, held open for a round: its (non-recording) span is
    current, so the wrapper should do nothing beyond one check."""

    def __init__(self) -> None:
        from opentelemetry import context as otel_context
        from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

        self._context = otel_context
        parent = NonRecordingSpan(SpanContext(0x5EED, 0xF00D, is_remote=False, trace_flags=TraceFlags(0)))
        self._attached = otel_context.attach(trace.set_span_in_context(parent))

    def close(self) -> tuple[int, int]:
        self._context.detach(self._attached)
        return 0, 0


class OpenRequest:
    """A request as mltrace's middleware records it with deferred spans, held open for a round:
    its server span is current and the wrapper's spans are deferred under it. ``close()`` ends it
    (what the middleware does after the response's last byte) and returns the hand-over's time."""

    def __init__(self) -> None:
        from opentelemetry import context as otel_context
        from opentelemetry.trace import SpanKind

        from mltrace.spans import _deferred

        self._deferred = _deferred
        self._context = otel_context
        self.span, request = _deferred.start_request_span(
            "POST /predict", otel_context.get_current(), SpanKind.SERVER, {}
        )
        if request is None:
            raise RuntimeError("deferred spans are off (MLTRACE_DEFERRED_SPANS) or the provider is not the SDK's")
        self.request = request
        self._token = _deferred.enter(request)
        self._attached = otel_context.attach(trace.set_span_in_context(self.span))

    def close(self) -> tuple[int, int]:
        """(spans handed over, nanoseconds the hand-over took)."""
        self._context.detach(self._attached)
        self.span.end()
        spans = len(self.request.ended)
        t0 = time.perf_counter_ns()
        self._deferred.leave(self.request, self._token)
        return spans, time.perf_counter_ns() - t0


def per_call_us(fn: Call, calls: int) -> float:
    t0 = time.perf_counter_ns()
    for _ in range(calls):
        fn()
    return (time.perf_counter_ns() - t0) / calls / 1e3


CALLS_PER_REQUEST = 4  # a request's stages: preprocess, feature_lookup, inference, postprocess


def per_call_in_requests(fn: Call, calls: int, handover: list[float]) -> float:
    """µs per call, the calls made ``CALLS_PER_REQUEST`` at a time inside requests recorded with
    deferred spans. Only the calls are timed: opening a request and ending it (the hand-over, timed
    on its own into ``handover``, µs per span) are not. A request holds its few spans, as a real
    one does: one long request holding a round's thousands of spans would make the garbage
    collector walk them all, a cost no served request has."""
    timed = 0
    spent: list[float] = []
    while timed < calls:
        request = OpenRequest()
        n = min(CALLS_PER_REQUEST, calls - timed)
        t0 = time.perf_counter_ns()
        for _ in range(n):
            fn()
        timed_ns = time.perf_counter_ns() - t0
        spans, took_ns = request.close()
        timed += n
        spent.append(timed_ns)
        if spans > 1:  # the server span is one of them
            handover.append(took_ns / spans / 1e3)
    return sum(spent) / calls / 1e3


def calibrate(fn: Call, target_s: float) -> int:
    """Calls per round so that the unwrapped call takes about ``target_s``."""
    fn()
    calls = 1
    while True:
        t0 = time.perf_counter()
        for _ in range(calls):
            fn()
        took = time.perf_counter() - t0
        if took >= target_s / 4 or calls >= 1 << 20:
            return max(5, int(calls * target_s / max(took, 1e-9)))
        calls *= 4


def measure(case: Case, rounds: int, target_s: float) -> dict[str, Any]:
    base_name, base = next(iter(case.variants.items()))
    calls = calibrate(base, target_s)
    for fn in case.variants.values():  # warm-up: imports, caches, pools
        per_call_us(fn, max(3, calls // 10))
    samples: dict[str, list[float]] = {key: [] for key in case.variants}
    handover: list[float] = []  # µs per span handed over after the (simulated) response
    handover_before: list[float] = []
    for _ in range(rounds):
        for key, fn in case.variants.items():
            if key.endswith(IN_REQUEST):
                into = handover_before if key.startswith(BEFORE) else handover
                samples[key].append(per_call_in_requests(fn, calls, into))
            elif key.endswith(SAMPLED_OUT):
                sampled_out = SampledOut()
                samples[key].append(per_call_us(fn, calls))
                sampled_out.close()
            else:
                samples[key].append(per_call_us(fn, calls))
    medians = {key: statistics.median(values) for key, values in samples.items()}
    fastest = {key: min(values) for key, values in samples.items()}
    result: dict[str, Any] = {
        "integration": case.integration,
        "case": case.name,
        "calls_per_round": calls,
        "rounds": rounds,
        "us": medians,
        "ratio": {key: medians[key] / medians[base_name] for key in medians},
        "added_us": {key: medians[key] - medians[base_name] for key in medians},
        "fastest_us": fastest,
        "fastest_ratio": {key: fastest[key] / fastest[base_name] for key in fastest},
        # Each round's variants run back to back: the median of the per-round ratios cancels the
        # load that changes between rounds (on a shared machine, the steadiest figure).
        "paired_ratio": {
            key: statistics.median(v / b for v, b in zip(values, samples[base_name], strict=True))
            for key, values in samples.items()
        },
        "rounds_us": samples,
    }
    if handover:
        result["handover_us_per_span"] = statistics.median(handover)
    if handover_before:
        result["before_handover_us_per_span"] = statistics.median(handover_before)
    return result


# -- cases ---------------------------------------------------------------------------------------


def sklearn_cases() -> list[Case]:
    from mltrace_sklearn import traced_model
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.default_rng(0)
    X = rng.normal(size=(2000, 20))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    lr = LogisticRegression().fit(X, y)
    pipe = make_pipeline(StandardScaler(), PCA(n_components=8), LogisticRegression()).fit(X, y)
    one, batch = X[:1], X[:256]
    cases = []
    for label, est in (("LogisticRegression", lr), ("Pipeline(scaler, PCA, LR)", pipe)):
        full = traced_model(est)
        bare = traced_model(est, record_input=False, record_output=False)
        old_wrap = before("mltrace_sklearn", "traced_model")
        old = old_wrap(est) if old_wrap is not None else None
        for rows, x in (("1 row", one), ("256 rows", batch)):
            variants: dict[str, Call] = {
                "unwrapped": lambda est=est, x=x: est.predict_proba(x),
                "traced, no summaries": lambda bare=bare, x=x: bare.predict_proba(x),
                "traced": lambda full=full, x=x: full.predict_proba(x),
            }
            if old is not None:
                variants[BEFORE + "traced"] = lambda old=old, x=x: old.predict_proba(x)
            cases.append(Case("sklearn", f"{label}.predict_proba, {rows}", variants))
    return cases


def torch_cases() -> list[Case]:
    import torch
    from mltrace_torch import traced_module

    torch.set_num_threads(1)
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 8)).eval()
    full = traced_module(net)
    bare = traced_module(net, record_input=False, record_output=False)
    old_wrap = before("mltrace_torch", "traced_module")
    old = old_wrap(net) if old_wrap is not None else None
    cases = []
    for rows in (1, 64):
        x = torch.randn(rows, 64)

        def unwrapped(x: Any = x) -> Any:
            with torch.inference_mode():
                return net(x)

        def traced_bare(x: Any = x) -> Any:
            with torch.inference_mode():
                return bare(x)

        def traced_full(x: Any = x) -> Any:
            with torch.inference_mode():
                return full(x)

        def before_full(x: Any = x) -> Any:
            with torch.inference_mode():
                return old(x)

        variants = {"unwrapped": unwrapped, "traced, no summaries": traced_bare, "traced": traced_full}
        if old is not None:
            variants[BEFORE + "traced"] = before_full
        cases.append(Case("torch", f"MLP 64-256-8 on CPU, batch {rows}", variants))
    return cases


def onnxruntime_cases() -> list[Case]:
    import onnxruntime as ort
    from mltrace_onnxruntime import traced_session
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(0).normal(size=(32, 4)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["X", "W"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
        ],
        "bench", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 32])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", 4])],
        initializer=[numpy_helper.from_array(w, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    full = traced_session(session)
    bare = traced_session(session, record_input=False, record_output=False)
    old_wrap = before("mltrace_onnxruntime", "traced_session")
    old = old_wrap(session) if old_wrap is not None else None
    cases = []
    for rows in (1, 256):
        feed = {"X": np.random.default_rng(1).normal(size=(rows, 32)).astype(np.float32)}
        variants: dict[str, Call] = {
            "unwrapped": lambda feed=feed: session.run(None, feed),
            "traced, no summaries": lambda feed=feed: bare.run(None, feed),
            "traced": lambda feed=feed: full.run(None, feed),
        }
        if old is not None:
            variants[BEFORE + "traced"] = lambda feed=feed: old.run(None, feed)
        cases.append(Case("onnxruntime", f"MatMul+Softmax 32->4, batch {rows}", variants))
    return cases


def redis_cases() -> list[Case]:
    import redis
    from mltrace_redis import RedisFeatureStore

    url = os.environ.get("MLTRACE_E2E_REDIS_URL", "redis://127.0.0.1:6379/0")
    client = redis.Redis.from_url(url, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as exc:
        raise RuntimeError(f"no Redis at {url} ({exc})") from None
    prefix = f"mltrace-bench:{os.getpid()}:"
    keys = [f"{prefix}u{i}" for i in range(10)]
    for i, key in enumerate(keys[:8]):  # 8 hits, 2 misses
        client.hset(key, mapping={"age": i, "score": i / 10, "country": "NZ"})
        client.set(key + ":age", i)
    atexit.register(lambda: client.delete(*keys, *(k + ":age" for k in keys)))
    store = RedisFeatureStore(client, name="bench")
    value_keys = [k + ":age" for k in keys]

    def unwrapped_many() -> Any:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(key)
        return pipe.execute()

    old_store = before("mltrace_redis", "RedisFeatureStore")
    old = old_store(client, name="bench") if old_store is not None else None
    calls: list[tuple[str, Call, Callable[[Any], Any]]] = [
        ("MGET 10 keys", lambda: client.mget(value_keys), lambda s: s.mget(value_keys)),
        ("HGETALL 1 key", lambda: client.hgetall(keys[0]), lambda s: s.hgetall(keys[0])),
        ("pipelined HGETALL 10 keys", unwrapped_many, lambda s: s.hgetall_many(keys)),
    ]
    cases = []
    for name, unwrapped, wrapped in calls:
        variants: dict[str, Call] = {"unwrapped": unwrapped, "traced": lambda w=wrapped: w(store)}
        if old is not None:
            variants[BEFORE + "traced"] = lambda w=wrapped: w(old)
        cases.append(Case("redis", name, variants))
    return cases


BUILDERS: dict[str, Callable[[], list[Case]]] = {
    "sklearn": sklearn_cases,
    "torch": torch_cases,
    "onnxruntime": onnxruntime_cases,
    "redis": redis_cases,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", nargs="*", choices=sorted(BUILDERS), help="integrations to run (default: all)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--round-seconds", type=float, default=0.05, help="unwrapped time per round")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--baseline", type=Path, help="another checkout whose integrations to time beside these")
    args = parser.parse_args()
    if args.baseline:
        load_baseline(args.baseline)

    os.environ.setdefault("MLTRACE_EXPORTER", "none")
    provider = TracerProvider()
    # A queue that never fills: a dropped span costs less than an exported one and would flatter us.
    provider.add_span_processor(BatchSpanProcessor(Discard(), max_queue_size=1 << 18))
    trace.set_tracer_provider(provider)

    load_before = os.getloadavg()
    print(f"# integration wrapper overhead: Python {platform.python_version()}, {os.cpu_count()} CPUs, "
          f"{args.rounds} interleaved rounds, median per call [fastest round]; "
          f"load average {load_before[0]:.2f} at the start")
    results: list[dict[str, Any]] = []
    skipped: list[str] = []
    for name in args.only or list(BUILDERS):
        try:
            cases = BUILDERS[name]()
        except (ImportError, RuntimeError) as exc:
            skipped.append(f"{name}: {exc}")
            continue
        for case in cases:
            result = measure(case, args.rounds, args.round_seconds)
            results.append(result)
            print(f"\n{result['integration']:<12} {result['case']}")
            for key, us in result["us"].items():
                ratio, fast, fast_ratio = result["ratio"][key], result["fastest_us"][key], result["fastest_ratio"][key]
                paired = result["paired_ratio"][key]
                extra = "" if key == "unwrapped" else f"  {ratio:5.2f}x  (+{result['added_us'][key]:,.1f} µs)"
                extra += f"  [{fast:,.1f} µs" + ("]" if key == "unwrapped" else f", {fast_ratio:.2f}x]")
                extra += "" if key == "unwrapped" else f"  paired {paired:.2f}x"
                print(f"  {key:<32} {us:>10,.1f} µs{extra}")
            for field, label in (("handover_us_per_span", ""), ("before_handover_us_per_span", BEFORE)):
                if field in result:
                    print(f"  {label + 'hand-over after the response':<40} {result[field]:,.1f} µs per span")
    for line in skipped:
        print(f"\nskipped {line}")
    provider.shutdown()
    load_after = os.getloadavg()
    print(f"\n# load average {load_after[0]:.2f} at the end")
    if args.json:
        args.json.write_text(json.dumps(
            {"results": results, "skipped": skipped, "load_average": {"start": load_before, "end": load_after}},
            indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
