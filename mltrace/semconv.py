"""Attribute keys mltrace writes on spans, defined once.

OpenTelemetry's semantic conventions come first (``http.*``, ``url.*``, ``error.type``,
``service.name``); where none exist for ML serving, mltrace uses the ``ml.`` namespace.
Generation's keys live in ``mltrace.genai._semconv``, batching's in ``mltrace.batching._batch_spans``.
``docs/semantic-conventions.md`` documents each key, the decision to keep ``ml.*`` (and how a move
would go) and the unit policy; a test scans every key constant in the code against it.
"""

from __future__ import annotations

from typing import Final

# -- stages -----------------------------------------------------------------------------------
ML_STAGE: Final = "ml.stage"
STAGE_PREPROCESS: Final = "preprocess"
STAGE_FEATURE_LOOKUP: Final = "feature_lookup"
STAGE_INFERENCE: Final = "inference"
STAGE_POSTPROCESS: Final = "postprocess"
KNOWN_STAGES: Final = (STAGE_PREPROCESS, STAGE_FEATURE_LOOKUP, STAGE_INFERENCE, STAGE_POSTPROCESS)

# -- model ------------------------------------------------------------------------------------
ML_MODEL_NAME: Final = "ml.model.name"
ML_MODEL_VERSION: Final = "ml.model.version"
ML_MODEL_FRAMEWORK: Final = "ml.model.framework"

# -- input / output summaries (suffixes come from mltrace.summaries) ---------------------------
ML_INPUT_PREFIX: Final = "ml.input."
ML_OUTPUT_PREFIX: Final = "ml.output."
ML_OUTPUT_PREDICTION: Final = "ml.output.prediction"
ML_OUTPUT_CONFIDENCE: Final = "ml.output.confidence"
ML_STREAM_ITEMS: Final = "ml.output.stream.items"
ML_STREAM_CLOSED_EARLY: Final = "ml.output.stream.closed_early"  # consumer stopped: not an error

# -- request (on the server span) -------------------------------------------------------------
ML_REQUEST_BODY_PREFIX: Final = "ml.request.body."
ML_RESPONSE_BODY_PREFIX: Final = "ml.response.body."
ML_CLIENT_DISCONNECTED: Final = "ml.client.disconnected"  # attribute and event: the client went away
HTTP_REQUEST_BODY_SIZE: Final = "http.request.body.size"  # OpenTelemetry HTTP conventions
HTTP_RESPONSE_BODY_SIZE: Final = "http.response.body.size"
ML_PAYLOAD_REF: Final = "ml.payload.ref"

# -- drift ------------------------------------------------------------------------------------
ML_DRIFT_SCORE: Final = "ml.drift.score"
ML_DRIFT_WINDOW_SCORE: Final = "ml.drift.window.score"
ML_DRIFT_METHOD: Final = "ml.drift.method"
ML_DRIFT_TOP_FEATURES: Final = "ml.drift.top_features"
ML_DRIFT_ALERT: Final = "ml.drift.alert"
ML_DRIFT_REFERENCE: Final = "ml.drift.reference"
ML_DRIFT_WINDOW_FEATURES: Final = "ml.drift.window.top_features"
ML_DRIFT_MAX_SCORE: Final = "ml.drift.max_score"  # a batch: its most unusual row's score
ML_DRIFT_UNUSUAL_SHARE: Final = "ml.drift.unusual_share"  # a batch: share of rows scoring >= 0.99
ML_DRIFT_FEATURE: Final = "ml.drift.feature"  # metric attribute: the feature of a per-feature gauge
ML_DRIFT_BIN: Final = "ml.drift.bin"  # metric attribute: the reference bin code of a bin count

# -- feature stores ---------------------------------------------------------------------------
ML_FEATURE_STORE_NAME: Final = "ml.feature_store.name"
ML_FEATURE_STORE_KEYS: Final = "ml.feature_store.keys"
ML_FEATURE_STORE_HITS: Final = "ml.feature_store.hits"
ML_FEATURE_STORE_MISSES: Final = "ml.feature_store.misses"

# -- batching ---------------------------------------------------------------------------------
ML_BATCH_SIZE: Final = "ml.batch.size"

# -- ground truth (mltrace.feedback) ----------------------------------------------------------
STAGE_FEEDBACK: Final = "feedback"  # the ml.stage of a feedback span (not a serving stage)
ML_FEEDBACK_LABEL: Final = "ml.feedback.label"
ML_FEEDBACK_TRACE_ID: Final = "ml.feedback.trace_id"
ML_FEEDBACK_SPAN_ID: Final = "ml.feedback.span_id"

# -- mltrace's own bookkeeping ----------------------------------------------------------------
ML_TRACE_ERROR: Final = "mltrace.error"  # a summary/drift/hook failure, recorded not raised
ML_FORCE: Final = "mltrace.force"  # the request asked (force-trace header) for its trace to be kept
#: how many requests this kept span stands for (1 / the probability it was kept with; ot=th in tracestate)
MLTRACE_REPLICA: Final = "mltrace.replica"  # metric attribute: one value per process (host:pid:random)
MLTRACE_SAMPLING_ADJUSTED_COUNT: Final = "mltrace.sampling.adjusted_count"
