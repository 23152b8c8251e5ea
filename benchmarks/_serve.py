"""One benchmark case served by uvicorn: ``python benchmarks/_serve.py CASE PORT``."""

from __future__ import annotations

import sys
from pathlib import Path

import uvicorn
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

sys.path.insert(0, str(Path(__file__).parent))
import _app
from overhead import Discard

import mltrace
from mltrace.spans._deferred import set_deferred


def main(case: str, port: int) -> None:
    # (c)/(d): mltrace before (deferred spans off); (e)/(e0): after, mltrace makes the server span
    set_deferred(case.startswith("e"))
    if case != "a_none":
        sampler = ALWAYS_OFF if case.endswith("sampled_out") else None
        handle = mltrace.configure(service_name="bench", exporter="none", sampler=sampler)
        handle.provider.add_span_processor(BatchSpanProcessor(Discard()))
    app = _app.build(case.startswith(("c_", "d_", "e")), fastapi_telemetry=case[0] in "bcd")
    if case == "b_otel_fastapi":
        from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

        FastAPIInstrumentor.instrument_app(app)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
