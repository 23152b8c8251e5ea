"""``mltrace.configure``: exporters, OTEL_* variables, existing providers, shutdown.

A process has one global TracerProvider, so each case runs in a fresh interpreter.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest


def run(code: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> dict[str, object]:
    """Run ``code`` in a new interpreter; it prints one JSON object as its last line."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MLTRACE_"))}
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(code)],
        env=full_env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


DESCRIBE = """
import json, mltrace
from opentelemetry import trace
h = {call}
p = trace.get_tracer_provider()
procs = p._active_span_processor._span_processors
exps = [type(getattr(getattr(x, '_batch_processor', x), '_exporter', None)).__name__ for x in procs]
def inner_of(x):
    return getattr(getattr(getattr(x, '_batch_processor', x), '_exporter', None), 'inner', None)
inner = [type(inner_of(x)).__name__ for x in procs]
print(json.dumps({{"exporter": h.exporter, "service": p.resource.attributes.get("service.name"),
  "resource": {{k: str(v) for k, v in p.resource.attributes.items()}},
  "sampler": p.sampler.get_description(), "inner": inner, "n": len(procs)}}))
"""


def describe(call: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> dict[str, object]:
    return run(DESCRIBE.format(call=call), env, cwd)


def test_default_is_local_store(tmp_path: Path) -> None:
    """With no backend configured, spans go to ./mltrace-traces.db."""
    out = describe("mltrace.configure(service_name='svc')", cwd=tmp_path)
    assert out["exporter"] == "local"
    assert out["inner"] == ["LocalStoreExporter"]
    assert out["service"] == "svc"


@pytest.mark.parametrize(
    ("call", "inner"),
    [
        ("mltrace.configure(exporter='jaeger')", "OTLPSpanExporter"),
        ("mltrace.configure(exporter='jaeger', protocol='http')", "OTLPSpanExporter"),
        ("mltrace.configure(exporter='zipkin')", "ZipkinExporter"),
        ("mltrace.configure(exporter='otlp')", "OTLPSpanExporter"),
        ("mltrace.configure(exporter='console')", "ConsoleSpanExporter"),
    ],
)
def test_named_exporters(call: str, inner: str) -> None:
    """Each exporter name builds the matching OpenTelemetry exporter behind the counters."""
    assert describe(call)["inner"] == [inner]


def test_jaeger_http_uses_4318_path() -> None:
    """``protocol='http'`` sends OTLP/HTTP protobuf to /v1/traces."""
    out = run(
        """
        import json, mltrace
        h = mltrace.configure(exporter='jaeger', protocol='http', endpoint='http://127.0.0.1:4318')
        e = h.processors[0]._batch_processor._exporter.inner
        print(json.dumps({"endpoint": e._endpoint}))
        """
    )
    assert out["endpoint"] == "http://127.0.0.1:4318/v1/traces"


def test_none_adds_no_exporter() -> None:
    """``exporter='none'`` sets a provider with no export processor."""
    assert describe("mltrace.configure(exporter='none')")["n"] == 0


def test_otel_env_vars_are_honoured() -> None:
    """OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES, OTEL_TRACES_SAMPLER(_ARG), OTEL_TRACES_EXPORTER."""
    out = describe(
        "mltrace.configure()",
        env={
            "OTEL_SERVICE_NAME": "from-env",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=staging",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
            "OTEL_TRACES_EXPORTER": "zipkin_json",
        },
    )
    assert out["service"] == "from-env"
    assert out["resource"]["deployment.environment.name"] == "staging"  # type: ignore[index]
    assert "0.25" in str(out["sampler"])
    assert out["exporter"] == "zipkin"


def test_otlp_endpoint_env_selects_otlp() -> None:
    """OTEL_EXPORTER_OTLP_ENDPOINT alone makes OTLP the default exporter."""
    out = describe("mltrace.configure()", env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4317"})
    assert out["exporter"] == "otlp"


def test_mltrace_env_vars() -> None:
    """MLTRACE_EXPORTER, MLTRACE_MODEL_NAME/VERSION and MLTRACE_SAMPLE_RATIO are read."""
    out = describe(
        "mltrace.configure(service_name='s')",
        env={"MLTRACE_EXPORTER": "console", "MLTRACE_MODEL_NAME": "fraud", "MLTRACE_MODEL_VERSION": "7",
             "MLTRACE_SAMPLE_RATIO": "0.5"},
    )
    assert out["exporter"] == "console"
    assert out["resource"]["ml.model.name"] == "fraud"  # type: ignore[index]
    assert out["resource"]["ml.model.version"] == "7"  # type: ignore[index]
    assert "0.5" in str(out["sampler"])


def test_existing_provider_is_reused_and_nothing_added_twice() -> None:
    """An app's own provider is kept; configure twice adds one exporter once."""
    out = run(
        """
        import json, mltrace
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        mine = TracerProvider()
        trace.set_tracer_provider(mine)
        a = mltrace.configure()                       # no exporter asked: adds none
        b = mltrace.configure(exporter='console')     # asked: adds it
        c = mltrace.configure(exporter='console')     # again: adds nothing
        n = len(mine._active_span_processor._span_processors)
        print(json.dumps({"same": trace.get_tracer_provider() is mine, "n": n, "owns": c.owns_provider}))
        """
    )
    assert out == {"same": True, "n": 1, "owns": False}


def test_bad_configuration_is_a_clear_error() -> None:
    """Unknown exporters and bad ratios raise ConfigurationError (a ValueError)."""
    out = run(
        """
        import json, mltrace
        msgs = []
        for kw in ({"exporter": "jaegr"}, {"sample_ratio": 2.0}, {"exporter": "otlp", "protocol": "udp"}):
            try:
                mltrace.configure(**kw)
            except ValueError as e:
                msgs.append(str(e))
        print(json.dumps(msgs))
        """
    )
    assert len(out) == 3
    assert "jaegr" in out[0] and "2.0" in out[1] and "udp" in out[2]  # type: ignore[index]


def test_import_has_no_side_effects() -> None:
    """Importing mltrace sets no provider and touches no logging configuration."""
    out = run(
        """
        import json, logging
        import mltrace
        from opentelemetry import trace
        print(json.dumps({"provider": type(trace.get_tracer_provider()).__name__,
                          "handlers": len(logging.getLogger().handlers)}))
        """
    )
    assert out == {"provider": "ProxyTracerProvider", "handlers": 0}


def test_local_store_receives_spans_and_shutdown_is_bounded(tmp_path: Path) -> None:
    """Spans of a configured local store land in SQLite; shutdown returns True in time."""
    db = tmp_path / "t.db"
    out = run(
        f"""
        import json, mltrace
        from mltrace.export import LocalStore
        h = mltrace.configure(service_name='svc', local_path={str(db)!r})
        with mltrace.stage('inference', model='m') as s:
            s.record_input([1.0, 2.0])
            tid = s.trace_id
        ok = h.shutdown(timeout_s=5)
        rows = LocalStore({str(db)!r}).trace(tid)
        got = [(r["name"], r["service_name"], r["attributes"]["ml.model.name"]) for r in rows]
        print(json.dumps({{"ok": ok, "rows": got}}))
        """
    )
    assert out == {"ok": True, "rows": [["inference", "svc", "m"]]}


def test_local_path_from_env(tmp_path: Path) -> None:
    """MLTRACE_LOCAL_PATH chooses the local store's file."""
    db = tmp_path / "env.db"
    run(
        """
        import json, mltrace
        h = mltrace.configure()
        with mltrace.stage('x'):
            pass
        h.shutdown()
        print(json.dumps({}))
        """,
        env={"MLTRACE_LOCAL_PATH": str(db)},
    )
    assert db.exists()
