"""Logs beside traces: trace/span ids on log records, and OTLP export from a real server."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import httpx
import pytest
from _loopback import HttpBackend
from _servers import ServerProcess, free_port, read_spans, server_env
from fastapi import FastAPI
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from starlette.testclient import TestClient

import mltrace
from mltrace.export._logs import instrument_logging, uninstrument_logging
from mltrace.spans._concurrency import run_in_executor
from mltrace.testing import CapturedSpans


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    """Log records of the ``app`` logger, with instrument_logging() on for the test."""
    instrument_logging()
    handler = _Records()
    logger = logging.getLogger("app")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        uninstrument_logging()


log = logging.getLogger("app")


def _ids(record: logging.LogRecord) -> tuple[str, str]:
    return record.otelTraceID, record.otelSpanID  # type: ignore[attr-defined]


def test_record_inside_a_span_carries_its_ids(spans: CapturedSpans, records: list[logging.LogRecord]) -> None:
    """A record logged inside a stage carries that stage's trace and span ids; outside, zeros."""
    with mltrace.stage("inference") as s:
        log.info("predicting")
    log.info("idle")
    assert _ids(records[0]) == (s.trace_id, s.span_id)
    assert records[0].otelTraceSampled is True  # type: ignore[attr-defined]
    assert _ids(records[1]) == ("0", "0")


def test_format_string_shows_the_ids(spans: CapturedSpans, records: list[logging.LogRecord]) -> None:
    """A formatter can print the ids with %(otelTraceID)s and %(otelSpanID)s."""
    formatter = logging.Formatter("[trace=%(otelTraceID)s span=%(otelSpanID)s] %(message)s")
    with mltrace.stage("inference") as s:
        log.warning("slow model")
    assert formatter.format(records[0]) == f"[trace={s.trace_id} span={s.span_id}] slow model"


async def test_records_from_worker_threads_carry_the_request_ids(
    spans: CapturedSpans, records: list[logging.LogRecord]
) -> None:
    """Logs written by model code in a thread pool carry the request's ids (with run_in_executor)."""

    def model() -> None:
        log.info("in the pool")

    with futures.ThreadPoolExecutor(1) as pool, mltrace.stage("request") as s:
        await run_in_executor(pool, model)
        await asyncio.to_thread(model)
    assert [_ids(r) for r in records] == [(s.trace_id, s.span_id)] * 2


def test_fastapi_request_logs_carry_the_server_and_stage_ids(
    spans: CapturedSpans, records: list[logging.LogRecord]
) -> None:
    """In a FastAPI request, the handler's logs name the server span, the stage's logs the stage."""
    app = FastAPI()
    app.add_middleware(mltrace.MLTraceMiddleware)

    @app.get("/predict")
    async def predict() -> dict[str, int]:
        log.info("request received")
        with mltrace.stage("inference"):
            log.info("predicting")
        return {"y": 1}

    response = TestClient(app).get("/predict")
    server, stage = spans.server(), spans.stage("inference")
    trace_id = response.headers["x-trace-id"]
    assert [_ids(r) for r in records] == [
        (trace_id, format(server.context.span_id, "016x")),
        (trace_id, format(stage.context.span_id, "016x")),
    ]


def test_uninstrument_restores_plain_records(records: list[logging.LogRecord]) -> None:
    """After uninstrument_logging(), records no longer get the ids."""
    uninstrument_logging()
    log.info("plain")
    assert not hasattr(records[-1], "otelTraceID")
    instrument_logging()  # the fixture's teardown uninstruments again


def test_an_earlier_logging_instrumentation_is_redone_with_ids() -> None:
    """If OpenTelemetry's logging instrumentation already ran without ids, records get them anyway."""
    from opentelemetry.instrumentation.logging import LoggingInstrumentor

    LoggingInstrumentor().instrument(enable_log_auto_instrumentation=False)
    handler = _Records()
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        instrument_logging()
        with mltrace.stage("inference") as s:
            log.info("predicting")
    finally:
        log.removeHandler(handler)
        uninstrument_logging()
    assert _ids(handler.records[0]) == (s.trace_id, s.span_id)
    assert not LoggingInstrumentor().is_instrumented_by_opentelemetry


def test_calling_twice_is_harmless(records: list[logging.LogRecord]) -> None:
    """A second instrument_logging() call changes nothing."""
    assert instrument_logging() is None
    log.info("once")
    assert len(records) == 1


@pytest.mark.parametrize(
    "kwargs",
    [{"endpoint": "http://127.0.0.1:4317"}, {"protocol": "http"}, {"headers": {"a": "b"}}, {"level": "INFO"}],
)
def test_bad_arguments_are_rejected(kwargs: dict[str, Any]) -> None:
    """Export settings without export=True, or a non-int level, are configuration errors."""
    with pytest.raises(mltrace.ConfigurationError):
        instrument_logging(**kwargs)


# -- export over OTLP from a real server -----------------------------------------------------------

LOGS_APP = '''
import logging, os

import mltrace
from fastapi import FastAPI
from mltrace.export._logs import instrument_logging

mltrace.configure(service_name="logs-test", exporter="local", local_path=os.environ["APP_DB"])
instrument_logging(
    export=True, endpoint=os.environ["APP_LOGS_ENDPOINT"], protocol=os.environ["APP_LOGS_PROTOCOL"]
)
log = logging.getLogger("app")
log.setLevel(logging.INFO)
app = FastAPI()
app.add_middleware(mltrace.MLTraceMiddleware)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/predict")
async def predict() -> dict[str, int]:
    log.info("request received")
    with mltrace.stage("inference"):
        log.warning("predicting")
    return {"y": 1}
'''


class _GrpcLogs:
    """A real OTLP/gRPC logs service on loopback that keeps what it receives."""

    def __init__(self) -> None:
        import grpc

        self.requests: list[bytes] = []

        def export(request: bytes, context: Any) -> bytes:
            self.requests.append(request)
            return b""  # an empty ExportLogsServiceResponse

        handler = grpc.method_handlers_generic_handler(
            "opentelemetry.proto.collector.logs.v1.LogsService",
            {"Export": grpc.unary_unary_rpc_method_handler(export)},
        )
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
        self._server.add_generic_rpc_handlers((handler,))
        self.port = int(self._server.add_insecure_port("127.0.0.1:0"))
        self._server.start()
        self.url = f"http://127.0.0.1:{self.port}"

    def bodies(self) -> list[bytes]:
        return list(self.requests)

    def close(self) -> None:
        self._server.stop(0)


class _HttpLogs:
    def __init__(self) -> None:
        self._backend = HttpBackend()
        self.url = self._backend.url

    def bodies(self) -> list[bytes]:
        return [body for path, _, body in self._backend.requests if path == "/v1/logs"]

    def close(self) -> None:
        self._backend.close()


def _log_records(bodies: list[bytes]) -> list[dict[str, Any]]:
    out = []
    for body in bodies:
        request = ExportLogsServiceRequest()
        request.ParseFromString(body)
        for resource_logs in request.resource_logs:
            resource = {kv.key: kv.value.string_value for kv in resource_logs.resource.attributes}
            for scope_logs in resource_logs.scope_logs:
                for record in scope_logs.log_records:
                    out.append({
                        "body": record.body.string_value,
                        "trace_id": record.trace_id.hex(),
                        "span_id": record.span_id.hex(),
                        "severity": record.severity_text,
                        "service": resource.get("service.name"),
                    })
    return out


@pytest.mark.slow
@pytest.mark.parametrize("protocol", ["grpc", "http"])
def test_logs_are_exported_over_otlp_next_to_the_trace(tmp_path: Path, protocol: str) -> None:
    """A real uvicorn server exports its request logs over OTLP with the ids of the request's spans."""
    receiver = _GrpcLogs() if protocol == "grpc" else _HttpLogs()
    (tmp_path / "logs_app.py").write_text(LOGS_APP)
    db = tmp_path / "traces.db"
    port = free_port()
    env = {
        "APP_DB": str(db),
        "APP_LOGS_ENDPOINT": receiver.url,
        "APP_LOGS_PROTOCOL": protocol,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
        "OTEL_BLRP_SCHEDULE_DELAY": "100",
    }
    try:
        with ServerProcess(
            ["uvicorn", "logs_app:app", "--host", "127.0.0.1", "--port", str(port)],
            port=port,
            env=server_env(env, pythonpath=[tmp_path]),
            log=tmp_path / "server.log",
            cwd=tmp_path,
        ) as server:
            trace_id = httpx.get(f"{server.url}/predict", timeout=10).headers["x-trace-id"]
            deadline = time.monotonic() + 20
            mine: list[dict[str, Any]] = []
            while time.monotonic() < deadline and len(mine) < 2:
                mine = [r for r in _log_records(receiver.bodies()) if r["trace_id"] == trace_id]
                time.sleep(0.1)
            rows = read_spans(db, until=lambda rows: sum(r["trace_id"] == trace_id for r in rows) >= 2)
    finally:
        receiver.close()
    span_ids = {r["name"]: r["span_id"] for r in rows if r["trace_id"] == trace_id}
    by_body = {r["body"]: r for r in mine}
    assert set(by_body) == {"request received", "predicting"}, server.output()
    assert by_body["request received"]["span_id"] == span_ids["GET /predict"]
    assert by_body["predicting"]["span_id"] == span_ids["inference"]
    assert by_body["predicting"]["severity"] == "WARN"
    assert by_body["predicting"]["service"] == "logs-test"
