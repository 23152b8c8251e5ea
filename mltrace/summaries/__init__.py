"""Summaries: turn a model's input or output into a small, bounded set of span attributes.

``summarize(obj)`` returns unprefixed keys (the caller adds ``ml.input.`` or ``ml.output.``); the
keys are defined once in ``_keys.py``. It handles numpy arrays and scalars, lists and tuples
(numeric, nested, ragged or mixed), dicts of features, lists of records, pydantic models,
dataclasses, pandas DataFrames and Series and torch tensors (only when the caller has imported
them), strings, bytes and None, and never raises. Its result is a ``Summary`` (``dict[str, AttrValue]``),
``AttrValue`` being the one attribute-value alias: a primitive or a homogeneous sequence of them.
"""

from __future__ import annotations

from ._core import summarize
from ._values import AttrValue, Summary

__all__ = ["AttrValue", "Summary", "summarize"]
