"""Generative serving: ``@mltrace.inference(model=..., version=..., kind="generate")`` on a
generator of tokens records time to first token, time per output token, queue time, tokens in
and out, finish reason and client disconnects on the inference span (``ml.generate.*`` beside
the OpenTelemetry GenAI conventions' ``gen_ai.*``) and as metrics (``gen_ai.server.*``,
``mltrace.generate.*``). See docs/generative.md.

The function reports what only it knows through ``mltrace.current_stage()``:
``set_input_tokens``, ``set_output_tokens``, ``set_finish_reason``, ``set_response_model``,
``generation_started`` (its wait for a slot ended), ``set_queue_time`` and ``record_prompt``.

Public here: :data:`REQUEST_START_KEY` (the context key a middleware may set to the request's
arrival in ``time.time_ns()``, so TTFT starts there for sampled-out requests too),
:func:`embedding_attributes` (what ``kind="embed"`` records of a batch of vectors) and
:func:`latest_experimental` (whether ``OTEL_SEMCONV_STABILITY_OPT_IN`` asks for the latest GenAI
conventions).
"""

from __future__ import annotations

from ._embed import embedding_attributes
from ._semconv import latest_experimental
from ._watch import REQUEST_START_KEY

__all__ = ["REQUEST_START_KEY", "embedding_attributes", "latest_experimental"]
