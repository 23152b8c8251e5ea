"""torch tensors, summarised only when torch is already imported by the caller.

Shape, dtype and device always. Statistics and the fingerprint come from a numpy view of a CPU
tensor (sampled like any array). A device tensor is never copied or synchronised (a copy would
wait for the device's queued work and charge it to whichever stage summarised): its summary says
``sampled=True, sample_size=0`` and carries no statistics and no fingerprint (so does a tensor
with no numpy form). A bfloat16/float8 tensor is read as float32, so its fingerprint equals that of
the float32 tensor with the same values.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

from . import _fingerprint
from ._keys import DEVICE, DTYPE, KIND, SAMPLE_SIZE, SAMPLED, SHAPE, SIZE
from ._numeric import put_array_body, put_fingerprint
from ._values import Summary, shape_list, text


def is_tensor(obj: object) -> bool:
    torch = sys.modules.get("torch")
    cls = getattr(torch, "Tensor", None) if torch is not None else None
    return isinstance(cls, type) and isinstance(obj, cls)


def summarize_tensor(out: Summary, tensor: Any, max_features: int, limit: int) -> None:
    torch = sys.modules["torch"]
    device = tensor.device
    out[KIND] = "tensor"
    out[DTYPE] = text(str(tensor.dtype).removeprefix("torch."))
    out[DEVICE] = text(str(device))
    if getattr(tensor, "is_nested", False):  # ragged: no single shape
        return
    out[SHAPE] = shape_list(tuple(tensor.shape))
    size = int(tensor.numel())
    out[SIZE] = size
    if (
        tensor.layout is not getattr(torch, "strided", None)
        or getattr(tensor, "is_quantized", False)
        or getattr(device, "type", "meta") == "meta"
    ):
        return
    data = tensor.detach()
    if getattr(device, "type", None) != "cpu":
        # Any copy off the device waits for the device's queued work: the stage that summarised
        # would absorb the model's GPU time. Device tensors get shape/dtype/device only.
        out[SAMPLED] = True
        out[SAMPLE_SIZE] = 0
        return
    arr = _numpy_of(data, size, limit)
    if arr is None:
        out[SAMPLED] = True
        out[SAMPLE_SIZE] = 0
        return
    put_array_body(out, arr, max_features, limit)
    put_fingerprint(out, _fingerprint.of_array(arr))


def _numpy_of(data: Any, size: int, limit: int) -> np.ndarray | None:
    """A numpy view of a CPU tensor; a float32 copy for dtypes numpy lacks (bfloat16, float8)."""
    for resolve in ("resolve_conj", "resolve_neg"):
        method = getattr(data, resolve, None)
        if method is not None:
            data = method()
    try:
        return np.asarray(data.numpy())
    except (TypeError, RuntimeError):
        pass
    if size > limit or not data.is_floating_point():
        return None
    try:
        return np.asarray(data.float().numpy())
    except (TypeError, RuntimeError):  # wrapper tensors (DTensor, fake, functorch) have no data
        return None
