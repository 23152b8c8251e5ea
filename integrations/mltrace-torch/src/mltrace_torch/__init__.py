"""mltrace for PyTorch: ``traced_module(net)`` makes inference spans with device-side timing.

```python
from mltrace_torch import traced_module

model = traced_module(net, name="ranker", version="7").to("cuda").eval()
with torch.inference_mode():
    scores = model(batch)   # an "inference" span: device, dtype, batch size, host and device ms
```
The event pool and resolver (:mod:`mltrace_torch._timing`) import no torch; everything else
imports it when first used.
"""

from __future__ import annotations

from ._device_timer import DeviceTimer, default_timer, flush
from ._module import TracedModule, traced_module
from ._timing import EventPool, Resolver

__version__ = "0.1.0"

__all__ = [
    "DeviceTimer",
    "EventPool",
    "Resolver",
    "TracedModule",
    "__version__",
    "default_timer",
    "flush",
    "traced_module",
]
