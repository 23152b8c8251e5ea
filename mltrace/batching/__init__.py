"""Batched inference that keeps every request's trace: ``MicroBatcher`` and helpers for your own
batcher (``batch_member`` on the request side, ``record_batch``/``traced_batch`` on the batch
side). See docs/batching.md."""

from __future__ import annotations

from ._batch_spans import (
    ML_BATCH_INDEX,
    ML_BATCH_TRIGGER,
    STAGE_BATCH_WAIT,
    Batch,
    BatchMember,
    BatchScope,
    BatchSizeError,
    batch_member,
    record_batch,
    traced_batch,
)
from ._batcher import MicroBatcher

__all__ = [
    "ML_BATCH_INDEX",
    "ML_BATCH_TRIGGER",
    "STAGE_BATCH_WAIT",
    "Batch",
    "BatchMember",
    "BatchScope",
    "BatchSizeError",
    "MicroBatcher",
    "batch_member",
    "record_batch",
    "traced_batch",
]
