"""Generative serving: ``@mltrace.inference(model=..., version=..., kind="generate")`` on a
generator of tokens records time to first token, time per output token, queue time, tokens in
and out, finish reason and client disconnects on the inference span (``ml.generate.*`` beside
the OpenTelemetry GenAI conventions' ``gen_ai.*``) and as metrics (``gen_ai.server.*``,
``mltrace.generate.*``). See docs/generative.md.

The function reports what only it knows through ``mltrace.current_stage()``:
``set_input_tokens``, ``set_output_tokens``, ``set_finish_reason``, ``set_response_model``,
``generation_started`` (its wait for a slot ended), ``set_queue_time`` and ``record_prompt``.
"""

from __future__ import annotations

from ._semconv import latest_experimental
from ._watch import REQUEST_START_KEY, GenerateSpec, Watch, active

__all__ = ["REQUEST_START_KEY", "GenerateSpec", "Watch", "active", "latest_experimental"]
