"""Attribute and metric names for generative stages: mltrace's ``ml.generate.*`` and the
OpenTelemetry GenAI conventions beside them.

The GenAI conventions are at Development status. mltrace emits those of semantic conventions
**v1.36.0** by default (``gen_ai.system``), and the latest experimental ones it supports
(**v1.37.0**: ``gen_ai.provider.name`` instead of ``gen_ai.system``) when
``OTEL_SEMCONV_STABILITY_OPT_IN`` contains ``gen_ai_latest_experimental``, as the conventions'
transition plan asks. docs/semantic-conventions.md lists every name; a test keeps them in step.
"""

from __future__ import annotations

import os
from typing import Final

# -- mltrace's own, on the inference span of @inference(kind="generate") ------------------------
ML_GENERATE_KIND: Final = "ml.generate.kind"  # "generate"
ML_GENERATE_QUEUE_TIME: Final = "ml.generate.queue_time"
ML_GENERATE_TTFT: Final = "ml.generate.time_to_first_token"
ML_GENERATE_TTFT_FROM: Final = "ml.generate.time_to_first_token.from"  # "request" | "stage"
ML_GENERATE_TPOT: Final = "ml.generate.time_per_output_token"
ML_GENERATE_TPOT_MAX: Final = "ml.generate.time_per_output_token.max"
ML_GENERATE_INPUT_TOKENS: Final = "ml.generate.input_tokens"
ML_GENERATE_OUTPUT_TOKENS: Final = "ml.generate.output_tokens"
ML_GENERATE_FINISH_REASON: Final = "ml.generate.finish_reason"
ML_GENERATE_CLIENT_DISCONNECTED: Final = "ml.generate.client_disconnected"
ML_GENERATE_PROMPT_LENGTH: Final = "ml.generate.prompt.length"
ML_GENERATE_PROMPT_FINGERPRINT: Final = "ml.generate.prompt.fingerprint"
ML_GENERATE_COMPLETION_LENGTH: Final = "ml.generate.completion.length"
ML_GENERATE_COMPLETION_FINGERPRINT: Final = "ml.generate.completion.fingerprint"

# Finish reasons mltrace sets itself when the function did not say.
FINISH_STOP: Final = "stop"  # the generator ran to its end
FINISH_ERROR: Final = "error"  # it raised
FINISH_CANCELLED: Final = "cancelled"  # closed or cancelled before its end (the client went away)

# -- OpenTelemetry GenAI (Development) ----------------------------------------------------------
GEN_AI_OPERATION_NAME: Final = "gen_ai.operation.name"
GEN_AI_REQUEST_MODEL: Final = "gen_ai.request.model"
GEN_AI_RESPONSE_MODEL: Final = "gen_ai.response.model"
GEN_AI_USAGE_INPUT_TOKENS: Final = "gen_ai.usage.input_tokens"
GEN_AI_USAGE_OUTPUT_TOKENS: Final = "gen_ai.usage.output_tokens"
GEN_AI_RESPONSE_FINISH_REASONS: Final = "gen_ai.response.finish_reasons"
GEN_AI_SYSTEM: Final = "gen_ai.system"  # v1.36.0
GEN_AI_PROVIDER_NAME: Final = "gen_ai.provider.name"  # v1.37.0+, replaces gen_ai.system
PROVIDER_OTHER: Final = "_OTHER"  # the conventions' value when no well-known provider applies

# metrics
GEN_AI_SERVER_TTFT: Final = "gen_ai.server.time_to_first_token"
GEN_AI_SERVER_TPOT: Final = "gen_ai.server.time_per_output_token"
GEN_AI_SERVER_REQUEST_DURATION: Final = "gen_ai.server.request.duration"
MLTRACE_GENERATE_QUEUE_TIME: Final = "mltrace.generate.queue_time"
MLTRACE_GENERATE_TPOT_MAX: Final = "mltrace.generate.time_per_output_token.max"
MLTRACE_GENERATE_TOKENS: Final = "mltrace.generate.tokens"
MLTRACE_GENERATE_DISCONNECTS: Final = "mltrace.generate.client_disconnects"
GEN_AI_TOKEN_TYPE: Final = "gen_ai.token.type"  # metric attribute: "input" | "output"

OPT_IN_ENV: Final = "OTEL_SEMCONV_STABILITY_OPT_IN"
OPT_IN_LATEST: Final = "gen_ai_latest_experimental"


def latest_experimental(environ: dict[str, str] | None = None) -> bool:
    """Whether ``OTEL_SEMCONV_STABILITY_OPT_IN`` (a comma-separated list) asks for the latest
    experimental GenAI conventions."""
    raw = (environ if environ is not None else os.environ).get(OPT_IN_ENV, "")
    return OPT_IN_LATEST in {part.strip() for part in raw.split(",")}


def provider_key(latest: bool) -> str:
    return GEN_AI_PROVIDER_NAME if latest else GEN_AI_SYSTEM
