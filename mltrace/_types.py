"""Type aliases shared across packages (no runtime dependencies: summaries and drift import this).

``AttrValue`` is the one attribute-value alias: a primitive or a homogeneous sequence of
primitives, the attribute values OTel's semantic conventions define (the API's own
``opentelemetry.util.types.AttributeValue`` has since widened to ``AnyValue``, which accepts all of
these). Spelled out here because ``mltrace.summaries`` and ``mltrace.drift`` import no
OpenTelemetry. mltrace itself writes lists.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

AttrValue: TypeAlias = str | bool | int | float | Sequence[str] | Sequence[bool] | Sequence[int] | Sequence[float]
"""An OpenTelemetry attribute value: a primitive or a homogeneous sequence of primitives."""
