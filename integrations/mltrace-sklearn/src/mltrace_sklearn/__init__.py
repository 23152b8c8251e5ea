"""mltrace for scikit-learn: ``traced_model(est)`` makes inference and preprocess stage spans.

```python
from mltrace_sklearn import traced_model

model = traced_model(joblib.load("model.joblib"), name="churn", version="3")
model.predict_proba(X)   # an "inference" span; a Pipeline adds one child span per step
```
"""

from __future__ import annotations

from ._model import TracedModel, traced_model

__version__ = "0.1.0"

__all__ = ["TracedModel", "__version__", "traced_model"]
