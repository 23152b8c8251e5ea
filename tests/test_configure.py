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
procs = p._mltrace_exporters._procs if hasattr(p, '_mltrace_exporters') else ()  # one per destination
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
        n = len(mine._mltrace_exporters._procs)
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


# ---------------------------------------------------------------- issue 11 item 9


def run_fail(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a new interpreter and return the finished process (no success asserted)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MLTRACE_"))}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(code)],
        env=full_env, capture_output=True, text=True, timeout=60, check=False,
    )


def test_failed_call_changes_nothing(tmp_path: Path) -> None:
    """A call that raises (a typo in the exporter) leaves settings, capture, provider and files as they were,
    both before any provider exists and on top of a working configuration."""
    out = run(
        """
        import json, mltrace
        from opentelemetry import trace
        from mltrace._settings import SETTINGS
        errors = []
        def attempt(**kw):
            try:
                mltrace.configure(**kw)
            except mltrace.ConfigurationError as e:
                errors.append(str(e))
        attempt(exporter="jeager", summaries=False, capture_payloads=True, max_features=3)
        first = {"summaries": SETTINGS.summaries, "capture": SETTINGS.payload_capture is None,
                 "max_features": SETTINGS.max_features, "provider": type(trace.get_tracer_provider()).__name__}
        h = mltrace.configure(exporter="console", service_name="svc")
        before = list(trace.get_tracer_provider()._mltrace_exporters._procs)
        attempt(exporter=["console", "local"], sample_ratio=7, summaries=False)     # bad ratio
        attempt(exporter="local", local_path="x.db", max_features=-1)               # bad max_features
        attempt(exporter="otlp", protocol="carrier-pigeon", summaries=False)        # bad protocol
        after = list(trace.get_tracer_provider()._mltrace_exporters._procs)
        print(json.dumps({"first": first, "errors": errors, "same": before == after,
                          "summaries": SETTINGS.summaries, "max_features": SETTINGS.max_features,
                          "sampler": trace.get_tracer_provider().sampler.get_description()}))
        """,
        cwd=tmp_path,
    )
    assert out["first"] == {"summaries": True, "capture": True, "max_features": 8, "provider": "ProxyTracerProvider"}
    errors = out["errors"]
    assert isinstance(errors, list) and len(errors) == 4
    assert "jeager" in errors[0] and "7" in errors[1] and "max_features" in errors[2] and "carrier-pigeon" in errors[3]
    assert out["same"] is True and out["summaries"] is True and out["max_features"] == 8
    assert "AlwaysOn" in str(out["sampler"])
    assert not list(tmp_path.glob("*.db"))  # no local store was opened by the failed calls


SPANS_IN = """
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
def spans_in(bodies):
    n = 0
    for body in bodies:
        req = ExportTraceServiceRequest.FromString(body)
        n += sum(len(ss.spans) for rs in req.resource_spans for ss in rs.scope_spans)
    return n
"""


def test_equivalent_endpoints_add_one_exporter() -> None:
    """The same OTLP/HTTP endpoint spelled three ways (bare, trailing '/', '/v1/traces') is one exporter:
    10 spans reach a real HTTP server as 10 spans, not 30."""
    tests_dir = str(Path(__file__).parent)
    out = run(
        SPANS_IN
        + f"""
import json, sys
sys.path.insert(0, {tests_dir!r})
import mltrace
from opentelemetry import trace
from _loopback import HttpBackend
backend = HttpBackend()
base = backend.url
for ep in (base, base + "/", base + "/v1/traces", base.upper().replace("HTTP://", "http://")):
    h = mltrace.configure(exporter="otlp", protocol="http", endpoint=ep, batch=False)
for i in range(10):
    with mltrace.stage("s"):
        pass
h.force_flush()
n_exporters = len(trace.get_tracer_provider()._mltrace_exporters._procs)
bodies = [r[2] for r in backend.requests]
paths = sorted({{r[0] for r in backend.requests}})
"""
        + """
print(json.dumps({"exporters": n_exporters, "posts": len(bodies), "spans": spans_in(bodies), "paths": paths}))
"""
    )
    assert out == {"exporters": 1, "posts": 10, "spans": 10, "paths": ["/v1/traces"]}


def test_equivalent_local_paths_add_one_exporter(tmp_path: Path) -> None:
    """'t.db', './t.db' and its absolute path are one local store: every span is stored once."""
    out = run(
        f"""
        import json, mltrace
        from opentelemetry import trace
        from mltrace.export import LocalStore
        import os
        os.mkdir("sub")
        for path in ("t.db", "./t.db", {str(tmp_path / "t.db")!r}, "sub/../t.db"):
            h = mltrace.configure(local_path=path, exporter="local", batch=False)
        tids = []
        for i in range(5):
            with mltrace.stage("s") as s:
                tids.append(s.trace_id)
        n = len(trace.get_tracer_provider()._mltrace_exporters._procs)
        h.shutdown()
        rows = sum(len(LocalStore("t.db").trace(t)) for t in tids)
        print(json.dumps({{"exporters": n, "rows": rows}}))
        """,
        cwd=tmp_path,
    )
    assert out == {"exporters": 1, "rows": 5}


def test_second_call_applies_or_says_why() -> None:
    """A second call applies span options and a new head sampler; the same destination with other headers
    replaces its exporter; a different service name cannot be applied and a ConfigurationWarning says why."""
    out = run(
        """
        import json, warnings, mltrace
        from opentelemetry import trace
        from mltrace._settings import SETTINGS
        a = mltrace.configure(service_name="a", exporter="otlp", endpoint="http://127.0.0.1:1", headers={"k": "1"})
        b = mltrace.configure(exporter="otlp", endpoint="http://127.0.0.1:1/", headers={"k": "2"},
                              max_features=2, summaries=False, sample_ratio=0.25)
        p = trace.get_tracer_provider()
        procs = p._mltrace_exporters._procs
        headers = procs[0]._batch_processor._exporter.inner._headers
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            c = mltrace.configure(service_name="b")
        print(json.dumps({"n": len(procs), "headers": [list(h) for h in headers],
                          "max_features": SETTINGS.max_features, "summaries": SETTINGS.summaries,
                          "sampler": p.sampler.get_description(), "service": p.resource.attributes["service.name"],
                          "warnings": [(w.category.__name__, str(w.message)) for w in caught],
                          "kept": len(c.processors)}))
        for h in (a, b, c):
            h.shutdown(timeout_s=1)
        """
    )
    assert out["n"] == 1 and ["k", "2"] in out["headers"]  # type: ignore[operator]
    assert out["max_features"] == 2 and out["summaries"] is False
    assert "0.25" in str(out["sampler"])
    assert out["service"] == "a" and out["kept"] == 1
    (category, message), = out["warnings"]  # type: ignore[misc]
    assert category == "ConfigurationWarning"
    assert "service.name='b'" in message and "one provider per process" in message


def test_configure_after_shutdown_exports_again(tmp_path: Path) -> None:
    """shutdown() then configure(): spans of both phases are stored, and none counts as dropped."""
    out = run(
        """
        import json, mltrace
        from mltrace.export import LocalStore
        tids = []
        for round in range(2):
            h = mltrace.configure(service_name="svc", exporter="local", local_path="t.db")
            with mltrace.stage("s") as s:
                tids.append(s.trace_id)
            ok = h.shutdown(timeout_s=5)
        rows = [len(LocalStore("t.db").trace(t)) for t in tids]
        print(json.dumps({"ok": ok, "rows": rows, "dropped": mltrace.export_stats()["spans_dropped_total"]}))
        """,
        cwd=tmp_path,
    )
    assert out == {"ok": True, "rows": [1, 1], "dropped": 0}


@pytest.mark.parametrize(
    ("call", "env"),
    [
        ("mltrace.configure(exporter=['local', 'console'], batch=False)", {}),
        ("mltrace.configure(exporter='local, console', batch=False)", {}),
        ("mltrace.configure(batch=False)", {"MLTRACE_EXPORTER": "local,console"}),
        ("mltrace.configure(batch=False)", {"OTEL_TRACES_EXPORTER": "console,zipkin_json"}),
    ],
)
def test_several_exporters_at_once(call: str, env: dict[str, str], tmp_path: Path) -> None:
    """Several exporters in one call (list, comma string, MLTRACE_EXPORTER, OTEL_TRACES_EXPORTER): each gets
    every span — the console prints it, the local store stores it."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "MLTRACE_"))}
    full_env.update(env)
    proc = subprocess.run(
        [sys.executable, "-W", "error", "-c", textwrap.dedent(f"""
        import json, mltrace
        from opentelemetry import trace
        from mltrace.export import LocalStore
        h = {call}
        with mltrace.stage("both-ways") as s:
            tid = s.trace_id
        inner = [type(p.span_exporter.inner).__name__ for p in trace.get_tracer_provider()._mltrace_exporters._procs]
        h.shutdown(timeout_s=2)
        stored = len(LocalStore("mltrace-traces.db").trace(tid)) if "local" in h.exporters else None
        print(json.dumps({{"exporters": list(h.exporters), "inner": inner, "stored": stored, "tid": tid}}))
        """)],
        env=full_env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    out = json.loads(lines[-1])
    printed = "\n".join(lines[:-1])
    assert "ConsoleSpanExporter" in out["inner"] and len(out["inner"]) == 2
    assert '"name": "both-ways"' in printed and out["tid"] in printed  # the console got the span
    if "local" in out["exporters"]:
        assert out["inner"] == ["LocalStoreExporter", "ConsoleSpanExporter"] and out["stored"] == 1
    else:
        assert out["exporters"] == ["console", "zipkin"]


@pytest.mark.parametrize(
    ("variable", "value", "says"),
    [
        ("MLTRACE_SAMPLE_SIZE", "big", "whole number"),
        ("MLTRACE_LOCAL_MAX_SPANS", "0", ">= 1"),
        ("MLTRACE_MAX_FEATURES", "-3", ">= 0"),
        ("MLTRACE_SUMMARIES", "ture", "true/false"),
        ("MLTRACE_SAMPLE_RATIO", "1.5", "[0, 1]"),
        ("MLTRACE_EXPORTER", "jeager", "unknown exporter"),
        ("MLTRACE_TAIL_MAX_WAIT_S", "0", "> 0"),
        ("MLTRACE_TRACE_ID_HEADER", "x trace id", "header name"),
        ("MLTRACE_PAYLOAD_SINK", "s3://bucket", "file:<dir>"),
    ],
)
def test_bad_variable_named_at_configure_not_at_import(variable: str, value: str, says: str) -> None:
    """`import mltrace` survives a malformed MLTRACE_* variable (it logs one warning naming it);
    configure() raises ConfigurationError naming the variable, its value and what it accepts."""
    out = run(
        """
        import json, mltrace
        try:
            mltrace.configure(exporter="none")
            error = None
        except mltrace.ConfigurationError as e:
            error = str(e)
        print(json.dumps({"error": error}))
        """,
        env={variable: value},
    )
    error = str(out["error"])
    assert f"{variable}={value!r}" in error and says in error


def test_import_with_bad_variable_warns_once_naming_it() -> None:
    """A bad variable read at import (MLTRACE_SAMPLE_SIZE=big) leaves import working, with the default."""
    proc = run_fail(
        "import json, mltrace; from mltrace._settings import SETTINGS; print(json.dumps(SETTINGS.sample_size))",
        env={"MLTRACE_SAMPLE_SIZE": "big"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "100000"
    assert proc.stderr.count("MLTRACE_SAMPLE_SIZE='big'") == 1


def test_every_problem_named_in_one_error() -> None:
    """Two bad variables: one error names both (a user fixes them in one go)."""
    out = run(
        """
        import json, mltrace
        try:
            mltrace.configure()
        except mltrace.ConfigurationError as e:
            print(json.dumps(str(e)))
        """,
        env={"MLTRACE_BATCH": "sometimes", "MLTRACE_MAX_BODY_BYTES": "1MB"},
    )
    assert "MLTRACE_BATCH='sometimes'" in str(out) and "MLTRACE_MAX_BODY_BYTES='1MB'" in str(out)


def test_settings_module_is_the_only_reader_and_docs_list_every_variable() -> None:
    """No module but mltrace/_settings.py reads an MLTRACE_* variable from os.environ, and
    docs/configuration.md names exactly the variables the settings table has."""
    import re

    from mltrace._settings import ENV

    root = Path(__file__).resolve().parent.parent
    direct = re.compile(r"""(environ(\.get)?\s*[\(\[]|getenv\()\s*f?["']MLTRACE_""")
    readers = [
        str(p.relative_to(root))
        for p in (root / "mltrace").rglob("*.py")
        if p.name != "_settings.py" and direct.search(p.read_text())
    ]
    assert readers == []
    documented = set(re.findall(r"`(MLTRACE_[A-Z0-9_]+)`", (root / "docs/configuration.md").read_text()))
    assert documented == {v.name for v in ENV.all()}


def test_variables_set_after_import_apply_at_configure_and_arguments_win() -> None:
    """MLTRACE_* set after `import mltrace` (a .env loaded in main) reach the next configure(); an
    argument still wins over its variable."""
    out = run(
        """
        import json, os, mltrace
        from mltrace._settings import SETTINGS
        before = [SETTINGS.summaries, SETTINGS.max_features, SETTINGS.sample_size]
        os.environ.update({"MLTRACE_SUMMARIES": "off", "MLTRACE_MAX_FEATURES": "3", "MLTRACE_SAMPLE_SIZE": "1_000"})
        mltrace.configure(exporter="none", max_features=5)
        after = [SETTINGS.summaries, SETTINGS.max_features, SETTINGS.sample_size]
        print(json.dumps({"before": before, "after": after}))
        """
    )
    assert out == {"before": [True, 8, 100_000], "after": [False, 5, 1000]}


def test_exporter_that_cannot_be_built_changes_nothing(tmp_path: Path) -> None:
    """An exporter that fails while being built (a local store under a path that is a file) raises a
    ConfigurationError naming it; the exporters built before it in the same call are stopped, and
    settings, payload capture and the provider's exporters stay as they were."""
    (tmp_path / "a-file").write_text("not a directory")
    out = run(
        """
        import json, mltrace
        from opentelemetry import trace
        from mltrace._settings import SETTINGS
        h = mltrace.configure(exporter="console")
        before = list(trace.get_tracer_provider()._mltrace_exporters._procs)
        try:
            mltrace.configure(exporter=["console", "local"], local_path="a-file/t.db", summaries=False,
                              capture_payloads=True, headers={"x": "1"})
            error = None
        except mltrace.ConfigurationError as e:
            error = str(e)
        after = list(trace.get_tracer_provider()._mltrace_exporters._procs)
        print(json.dumps({"error": error, "same": before == after, "summaries": SETTINGS.summaries,
                          "capture": SETTINGS.payload_capture is None}))
        """,
        cwd=tmp_path,
    )
    assert "local" in str(out["error"]) and "a-file" in str(out["error"])
    assert out["same"] is True and out["summaries"] is True and out["capture"] is True
