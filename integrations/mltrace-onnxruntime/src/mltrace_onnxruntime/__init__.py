"""mltrace for ONNX Runtime: ``traced_session(sess)`` makes each ``run`` an inference span.

```python
import onnxruntime as ort
from mltrace_onnxruntime import traced_session

session = traced_session(ort.InferenceSession("model.onnx"), name="ranker", version="7")
scores = session.run(None, {"input": batch})
```
"""

from __future__ import annotations

from ._session import TracedSession, traced_session

__version__ = "0.1.0"

__all__ = ["TracedSession", "__version__", "traced_session"]
