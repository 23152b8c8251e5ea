"""What an embedding batch looks like, in a few numbers: ``@mltrace.inference(kind="embed")``.

A batch of texts in, vectors out: the span gets the batch's count and dimension and the spread of
the vectors' L2 norms (``ml.embedding.*``), beside the usual ``ml.output.*`` summary. Norms are
cheap and telling: a collapsed model, an un-normalised path or a zero vector (an empty text) shows
in ``norm.min``/``norm.max`` before anyone looks at a distance. Drift of embeddings is the drift
monitor's job (``ReferenceProfile.from_data(..., embeddings=...)``, docs/drift.md).
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np

ML_EMBEDDING_COUNT: Final = "ml.embedding.count"
ML_EMBEDDING_DIMENSION: Final = "ml.embedding.dimension"
ML_EMBEDDING_NORM_MIN: Final = "ml.embedding.norm.min"
ML_EMBEDDING_NORM_MEAN: Final = "ml.embedding.norm.mean"
ML_EMBEDDING_NORM_MAX: Final = "ml.embedding.norm.max"
ML_EMBEDDING_NORM_SAMPLED: Final = "ml.embedding.norm.sampled"

# Norms of at most this many rows (evenly spaced): 1,024 x 1,024 floats is ~0.5 ms.
MAX_NORM_ROWS = 1024


def _matrix(vectors: Any) -> np.ndarray | None:
    if isinstance(vectors, dict) and "data" in vectors:  # an OpenAI-style {"data": [{"embedding": [...]}]}
        vectors = [d.get("embedding") for d in vectors["data"] if isinstance(d, dict)]
    try:
        arr = np.asarray(vectors, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if arr.ndim == 1 and arr.size:
        arr = arr[None, :]
    return arr if arr.ndim == 2 and arr.size else None


def embedding_attributes(vectors: Any) -> dict[str, Any]:
    """Count, dimension and norm spread of a batch of vectors; empty when it is not one."""
    arr = _matrix(vectors)
    if arr is None:
        return {}
    n, dim = arr.shape
    rows = arr if n <= MAX_NORM_ROWS else arr[np.linspace(0, n - 1, MAX_NORM_ROWS).astype(np.int64)]
    norms = np.sqrt(np.einsum("ij,ij->i", rows, rows))
    out: dict[str, Any] = {
        ML_EMBEDDING_COUNT: int(n),
        ML_EMBEDDING_DIMENSION: int(dim),
        ML_EMBEDDING_NORM_MIN: float(norms.min()),
        ML_EMBEDDING_NORM_MEAN: float(norms.mean()),
        ML_EMBEDDING_NORM_MAX: float(norms.max()),
    }
    if n > MAX_NORM_ROWS:
        out[ML_EMBEDDING_NORM_SAMPLED] = True
    return out
